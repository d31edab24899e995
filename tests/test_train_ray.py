"""Integration: proxy runs of the tiny presets on the embedded corpus with real Ray (CPU, gloo DDP).

One local Ray (2 CPUs) for the module; every Train worker and trial asks for 0.5 CPU so Ray Data
keeps a free CPU to stream the mixture (DESIGN notes: otherwise it waits forever).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from autoscale_ray.train import TrainConfig, eval_steps

pytestmark = pytest.mark.slow

SEQ = 128
BASE = dict(model="gpt2-tiny", budget_tokens=24 * 1024, global_batch_tokens=1024, micro_batch=4,
            lr=2e-3, eval_count=6, eval_batches=2, seed=3,
            weights={"stubs": 0.4, "cpp": 0.3, "python": 0.2, "prose": 0.1})
EVAL_TOKENS = [s * 1024 for s in eval_steps(24, 6, 0.02)]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(ray_cluster, tmp_path_factory):
    from autoscale_ray.data import build_embedded_corpus, embedded_sources, prepare_corpus

    # the embedded default corpus (real text, cached in the user cache once built)
    root = tmp_path_factory.mktemp("train-corpus")
    return prepare_corpus(embedded_sources(build_embedded_corpus()), root / "packed", seq_len=SEQ,
                          val_tokens=4096)


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # in-process runs share 2 cores with Ray's workers
    yield
    torch.set_num_threads(before)


def _fit(corpus, tmp_path: Path, run_id: str, **changes):
    from autoscale_ray.train.job import ProxyJob
    from autoscale_ray.train.runner import fit_proxy

    cfg = TrainConfig(**{**BASE, **changes})
    result = fit_proxy(ProxyJob(cfg, str(corpus.root), run_id, storage_path=str(tmp_path),
                                cpus_per_worker=0.5))
    assert result.error is None
    return result


def _in_process(corpus, cfg: TrainConfig, checkpoints: Path | None = None, resume: Path | None = None):
    from autoscale_ray.train.proxy import train_in_process

    rows = []

    def report(row, save):
        rows.append(row)
        if save is not None and checkpoints is not None:
            save(checkpoints / f"step={row['step']}")
    train_in_process(cfg, corpus, run_id="p", report=report, resume_dir=resume)
    return rows


@pytest.fixture(scope="module")
def reference(corpus):
    """The uninterrupted run, in this process (the Tune test checks Ray Train gives the same)."""
    return _in_process(corpus, TrainConfig(**BASE))


@pytest.fixture(scope="module")
def one_worker(corpus, tmp_path_factory):
    """A 1-worker Ray Train run stopped after 10 steps, then started again under the same name."""
    storage = tmp_path_factory.mktemp("w1")
    first = _fit(corpus, storage, "w1", num_workers=1, stop_at_tokens=10 * 1024)
    second = _fit(corpus, storage, "w1", num_workers=1)
    return first.return_value, second


def test_one_worker_run_reports_rows_at_log_spaced_tokens_and_learns(one_worker, corpus):
    first, second = one_worker
    rows = first + second.return_value
    assert [r["tokens"] for r in rows] == sorted(EVAL_TOKENS + [10 * 1024])
    assert [r["status"] for r in rows][-1] == "completed" and rows[-1]["budget"] == 24 * 1024
    for d in corpus.domains:
        assert rows[-1][f"loss.{d}"] < rows[0][f"loss.{d}"] - 0.3
    # the stream delivered the planned mixture: seen tokens follow the weights (quota rounding aside)
    seen = np.array([rows[-1][f"seen.{d}"] for d in corpus.domains], dtype=float)
    assert seen.sum() == 24 * 1024
    assert np.allclose(seen / seen.sum(), [0.4, 0.3, 0.2, 0.1], atol=0.02)
    assert second.checkpoint is not None and second.metrics["step"] == 24


def test_stopped_run_resumes_from_its_checkpoint_to_the_same_final_loss(one_worker, reference):
    first, second = one_worker
    assert first[-1]["status"] == "stopped" and first[-1]["step"] == 10
    assert second.return_value[0]["step"] > 10  # continued, not restarted
    assert second.return_value[-1]["loss"] == pytest.approx(reference[-1]["loss"], abs=1e-4)


def test_two_worker_ddp_matches_one_worker_curve(reference, corpus, tmp_path):
    two = _fit(corpus, tmp_path, "w2", num_workers=2, micro_batch=4).return_value
    assert [r["tokens"] for r in two] == EVAL_TOKENS
    # Same global batch, same sequences per step; only the reduction order differs across workers.
    gaps = [abs(a["loss"] - b["loss"]) for a, b in zip(reference, two)]
    assert max(gaps) < 0.1 and gaps[-1] < 0.05, gaps


def test_in_process_resume_and_masked_lm(corpus, reference, tmp_path):
    cfg = TrainConfig(**BASE)
    stopped = _in_process(corpus, dataclasses.replace(cfg, stop_at_tokens=7 * 1024), tmp_path)
    assert stopped[-1]["status"] == "stopped"
    resumed = _in_process(corpus, cfg, resume=tmp_path / f"step={stopped[-1]['step']}")
    assert resumed[-1]["loss"] == pytest.approx(reference[-1]["loss"], abs=1e-4)

    mlm = _in_process(corpus, dataclasses.replace(cfg, model="bert-tiny", lr=1e-3))
    assert all(f"loss.{d}" in mlm[-1] for d in corpus.domains)
    assert mlm[-1]["loss"] < mlm[0]["loss"] - 0.3


def test_tune_trials_on_ray_train_and_in_process_give_the_same_rows(corpus, reference, tmp_path):
    """The search's own trainable (a suggestion + the trial contract) on Ray Train and in the
    trial's process."""
    from ray import tune

    from autoscale_ray.tuning.contract import TrialContract
    from autoscale_ray.tuning.layout import trained_keys
    from autoscale_ray.tuning.trial import search_trial
    from autoscale_ray.storage import Store

    per_trial = ("budget_tokens", "weights", "lr", "seed")
    contracts = [TrialContract(
        train={k: v for k, v in BASE.items() if k not in per_trial} | {"num_workers": 1},
        corpus_dir=str(corpus.root), corpus_uri=None, output=str(tmp_path / "out"),
        train_storage=str(tmp_path / "train"), in_process=in_process, use_gpu=False,
        cpus_per_worker=0.5, gpus_per_worker=0.0, resources={"cpu": 0.5}).to_config()
        for in_process in (False, True)]
    tuner = tune.Tuner(
        tune.with_resources(search_trial, {"cpu": 0.5}),
        param_space={"key": "test/one", "stage": "test", "probe": None, "budget": BASE["budget_tokens"],
                     "weights": BASE["weights"], "lr": BASE["lr"], "seed": BASE["seed"],
                     "contract": tune.grid_search(contracts)},
        tune_config=tune.TuneConfig(max_concurrent_trials=1),
        run_config=tune.RunConfig(name="proxy", storage_path=str(tmp_path / "tune"), verbose=0),
    )
    results = tuner.fit()
    assert results.num_errors == 0
    frames = [r.metrics_dataframe for r in results]
    for frame in frames:
        assert frame["tokens"].tolist() == EVAL_TOKENS
        assert set(frame["stage"]) == {"test"} and frame["run_id"].nunique() == 1
        assert {f"loss.{d}" for d in corpus.domains} <= set(frame.columns)
    assert {r["key"] for r in frames[0].to_dict("records")} == {"test/one"}
    assert trained_keys(Store(str(tmp_path / "out"))) == ["test/one"] * 2  # recorded in the output store
    # Both paths stream the same plan in the same order with the same seed.
    assert np.allclose(frames[0]["loss"], frames[1]["loss"], atol=1e-4)
    assert np.allclose(frames[0]["loss"], [r["loss"] for r in reference], atol=1e-4)
