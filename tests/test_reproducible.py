"""The same recommendation, run after run and on any machine of the same kind: the embedded corpus
is the same bytes wherever it is built, a proxy's training is deterministic and keeps no state
across trials in one process, and a search run twice gives the same weights and LR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autoscale_ray.data.embedded import (build_embedded_corpus, corpus_content_hash,
                                         embedded_corpus_hash, shipped_manifest)
from data_fixtures import ray_local, ray_running  # noqa: F401
from helpers import config_file


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def test_embedded_corpus_is_the_same_bytes_in_two_fresh_caches(tmp_path: Path) -> None:
    a = build_embedded_corpus(tmp_path / "a")
    b = build_embedded_corpus(tmp_path / "b")
    fa, fb = _files(a), _files(b)
    assert len(fa) >= 4 and fa == fb
    pinned = shipped_manifest()["corpus_hash"]
    assert corpus_content_hash(a) == corpus_content_hash(b) == embedded_corpus_hash() == pinned
    assert json.loads((a / "provenance.json").read_text())["corpus_hash"] == pinned


def test_content_hash_sees_one_changed_byte_and_the_order_of_documents(tmp_path: Path) -> None:
    from autoscale_ray.data.synthetic import synthetic_corpus

    root = synthetic_corpus(tmp_path / "s", docs_per_domain=4, doc_chars=80)
    before = corpus_content_hash(root)
    assert corpus_content_hash(synthetic_corpus(tmp_path / "t", docs_per_domain=4, doc_chars=80)) == before
    shard = next(p for p in sorted(root.rglob("*.jsonl")))
    lines = shard.read_text().splitlines()
    first = json.loads(lines[0])
    shard.write_text("\n".join([json.dumps({**first, "text": first["text"][:-1] + "#"})] + lines[1:]) + "\n")
    changed = corpus_content_hash(root)
    shard.write_text("\n".join(lines[1:] + lines[:1]) + "\n")  # the same documents, another order
    assert len({before, changed, corpus_content_hash(root)}) == 3


@pytest.fixture(scope="module")
def small_corpus(ray_local, tmp_path_factory):  # noqa: F811
    from autoscale_ray.data import prepare_corpus, synthetic_corpus, synthetic_sources

    root = tmp_path_factory.mktemp("repro")
    text = synthetic_corpus(root / "text", docs_per_domain=60, doc_chars=1500)
    return prepare_corpus(synthetic_sources(text), root / "packed", seq_len=64, val_tokens=2048)


# measurements of the machine, not results of the training: the only fields allowed to differ
MEASURED = ("tokens_per_s", "mfu", "peak_mem_bytes")


def _rows(corpus, **changes) -> list[dict]:
    from autoscale_ray.train import TrainConfig
    from autoscale_ray.train.proxy import train_in_process

    base = dict(model="gpt2-tiny", budget_tokens=12 * 1024, global_batch_tokens=1024, micro_batch=8,
                lr=3e-3, eval_count=4, eval_batches=2, seed=5,
                weights={"templates": 0.4, "markov": 0.3, "zipf_small": 0.2, "zipf_large": 0.1})
    rows: list[dict] = []
    train_in_process(TrainConfig(**{**base, **changes}), corpus, run_id="r",
                     report=lambda row, save: rows.append(row))
    assert all(set(MEASURED) <= set(r) for r in rows)
    return [{k: v for k, v in r.items() if k not in MEASURED} for r in rows]


@pytest.mark.slow
def test_a_trial_is_deterministic_and_keeps_no_state_across_trials(small_corpus) -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # shared cores; also the thread count a trial would run with
    try:
        first = _rows(small_corpus)
        # another trial in between: other seed, mixture, LR, horizon
        other = _rows(small_corpus, seed=11, lr=1e-3, budget_tokens=8 * 1024,
                      weights={"templates": 0.1, "markov": 0.1, "zipf_small": 0.4, "zipf_large": 0.4})
        torch.manual_seed(1234)  # a caller's global RNG state must not leak into the trial
        second = _rows(small_corpus)
    finally:
        torch.set_num_threads(before)
    assert len(first) == 4 and first[-1]["loss"] < first[0]["loss"]
    assert other[-1]["loss"] != first[-1]["loss"]
    assert second == first  # every row, every loss, bit for bit


@pytest.mark.slow
def test_a_search_run_twice_gives_the_same_recommendation(tmp_path: Path) -> None:
    from autoscale_ray.pipeline import run

    cfg = config_file(tmp_path, "repro")
    started = not ray_running()
    try:
        recs = [run(cfg, out=tmp_path / f"out{i}") for i in (1, 2)]
    finally:
        if started and ray_running():
            import ray

            ray.shutdown()
    files = [json.loads((tmp_path / f"out{i}" / "recommendation.json").read_text()) for i in (1, 2)]
    assert files[0]["weights"] == files[1]["weights"] == recs[0]["weights"] == recs[1]["weights"]
    assert files[0]["lr"] == files[1]["lr"] and files[0]["tokens"] == files[1]["tokens"]
    assert files[0]["expected_loss"] == files[1]["expected_loss"]


def test_each_session_of_a_search_has_its_own_predictor_actor(tmp_path: Path) -> None:
    """The same search run twice in one Ray session once picked up the first run's predictor
    (get_if_exists) while it was being destroyed: ActorDiedError, or the first run's rows."""
    from autoscale_ray.config import load_config
    from autoscale_ray.pipeline import predictor_name

    cfg = load_config(config_file(tmp_path, "repro"))
    names = {predictor_name(cfg) for _ in range(3)}
    assert len(names) == 3 and all(n.startswith("autoscale-predictor-repro-") for n in names)
