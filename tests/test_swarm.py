"""The swarm methods (searchers/swarm.py + fits/swarm.py) driven as a search drives them, without
Ray: SwarmPlan + Predictor on the benchmark's oracles (transfer between domains, and separable with
interactions), plus known answers for the choice and its noise."""

from __future__ import annotations

import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscale_ray.fits.swarm import choose_mixture, measured_noise
from autoscale_ray.laws.mixing_law import MixingLaw
from autoscale_ray.laws.mixture_optimum import optimal_mixture
from autoscale_ray.predictor import Predictor
from autoscale_ray.runs import validate
from autoscale_ray.searchers.swarm import SwarmConfig, SwarmPlan

from helpers import drive_plan

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import search_efficiency as se  # noqa: E402  (the oracles)

BUDGET = int(4e7)
DDO_KEYS = {"tokens", "weights", "weights_interval", "interval_level", "at_bound", "capped", "epochs",
            "max_epochs", "available_tokens", "lr", "lr_interval", "lr_interval_method",
            "lr_batch_tokens", "expected_loss", "expected_loss_interval", "trust", "evidence"}
FIXED = {"wiki": 0.1, "books": 0.2, "code": 0.3, "web": 0.4}


def drive(method: str, surface: str = "transfer", seed: int = 0, size: int = 20,
          order: str = "forward") -> tuple[SwarmPlan, list, dict]:
    cfg = SwarmConfig(method=method, base_weights={d: 0.25 for d in se.DOMAINS}, budget=BUDGET,
                      size=size, target=int(se.TARGET), lr=se.LR, replicates=2, seed=seed,
                      fixed=FIXED if method == "fixed" else None, batch=4)
    pred = Predictor(se.DOMAINS, se.TARGET, probes=[BUDGET], lr=se.LR, method=method,
                     fixed_weights=cfg.fixed, loss_draws=10, seed=seed)
    plan = SwarmPlan(cfg)
    plan.start()
    fn = se.SURFACES["transfer" if surface == "transfer" else "separable + interactions"]

    def rows(spec) -> list[dict]:  # each run's noise from its key: the same whatever the order
        rng = np.random.default_rng([seed, zlib.crc32(spec.key.encode())])
        return se.Oracle(0.01, rng, fn).rows(spec.key, spec.weights, spec.budget)

    if order == "forward":
        issued = drive_plan(plan, pred, rows)
    else:  # each batch completed last-issued first: the order trials finish in must not matter
        issued, n = [], 0
        while not plan.finished:
            batch = []
            while (spec := plan.next_spec(f"t{n}")) is not None:
                batch.append((f"t{n}", spec))
                n += 1
            for tid, spec in reversed(batch):
                plan.complete(tid, rows(spec), True, pred)
                issued.append(spec)
    return plan, issued, plan.results["recommendation"]


@pytest.mark.parametrize("method", ["random", "regmix", "log-linear", "tpe", "uniform", "fixed"])
def test_every_method_gives_the_search_s_recommendation(method: str) -> None:
    plan, issued, rec = drive(method)
    assert len(issued) == plan.planned_trials() == (20 if method in ("uniform", "fixed") else 23)
    assert DDO_KEYS <= set(rec) and rec["method"] == method
    assert rec["evidence"]["swarm"]["method"] == method and rec["evidence"]["probe_optima"] == {}
    w = np.array([rec["weights"][d] for d in se.DOMAINS])
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0)
    for d, (lo, hi) in rec["weights_interval"].items():
        assert lo - 1e-12 <= rec["weights"][d] <= hi + 1e-12, (d, lo, hi)
    assert rec["trust"]["extrapolation_factor"] == pytest.approx(se.TARGET / BUDGET)
    assert rec["trust"]["noise"][str(BUDGET)]["noise"]["objective_sd"] is not None  # replicates
    assert set(rec["expected_loss"]["per_domain"]) == set(se.DOMAINS)
    assert {s.stage for s in issued} == {"swarm"} and all(s.budget == BUDGET for s in issued)


def test_given_mixtures_are_kept_exactly() -> None:
    _, issued, rec = drive("fixed")
    assert rec["weights"] == pytest.approx(FIXED)
    assert all(hi - lo == 0 for lo, hi in rec["weights_interval"].values())
    assert sorted(s.seed for s in issued) == list(range(20))  # one mixture, 20 seeds
    _, _, uniform = drive("uniform")
    assert uniform["weights"] == pytest.approx({d: 0.25 for d in se.DOMAINS})


def test_regression_methods_beat_the_uniform_mixture_at_the_swarm_budget() -> None:
    """On both oracles, the noise-free objective at the swarm's own budget of regmix's and
    log-linear's mixtures is below the uniform mixture's (what the swarm can see)."""
    for surface in ("transfer", "separable"):
        fn = se.SURFACES["transfer" if surface == "transfer" else "separable + interactions"]
        uniform = se.objective(np.full(4, 0.25), BUDGET, fn)[0]
        for method in ("regmix", "log-linear"):
            _, _, rec = drive(method, surface, size=32)
            w = np.array([rec["weights"][d] for d in se.DOMAINS])
            assert se.objective(w, BUDGET, fn)[0] < uniform, (surface, method, rec["weights"])


def test_tpe_runs_do_not_depend_on_the_order_trials_finish_in() -> None:
    _, forward, rec_f = drive("tpe", size=12)
    _, backward, rec_b = drive("tpe", size=12, order="backward")
    as_set = lambda specs: sorted((s.key, tuple(round(v, 12) for v in s.weights.values())) for s in specs)  # noqa: E731
    assert as_set(forward) == as_set(backward)
    assert rec_f["weights"] == pytest.approx(rec_b["weights"])
    _, other, _ = drive("tpe", size=12, seed=1)
    assert as_set(other) != as_set(forward)


def test_same_seed_same_recommendation() -> None:
    for method in ("regmix", "log-linear", "random"):
        assert drive(method, seed=3)[2]["weights_interval"] == drive(method, seed=3)[2]["weights_interval"]


# -- the choice: known answers -------------------------------------------------------------------
def _table(w: np.ndarray, losses: np.ndarray) -> object:
    rows = [{"run_id": f"r{i}", "tokens": 1e6, "budget": 1e6,
             **{f"w.d{j}": float(x) for j, x in enumerate(wi)},
             **{f"loss.d{j}": float(x) for j, x in enumerate(li)}} for i, (wi, li) in enumerate(zip(w, losses))]
    return validate(pd.DataFrame(rows), "<test>")


def test_log_linear_recovers_the_optimum_of_an_exact_mixing_law() -> None:
    rng = np.random.default_rng(0)
    C = np.array([[2.0, 0.8], [2.5, 0.6], [1.8, 1.0]])
    T = np.zeros((3, 2, 3))
    T[:, 1] = [[-2.0, 0.5, 0.3], [0.4, -1.5, 0.2], [0.1, 0.6, -2.5]]
    law = MixingLaw(C, T)
    w = rng.dirichlet(np.ones(3), size=24)
    choice = choose_mixture(_table(w, law.predict(w)), "log-linear", draws=0)
    truth = optimal_mixture(law).weights
    assert np.array(list(choice.weights.values())) == pytest.approx(truth, abs=2e-3)


def test_random_picks_the_best_mean_mixture_and_pools_the_replicate_noise() -> None:
    w = np.array([[0.5, 0.5], [0.5, 0.5], [0.2, 0.8], [0.9, 0.1], [0.9, 0.1]])
    y = np.array([3.0, 3.2, 3.05, 3.3, 3.1])  # means: 3.1, 3.05, 3.2
    choice = choose_mixture(_table(w, np.c_[y, y]), "random", draws=50)
    assert choice.weights == pytest.approx({"d0": 0.2, "d1": 0.8})
    assert choice.observed_best == pytest.approx(3.05)
    # pooled sd over the two replicated mixtures: sqrt((0.02 + 0.02) / 2) = 0.1414
    assert choice.noise_sd == pytest.approx(np.sqrt(0.02), rel=1e-9) and choice.replicates == 2
    sd, reps = measured_noise(np.array([1.0, 2.0, 5.0]), np.array([0, 1, 2]))
    assert sd is None and reps == 1


def _lr_drive(method: str, lrs: list[float]) -> tuple[SwarmPlan, list, dict]:
    """A swarm whose oracle has an LR optimum at 2e-3 (final loss + 0.05 (log lr - log 2e-3)^2)."""
    cfg = SwarmConfig(method=method, base_weights={d: 0.25 for d in se.DOMAINS}, budget=BUDGET, size=12,
                      target=int(se.TARGET), lrs=lrs, replicates=1, batch=4)
    pred = Predictor(se.DOMAINS, se.TARGET, probes=[BUDGET], method=method, loss_draws=0)
    plan = SwarmPlan(cfg)
    plan.start()

    def rows(spec) -> list[dict]:
        rng = np.random.default_rng(zlib.crc32(spec.key.encode()))
        out = se.Oracle(0.002, rng, se.SURFACES["transfer"]).rows(spec.key, spec.weights, spec.budget)
        for r in out:
            bump = 0.05 * (np.log(spec.lr) - np.log(2e-3)) ** 2
            r.update(lr=spec.lr, loss=r["loss"] + bump, **{k: v + bump for k, v in r.items() if k.startswith("loss.")})
        return out

    return plan, drive_plan(plan, pred, rows), plan.results["recommendation"]


def test_a_swarm_sweeps_the_lr_first_and_tpe_searches_it_jointly() -> None:
    grid = [5e-4, 1e-3, 4e-3, 8e-3]
    plan, issued, rec = _lr_drive("regmix", grid)
    sweep = [s for s in issued if not s.key.startswith("swarm/")]
    assert [s.stage for s in sweep] == ["lr"] * 4 and {s.lr for s in sweep} == set(grid)
    swarm_lrs = {s.lr for s in issued if s.stage == "swarm"}
    assert len(swarm_lrs) == 1 and 1.5e-3 < swarm_lrs.pop() < 2.7e-3  # the sweep's vertex, ~2e-3
    assert rec["lr_interval_method"] == "prior" and rec["lr_interval"][0] < rec["lr"] < rec["lr_interval"][1]
    assert rec["lr"] < 2.7e-3 * (se.TARGET / BUDGET) ** -0.2  # moved down to the target's horizon
    _, issued, rec = _lr_drive("tpe", grid)
    assert all(s.stage == "swarm" for s in issued)  # no sweep: the LR is one of TPE's dimensions
    lrs = [s.lr for s in issued if "base" not in s.key]
    assert len(set(lrs)) == len(lrs) and min(grid) <= min(lrs) and max(lrs) <= max(grid)
    assert rec["lr_interval_method"] == "prior" and rec["lr_interval"][0] < rec["lr"] < rec["lr_interval"][1]
