"""The mixture stream through a real Ray Train worker: exact quotas, determinism, resume."""

from __future__ import annotations

import hashlib
import itertools
import sys

import numpy as np
import pytest

from autoscale_ray.data import prepare_corpus, stream_data_config, synthetic_corpus, synthetic_sources
from autoscale_ray.data.synthetic import SyntheticDomain
from data_fixtures import ray_local  # noqa: F401

SEQ = 64
BUDGETS = (8_000, 60_000, 300_000)
WEIGHTS = ({"templates": 0.5, "markov": 0.3, "zipf": 0.2},
           {"templates": 0.7, "markov": 0.0, "zipf": 0.3},     # a zero weight
           {"templates": 0.1, "markov": 0.1, "zipf": 0.8})     # zipf must repeat at 300k tokens


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, ray_local):  # noqa: F811
    t = tmp_path_factory.mktemp("stream")
    domains = (SyntheticDomain("templates", "template"), SyntheticDomain("markov", "markov"),
               SyntheticDomain("zipf", "zipf", {"vocab": 2000}))
    synthetic_corpus(t / "src", domains, seed=0, docs_per_domain=40, doc_chars=2500)
    return prepare_corpus(synthetic_sources(t / "src"), t / "cache", seq_len=SEQ, val_tokens=4 * SEQ)


def _count_in_worker(config):
    """Ray Train worker loop: consume every dataset shard, count tokens per domain, hash the stream."""
    import ray.train

    out = {}
    for name in config["names"]:
        shard = ray.train.get_dataset_shard(name)
        tokens = np.zeros(config["n_domains"], dtype=np.int64)
        h = hashlib.blake2b(digest_size=16)
        for batch in shard.iter_torch_batches(batch_size=32, dtypes=None, device="cpu"):
            ids, dom = batch["input_ids"].numpy(), batch["domain"].numpy()
            assert ids.shape[1] == config["seq_len"] and ids.dtype == np.int64
            tokens += np.bincount(dom, minlength=config["n_domains"]) * ids.shape[1]
            h.update(ids.tobytes())
            h.update(dom.astype(np.int64).tobytes())
        out[name] = {"tokens": tokens.tolist(), "hash": h.hexdigest()}
    return out


def _local_hash(corpus, plan, start=0) -> str:
    h = hashlib.blake2b(digest_size=16)
    for b in corpus.iter_plan(plan, batch_size=32, start=start):
        h.update(b["input_ids"].tobytes())
        h.update(b["domain"].astype(np.int64).tobytes())
    return h.hexdigest()


@pytest.mark.slow
def test_a_train_worker_sees_exact_quotas_and_a_deterministic_stream(corpus):
    import ray.train
    from ray.train.torch import TorchTrainer

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    plans = {f"train_{i}": corpus.plan(b, w, seed=0)
             for i, (b, w) in enumerate(itertools.product(BUDGETS, WEIGHTS))}
    plans["same_seed"] = corpus.plan(BUDGETS[1], WEIGHTS[0], seed=0)   # == train_3
    plans["other_seed"] = corpus.plan(BUDGETS[1], WEIGHTS[0], seed=1)
    assert max(plans["train_8"].epochs.values()) > 1  # a domain repeats
    datasets = {name: corpus.mixture_dataset(p) for name, p in plans.items()}
    trainer = TorchTrainer(
        _count_in_worker,
        train_loop_config={"names": list(plans), "n_domains": len(corpus.domains), "seq_len": SEQ},
        scaling_config=ray.train.ScalingConfig(num_workers=1, resources_per_worker={"CPU": 0.5}),
        datasets=datasets, dataset_config=stream_data_config(tuple(plans)))
    seen = trainer.fit().return_value
    for name, plan in plans.items():
        w = plan.weights
        for i, d in enumerate(corpus.domains):
            assert seen[name]["tokens"][i] == plan.quotas[d] * SEQ, (name, d)
            assert abs(seen[name]["tokens"][i] - w[d] * plan.budget_tokens) <= SEQ, (name, d)
        # the Ray stream is the plan's order: the same as the in-process path
        assert seen[name]["hash"] == _local_hash(corpus, plan), name
    assert seen["same_seed"]["hash"] == seen["train_3"]["hash"]
    assert seen["other_seed"]["hash"] != seen["train_3"]["hash"]
    assert seen["other_seed"]["tokens"] == seen["train_3"]["tokens"]


@pytest.mark.slow
def test_resume_from_a_position_and_validation_independent_of_weights(corpus):
    plan = corpus.plan(60_000, WEIGHTS[2], seed=4)
    full = [b for b in corpus.iter_plan(plan, batch_size=1000)]
    ids = np.concatenate([b["input_ids"] for b in full])
    start = 123
    rows = list(corpus.mixture_dataset(plan, start=start).iter_rows())
    assert len(rows) == plan.n_sequences - start
    assert np.array_equal(np.stack([r["input_ids"] for r in rows]), ids[start:])
    # ranks of the in-process path partition the plan
    parts = [np.concatenate([b["input_ids"] for b in corpus.iter_plan(plan, 50, rank=r, world_size=3)])
             for r in range(3)]
    assert sum(len(p) for p in parts) == plan.n_sequences
    assert np.array_equal(parts[1], ids[1::3])
    ray_rank = corpus.mixture_dataset(plan, start=start, rank=2, world_size=3).take_batch(10_000)
    assert np.array_equal(ray_rank["input_ids"], ids[start + 2::3])
    # validation never appears in any training stream
    train_rows = {r.tobytes() for r in ids}
    for d in corpus.domains:
        assert not any(v.astype(np.int64).tobytes() in train_rows for v in corpus.validation(d))
