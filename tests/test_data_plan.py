"""The mixture plan (pure numpy): exact quotas, repetition, determinism, bad weights."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from autoscale_ray.data.plan import make_plan
from autoscale_ray.errors import BadInput

DOMAINS = ("web", "code", "books")
N_TRAIN = (5000, 800, 120)   # books is small: large weights on it must repeat it
SEQ = 64


def plan(budget, weights, seed=0, **kw):
    return make_plan(budget, weights, seed, domains=DOMAINS, n_train=N_TRAIN, seq_len=SEQ,
                     corpus_key="k", **kw)


@pytest.mark.parametrize("budget", [10_000, 150_000, 1_000_003])
@pytest.mark.parametrize("weights", [{"web": 0.5, "code": 0.3, "books": 0.2},
                                     {"web": 0.6, "code": 0.0, "books": 0.4},
                                     {"web": 1, "code": 1, "books": 1}])
def test_quotas_are_exact_and_within_one_sequence(budget, weights):
    p = plan(budget, weights)
    total_w = sum(weights.values())
    counts = np.bincount(p.domain_of, minlength=len(DOMAINS))
    for i, d in enumerate(DOMAINS):
        assert counts[i] == p.quotas[d]
        assert abs(p.quotas[d] * SEQ - weights[d] / total_w * budget) <= SEQ / 2
        rows = p.index_of[p.domain_of == i]
        assert rows.min(initial=0) >= 0 and rows.max(initial=0) < N_TRAIN[i]
        assert p.epochs[d] == pytest.approx(p.quotas[d] / N_TRAIN[i])
    assert p.n_sequences == len(p.domain_of) == counts.sum()
    assert p.tokens() == p.n_sequences * SEQ


def test_zero_weight_domain_never_appears_and_missing_domain_is_zero():
    p = plan(100_000, {"web": 0.7, "books": 0.3})
    assert p.quotas["code"] == 0 and 1 not in set(p.domain_of.tolist())
    assert p.weights["code"] == 0.0


def test_repetition_uses_every_sequence_once_per_epoch():
    p = plan(1_000_000, {"web": 0.0, "code": 0.0, "books": 1.0})  # 15625 seqs of 120: ~130 epochs
    counts = np.bincount(p.index_of, minlength=N_TRAIN[2])
    q = p.quotas["books"]
    assert counts.min() == q // N_TRAIN[2] and counts.max() == -(-q // N_TRAIN[2])
    # the first epoch is a permutation of the domain
    first = p.index_of[:N_TRAIN[2]]
    assert sorted(first.tolist()) == list(range(N_TRAIN[2]))
    assert p.epochs["books"] > 100


def test_warns_above_the_epoch_limit(caplog):
    with caplog.at_level(logging.WARNING, logger="autoscale_ray"):
        plan(100_000, {"web": 0.5, "books": 0.5}, max_epochs=4.0)   # books: 781 / 120 = 6.5 epochs
    assert any("`books` is repeated 6.5 times" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autoscale_ray"):
        plan(100_000, {"web": 0.5, "books": 0.5}, max_epochs=8.0)
    assert not caplog.records


def test_same_seed_same_stream_other_seed_other_order_same_quotas():
    w = {"web": 0.5, "code": 0.3, "books": 0.2}
    a, b, c = plan(200_000, w, seed=7), plan(200_000, w, seed=7), plan(200_000, w, seed=8)
    assert a.digest() == b.digest() and np.array_equal(a.order, b.order)
    assert a.digest() != c.digest() and a.quotas == c.quotas
    assert not np.array_equal(a.domain_of, c.domain_of)


def test_a_domain_draw_does_not_depend_on_the_other_weights():
    small = plan(200_000, {"web": 0.2, "code": 0.3, "books": 0.5}, seed=3)
    large = plan(200_000, {"web": 0.8, "code": 0.1, "books": 0.1}, seed=3)
    seq_small = small.index_of[small.domain_of == 0]
    seq_large = large.index_of[large.domain_of == 0]
    assert np.array_equal(seq_large[:len(seq_small)], seq_small)


@pytest.mark.parametrize("weights, match", [
    ({"web": 0, "code": 0, "books": 0}, "all weights are zero"),
    ({"web": -0.1, "code": 1.0}, "negative weight"),
    ({"web": 1.0, "news": 0.5}, r"unknown domain\(s\) \['news'\]"),
    ({"web": float("nan")}, "not a finite number"),
])
def test_bad_weights_are_one_line_errors(weights, match):
    with pytest.raises(BadInput, match=match) as info:
        plan(100_000, weights)
    assert "\n" not in str(info.value)


def test_bad_budget_and_seed():
    with pytest.raises(BadInput, match="smaller|no domain a whole sequence"):
        plan(10, {"web": 1.0})
    with pytest.raises(BadInput, match="not a positive number"):
        plan(-5, {"web": 1.0})
    with pytest.raises(BadInput, match="seed"):
        plan(1000, {"web": 1.0}, seed=-1)
