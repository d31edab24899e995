"""Pure pieces of the training package: schedules, evaluation points, FLOPs, configs, objectives,
and the shared loop on in-memory data (no Ray, no corpus)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from autoscale_ray.errors import BadInput
from autoscale_ray.train import (PRESETS, Worker, RunInfo, TokenIds, TrainConfig, eval_steps,
                                 lr_factor, mfu, model_shape, model_spec, train_proxy)
from autoscale_ray.train.evalpoints import checkpoint_steps
from autoscale_ray.train.objective import IGNORE, causal_batch, generator_for, mlm_batch
from autoscale_ray.train.state import read_position

TOKENS = TokenIds(vocab_size=260, pad_id=257, eod_id=256, mask_id=258)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The CI machine is shared: one intra-op thread avoids spinning threads fighting for 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- schedules ---------------------------------------------------------------------------------
def test_cosine_warms_up_linearly_then_decays_to_min_ratio():
    f = [lr_factor(s, total=100, warmup=10, schedule="cosine", min_ratio=0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert np.allclose(np.diff(f[:10]), 0.1)
    assert f[-1] == pytest.approx(0.1)
    # half-way through the decay the cosine is at the mean of peak and floor
    assert lr_factor(10 + 89 // 2, total=100, warmup=10, min_ratio=0.1) == pytest.approx(0.55, abs=0.02)
    assert all(a >= b for a, b in zip(f[9:], f[10:]))


def test_wsd_is_flat_until_the_decay_window_and_constant_stays_at_peak():
    wsd = [lr_factor(s, total=100, warmup=5, schedule="wsd", min_ratio=0.0, decay=20) for s in range(100)]
    assert wsd[5:80] == [1.0] * 75
    assert wsd[-1] == pytest.approx(0.0) and wsd[89] == pytest.approx(0.5)
    const = [lr_factor(s, total=50, warmup=5, schedule="constant") for s in range(5, 50)]
    assert const == [1.0] * 45


# ---- evaluation points -------------------------------------------------------------------------
@pytest.mark.parametrize("total,count", [(6, 6), (8, 8), (40, 6), (1000, 8), (100_000, 12)])
def test_eval_steps_are_log_spaced_increasing_and_end_at_the_budget(total, count):
    steps = eval_steps(total, count, first_fraction=0.02)
    assert len(steps) == count and steps[-1] == total and steps[0] >= 1
    assert all(b > a for a, b in zip(steps, steps[1:]))
    if total >= 1000:  # far from rounding: a geometric sequence
        ratios = np.diff(np.log(steps))
        assert np.ptp(ratios) < 0.05
        assert steps[0] == pytest.approx(0.02 * total, rel=0.05)


def test_eval_steps_reject_too_few_steps():
    with pytest.raises(ValueError):
        eval_steps(5, 6)


# ---- FLOPs and parameter counts ------------------------------------------------------------------
def test_gpt2_124m_has_85m_non_embedding_parameters_and_palm_flops():
    spec = model_spec("gpt2-124m", vocab_size=50257, seq_len=1024)
    with torch.device("meta"):
        model = spec.build()
    shape = model_shape(model, seq_len=1024)
    d, L = 768, 12
    # per layer: attention 4d^2+4d, MLP 8d^2+5d, two LayerNorms 4d; plus the final LayerNorm 2d
    assert shape.non_embedding_params == L * (12 * d * d + 13 * d) + 2 * d
    assert shape.head_params == 50304 * d  # vocabulary padded to a multiple of 64, tied head
    assert shape.flops_per_token() == 6 * (shape.non_embedding_params + 50304 * d) + 12 * L * d * 1024
    assert mfu(1000.0, shape.flops_per_token(), 1e15, n_devices=2) == pytest.approx(
        1000.0 * shape.flops_per_token() / 2e15)


def test_untied_llama_head_is_excluded_from_non_embedding_params():
    spec = model_spec("llama-tiny", vocab_size=260, seq_len=64)
    model = spec.build()
    shape = model_shape(model, seq_len=64)
    total = sum(p.numel() for p in model.parameters())
    assert shape.non_embedding_params == total - 2 * 320 * 128  # input embedding + untied head


# ---- models and configs ------------------------------------------------------------------------
def test_presets_build_with_sdpa_and_the_corpus_vocabulary():
    for name in ("gpt2-tiny", "llama-tiny", "bert-tiny"):
        spec = model_spec(name, vocab_size=300, seq_len=64)
        model = spec.build()
        assert model.config._attn_implementation == "sdpa"
        assert model.get_input_embeddings().num_embeddings == 320
        assert spec.objective == ("mlm" if name.startswith("bert") else "causal")
    assert {"gpt2-124m", "gpt2-355m", "gpt2-774m", "bert-base"} <= set(PRESETS)


def test_config_file_objective_and_rejections(tmp_path):
    from transformers import BertConfig, GPT2Config, ResNetConfig

    GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=64).save_pretrained(tmp_path / "gpt")
    BertConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2,
               intermediate_size=64).save_pretrained(tmp_path / "bert")
    ResNetConfig().save_pretrained(tmp_path / "resnet")
    assert model_spec(str(tmp_path / "gpt"), vocab_size=100, seq_len=64).objective == "causal"
    spec = model_spec(str(tmp_path / "bert"), vocab_size=100, seq_len=64)
    assert spec.objective == "mlm" and spec.config.vocab_size == 128
    with pytest.raises(BadInput, match="no causal-LM or masked-LM head"):
        model_spec(str(tmp_path / "resnet"), vocab_size=100, seq_len=64)
    with pytest.raises(BadInput, match="shorter than the corpus sequence length 128"):
        model_spec(str(tmp_path / "gpt"), vocab_size=100, seq_len=128)
    with pytest.raises(BadInput, match="unknown model 'gpt5'"):
        model_spec("gpt5", vocab_size=100, seq_len=64)


@pytest.mark.parametrize("values,match", [
    ({"budget_tokens": 0}, "budget_tokens=0 must be positive"),
    ({"lr": -1e-3}, "lr=-0.001 must be a positive"),
    ({"lr": float("nan")}, "lr=nan is not a finite number"),
    ({"schedule": "linear"}, "schedule='linear' is unknown"),
    ({"learning_rate": 1e-3}, "unknown key"),
    ({"micro_batch": "eight"}, "micro_batch='eight' is not an integer"),
    ({"weights": {"a": -1.0}}, "weight of domain 'a'"),
])
def test_bad_config_values_raise_one_line(values, match):
    with pytest.raises(BadInput, match=match) as err:
        TrainConfig.from_mapping(values)
    assert "\n" not in str(err.value)


def test_batch_must_fit_sequence_length_and_workers():
    cfg = TrainConfig(global_batch_tokens=1000, micro_batch=4)
    with pytest.raises(BadInput, match="not a multiple of the sequence length 128"):
        cfg.batch_layout(128, 1)
    cfg = TrainConfig(global_batch_tokens=128 * 12, micro_batch=4)
    assert cfg.batch_layout(128, 1).accumulation == 3
    with pytest.raises(BadInput, match="does not split into 2 worker"):
        cfg.batch_layout(128, 2)
    with pytest.raises(BadInput, match="fewer than eval_count"):
        TrainConfig(budget_tokens=128 * 12 * 3, global_batch_tokens=128 * 12).total_steps(128)


def test_command_line_bad_input_exits_2_with_one_line(tmp_path, capsys):
    from autoscale_ray.train.__main__ import main

    proc = subprocess.run([sys.executable, "-m", "autoscale_ray.train", str(tmp_path), "--set",
                           "model=gpt5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("autoscale-ray train: error:")]
    assert len(lines) == 1 and "gpt5" in lines[0]
    for args, message in [([], "manifest.json missing"),
                          (["--set", "budget_tokens=-5"], "budget_tokens=-5 must be positive"),
                          (["--set", "lr=0"], "lr=0.0 must be a positive")]:
        assert main([str(tmp_path), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


# ---- objectives ----------------------------------------------------------------------------------
def test_mlm_masks_fifteen_percent_with_80_10_10_and_never_special_tokens():
    ids = torch.randint(0, 256, (64, 256))
    ids[:, ::16] = TOKENS.eod_id
    ids[:, -5:] = TOKENS.pad_id
    inputs, labels = mlm_batch(ids, TOKENS, 0.15, generator_for(torch.device("cpu"), 1, 2))
    chosen = labels != IGNORE
    special = (ids == TOKENS.eod_id) | (ids == TOKENS.pad_id)
    assert not (chosen & special).any()
    assert chosen.float().sum() / (~special).sum() == pytest.approx(0.15, abs=0.01)
    assert torch.equal(labels[chosen], ids[chosen]) and torch.equal(inputs[~chosen], ids[~chosen])
    masked = (inputs[chosen] == TOKENS.mask_id).float().mean()
    kept = (inputs[chosen] == ids[chosen]).float().mean()
    assert masked == pytest.approx(0.8, abs=0.02) and kept == pytest.approx(0.1 + 0.1 / 260, abs=0.02)
    again, _ = mlm_batch(ids, TOKENS, 0.15, generator_for(torch.device("cpu"), 1, 2))
    assert torch.equal(inputs, again)  # same keys, same masks (resume reproduces them)


def test_causal_labels_ignore_padding():
    ids = torch.tensor([[5, 6, TOKENS.pad_id]])
    inputs, labels = causal_batch(ids, TOKENS)
    assert torch.equal(inputs, ids) and labels.tolist() == [[5, 6, IGNORE]]


# ---- the loop on in-memory data ----------------------------------------------------------------
def _pattern_batches(seq_len: int, micro: int, n_domains: int = 2):
    rng = np.random.default_rng(0)
    step = 0
    while True:
        d = step % n_domains
        start = rng.integers(0, 50, (micro, 1))
        ids = (start + np.arange(seq_len)[None, :] * (d + 1)) % 200
        yield {"input_ids": ids, "domain": np.full(micro, d)}
        step += 1


def _run_loop(cfg: TrainConfig, model_name: str = "gpt2-tiny", poison: bool = False,
              save_to: Path | None = None, resume: Path | None = None):
    """Rows of one loop run; with `save_to`, each checkpoint it offers is written to
    save_to/step=<step>; with `resume`, it starts from that checkpoint (the stream skipped on)."""
    seq = 32
    spec = model_spec(model_name, vocab_size=TOKENS.vocab_size, seq_len=seq)
    torch.manual_seed(0)
    model = spec.build()
    if poison:  # a non-finite weight makes every loss NaN: the run must stop as diverged
        with torch.no_grad():
            model.get_input_embeddings().weight[:, 0] = float("nan")
    val_iter = _pattern_batches(seq, 8)
    val = {d: next(val_iter)["input_ids"] for d in ("a", "b")}
    layout = cfg.batch_layout(seq, 1)
    rows: list[dict] = []

    def report(row, save):
        rows.append({**row, "checkpointed": save is not None})
        if save is not None and save_to is not None:
            save(save_to / f"step={row['step']}")
    batches = _pattern_batches(seq, cfg.micro_batch)
    if resume is not None:  # the caller's business in the real edges: restart the stream
        for _ in range(read_position(resume).step * layout.accumulation):
            next(batches)
    train_proxy(cfg, model=model, objective=spec.objective, tokens=TOKENS, batches=batches,
                validation=val, layout=layout, total_steps=cfg.total_steps(seq),
                run=RunInfo("r0", ("a", "b"), {"a": 1, "b": 3}), report=report,
                worker=Worker(torch.device("cpu")), resume_dir=resume)
    return rows


def test_loop_reports_rows_at_log_spaced_tokens_with_throughput():
    cfg = TrainConfig(budget_tokens=30 * 128, global_batch_tokens=128, micro_batch=2, lr=3e-3,
                      eval_count=6, warmup_fraction=0.1)
    rows = _run_loop(cfg)
    assert [r["tokens"] for r in rows] == [s * 128 for s in eval_steps(30, 6, 0.02)]
    assert rows[-1]["tokens"] == rows[-1]["budget"] == 30 * 128
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.5
    assert [r["status"] for r in rows] == ["running"] * 5 + ["completed"]
    last = rows[-1]
    assert last["w.a"] == 0.25 and last["w.b"] == 0.75 and last["params"] > 0
    assert last["loss"] == pytest.approx((last["loss.a"] + last["loss.b"]) / 2)
    assert last["seen.a"] + last["seen.b"] == 30 * 128
    assert last["tokens_per_s"] > 0 and 0 < last["mfu"] < 1 and last["peak_mem_bytes"] > 0
    assert all(r["device"] == "cpu" for r in rows)  # where it trained, in every row
    assert json.dumps(last)  # plain Python values, ready for the runs table


@pytest.mark.parametrize("every,count,expected", [(1, 6, [1, 2, 3, 4, 5, 6]), (2, 6, [2, 4, 6]),
                                                  (3, 5, [3, 5]), (2, 5, [2, 4, 5]), (9, 4, [4])])
def test_checkpoint_every_kth_evaluation_and_always_the_last(every, count, expected):
    evals = eval_steps(40, count)
    assert checkpoint_steps(40, set(evals), every) == {evals[i - 1] for i in expected}


def test_loop_checkpoints_every_kth_row_and_a_resume_from_the_last_one_redoes_the_rest(tmp_path):
    cfg = TrainConfig(budget_tokens=30 * 128, global_batch_tokens=128, micro_batch=2, lr=3e-3,
                      eval_count=6, warmup_fraction=0.1, checkpoint_every=2)
    rows = _run_loop(cfg, save_to=tmp_path)
    assert [r["checkpointed"] for r in rows] == [False, True] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"step={r['step']}" for r in rows[1::2])
    # a crash after the 3rd evaluation (not checkpointed) resumes from the 2nd: the 3rd is trained
    # and reported again, identical to the uninterrupted run
    resumed = _run_loop(cfg, resume=tmp_path / f"step={rows[1]['step']}")
    assert [r["step"] for r in resumed] == [r["step"] for r in rows[2:]]
    for a, b in zip(resumed, rows[2:]):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5) and a["seen.a"] == b["seen.a"]


@pytest.mark.parametrize("value", [0, -1, 1.5])
def test_checkpoint_every_must_be_a_positive_integer(value):
    with pytest.raises(BadInput, match="checkpoint_every"):
        TrainConfig.from_mapping({"checkpoint_every": value})


def test_non_finite_loss_stops_the_run_as_diverged():
    cfg = TrainConfig(budget_tokens=40 * 128, global_batch_tokens=128, micro_batch=2,
                      eval_count=6, divergence_check_steps=3)
    rows = _run_loop(cfg, poison=True)
    assert len(rows) == 1 and rows[0]["status"] == "diverged" and rows[0]["step"] == 1
    assert math.isnan(rows[0]["loss"]) and math.isnan(rows[0]["train_loss"])


def test_mlm_loop_reports_per_domain_masked_lm_loss():
    cfg = TrainConfig(model="bert-tiny", budget_tokens=24 * 256, global_batch_tokens=256,
                      micro_batch=4, lr=3e-3, eval_count=6)
    rows = _run_loop(cfg, model_name="bert-tiny")
    assert {"loss.a", "loss.b"} <= set(rows[-1])
    assert rows[-1]["loss"] < rows[0]["loss"]
