"""Baseline mixture searchers driven without Tune (suggest / on_trial_complete in a loop)."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from ray.tune.search import Searcher

from autoscale_ray.errors import BadInput
from autoscale_ray.searchers.baselines import (RandomMixtureSearcher, RegressionSearcher, TPEMixtureSearcher,
                                 UniformSearcher, regmix_dirichlet)
from helpers import drive_searcher

optuna.logging.set_verbosity(optuna.logging.WARNING)

DOMAINS = ("web", "code", "books", "wiki")
TARGET_W = np.array([0.4, 0.3, 0.2, 0.1])


def quadratic(weights: dict[str, float]) -> float:
    """A smooth objective with its minimum at TARGET_W (inside the simplex)."""
    w = np.array([weights[d] for d in DOMAINS])
    return 2.0 + 5.0 * float(((w - TARGET_W) ** 2).sum())


def drive(searcher: Searcher, objective=quadratic, start: int = 0, limit: int = 10_000) -> list[dict]:
    """Suggest and complete one trial at a time until FINISHED (or `limit` trials)."""
    return list(drive_searcher(searcher, lambda config: {"loss": objective(config["weights"])}, start, limit))


def make(kind: str, seed: int = 0, **kw):
    common = dict(budget=2_000_000, lr=1e-3, seed=seed)
    if kind == "uniform":
        return UniformSearcher(DOMAINS, n_trials=kw.pop("n", 4), **common, **kw)
    if kind == "random":
        return RandomMixtureSearcher(DOMAINS, n_trials=kw.pop("n", 30), **common, **kw)
    if kind == "tpe":
        return TPEMixtureSearcher(DOMAINS, n_trials=kw.pop("n", 30), **common, **kw)
    return RegressionSearcher(DOMAINS, n_initial=kw.pop("n", 30), rounds=kw.pop("rounds", 2),
                              n_samples=20_000, **common, **kw)


@pytest.mark.parametrize("kind", ["uniform", "random", "tpe", "regression"])
def test_configs_have_the_trial_shape_and_the_searcher_finishes(kind: str) -> None:
    searcher = make(kind)
    configs = drive(searcher)
    assert len(configs) == searcher.n_trials
    assert searcher.suggest("late") == Searcher.FINISHED
    keys = set()
    for c in configs:
        assert {"key", "stage", "budget", "weights", "lr", "seed", "probe", "tags"} <= set(c)
        assert c["stage"] == kind and c["budget"] == 2_000_000 and c["lr"] == 1e-3
        w = np.array([c["weights"][d] for d in DOMAINS])
        assert list(c["weights"]) == list(DOMAINS)
        assert (w >= 0).all() and w.sum() == pytest.approx(1.0)
        keys.add(c["key"])
    assert len(keys) == len(configs)  # stable, distinct keys
    rec = searcher.recommendation()
    assert sum(rec["weights"].values()) == pytest.approx(1.0)
    if kind == "uniform":
        assert [c["seed"] for c in configs] == [0, 1, 2, 3]
        assert rec["weights"] == {d: 0.25 for d in DOMAINS}


def test_random_sampler_is_seeded_and_centred_on_the_tempered_prior() -> None:
    prior = {"web": 0.5, "code": 0.25, "books": 0.15, "wiki": 0.1}  # 15 x share >= 1: no rejection
    a = [c["weights"] for c in drive(make("random", seed=3, n=20, prior=prior))]
    b = [c["weights"] for c in drive(make("random", seed=3, n=20, prior=prior))]
    c = [c["weights"] for c in drive(make("random", seed=4, n=20, prior=prior))]
    assert a == b and a != c
    p = np.array(list(prior.values()))
    tempered = np.sqrt(p) / np.sqrt(p).sum()   # RegMix's temperature 0.5
    w = regmix_dirichlet(p, 4000, np.random.default_rng(0))
    np.testing.assert_allclose(w.mean(axis=0), tempered, atol=0.02)
    # the spread comes from RegMix's strengths 0.1..5: small ones give sparse draws, large ones
    # draws nearer the prior
    assert (w.max(axis=1) > 0.95).mean() > 0.1
    dist = {s: np.abs(regmix_dirichlet(p, 2000, np.random.default_rng(0), strengths=(s,))
                      - tempered).sum(axis=1).mean() for s in (0.1, 5.0)}
    assert dist[5.0] < 0.6 * dist[0.1]
    # a single large strength concentrates the draws on the tempered prior
    tight = regmix_dirichlet(p, 2000, np.random.default_rng(0), strengths=(500.0,))
    assert np.abs(tight - tempered).max() < 0.1
    # the usage bound: no domain above 15x its token share
    skewed = np.array([0.97, 0.01, 0.01, 0.01])
    assert (regmix_dirichlet(skewed, 2000, np.random.default_rng(1))[:, 1:] <= 0.15 + 1e-12).all()


def test_tpe_improves_on_its_random_start() -> None:
    gains = []
    for seed in range(3):
        configs = drive(make("tpe", seed=seed, n=60, n_startup_trials=10))
        losses = [quadratic(c["weights"]) for c in configs]
        gains.append((min(losses[:10]) - 2.0) / (min(losses) - 2.0))
        assert np.mean(losses[40:]) < np.mean(losses[:10])
    assert np.median(gains) > 2.0   # the excess loss of the best mixture falls by > 2x


def test_regression_finds_the_optimum_of_a_smooth_objective() -> None:
    searcher = make("regression", n=40, rounds=3, seed=1)
    configs = drive(searcher)
    rec = np.array([searcher.recommendation()["weights"][d] for d in DOMAINS])
    best_random = min(quadratic(c["weights"]) for c in configs[:40])
    np.testing.assert_allclose(rec, TARGET_W, atol=0.06)
    assert quadratic(dict(zip(DOMAINS, rec))) < best_random
    # the rounds were issued at the regression's optimum
    last = np.array([configs[-1]["weights"][d] for d in DOMAINS])
    np.testing.assert_allclose(last, TARGET_W, atol=0.08)


def test_regression_waits_for_the_random_runs_before_a_round() -> None:
    searcher = make("regression", n=5, rounds=1)
    for i in range(5):
        assert searcher.suggest(f"t{i}") is not None
    assert searcher.suggest("t5") is None  # nothing to fit yet
    for i in range(5):
        searcher.on_trial_complete(f"t{i}", {"loss": 2.0 + 0.1 * i})
    assert searcher.suggest("t5") is not None
    assert searcher.suggest("t6") == Searcher.FINISHED


@pytest.mark.parametrize("kind", ["random", "tpe", "regression"])
def test_save_restore_mid_run_continues_identically(kind: str, tmp_path) -> None:
    first = make(kind, n=14, **({"rounds": 2} if kind == "regression" else {}))
    drive(first, limit=12)
    path = str(tmp_path / "searcher.pkl")
    first.save(path)
    rest_a = drive(first, start=12)
    second = make(kind, seed=99, n=14, **({"rounds": 2} if kind == "regression" else {}))
    second.restore(path)
    rest_b = drive(second, start=12)
    assert rest_a == rest_b and len(rest_a) == first.n_trials - 12
    assert second.recommendation() == first.recommendation()


def test_failed_trials_count_against_the_budget_and_stay_out_of_the_fit() -> None:
    searcher = make("random", n=3)
    for i in range(3):
        searcher.suggest(f"t{i}")
    searcher.on_trial_complete("t0", None, error=True)
    searcher.on_trial_complete("t1", {"loss": float("nan")})
    searcher.on_trial_complete("t2", {"loss": 2.5})
    assert searcher.failed == [0, 1] and len(searcher.observed) == 1
    assert searcher.recommendation()["observed"] == 2.5
    assert searcher.suggest("t3") == Searcher.FINISHED


def test_max_mode_picks_the_largest_objective() -> None:
    searcher = make("random", n=3, metric="score", mode="max")
    for i, value in enumerate((1.0, 3.0, 2.0)):
        searcher.suggest(f"t{i}")
        searcher.on_trial_complete(f"t{i}", {"score": value, "loss": -value})
    assert searcher.recommendation()["observed"] == 3.0


def test_bad_input_is_one_line() -> None:
    with pytest.raises(BadInput, match="unknown domains"):
        RandomMixtureSearcher(DOMAINS, n_trials=3, budget=10, lr=1e-3, prior={"nope": 1.0})
    with pytest.raises(BadInput, match="n_initial"):
        RegressionSearcher(DOMAINS, n_initial=2, budget=10, lr=1e-3)
    with pytest.raises(BadInput):
        UniformSearcher(DOMAINS, n_trials=0, budget=10, lr=1e-3)
