"""The predictor driving the DDO plan on a synthetic oracle with known laws (no Ray)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from autoscale_ray.tuning.specs import log_grid
from autoscale_ray.predictor import Predictor
from autoscale_ray.searchers.ddo import DDOPlan, PlanConfig
from helpers import drive_plan
from test_search_plan import drive_shuffled

DOMAINS = ("fast", "mid", "slow")
E = np.array([1.0, 1.5, 2.0])
B = np.array([20.0, 30.0, 40.0])
G = np.array([0.6, 0.45, 0.35])     # "fast" saturates quickly, "slow" keeps improving
LR_B, LR_BETA = 2.0, 0.3            # true LR*(D) = 2 D^-0.3


def oracle(spec, n_evals: int = 6) -> list[dict]:
    """Evaluation rows of one run: separable per-domain power laws in the domain's own tokens,
    plus a quadratic penalty in log LR around the true LR*(budget)."""
    w = np.array([spec.weights[d] for d in DOMAINS])
    rows = []
    for tokens in np.geomspace(spec.budget / 8, spec.budget, n_evals):
        per = E + B * np.maximum(w * tokens, 1.0) ** -G
        per = per + 0.05 * (np.log(spec.lr) - np.log(LR_B * spec.budget ** -LR_BETA)) ** 2
        rows.append({"run_id": spec.key, "tokens": float(tokens), "budget": spec.budget,
                     "lr": spec.lr, **{f"w.{d}": float(x) for d, x in zip(DOMAINS, w)},
                     **{f"loss.{d}": float(x) for d, x in zip(DOMAINS, per)}})
    return rows


def run_search(probes, target, predictor_design: dict | None = None, **design):
    """The plan and the predictor on the oracle; `design` (design, down, up) goes to both, or
    `predictor_design` to the predictor alone."""
    cfg = PlanConfig(probes=probes, base_weights={d: 1 / 3 for d in DOMAINS}, target=target,
                     lrs=log_grid(LR_B * probes[0] ** -LR_BETA, 5, 2.0), **design)
    pred = Predictor(DOMAINS, target, probes=probes, **(design if predictor_design is None else predictor_design))
    plan = DDOPlan(cfg)
    plan.start()
    drive_plan(plan, pred, oracle)
    return plan, pred


def test_search_on_a_known_oracle() -> None:
    started = time.perf_counter()
    plan, pred = run_search([20_000, 80_000], 1_280_000)
    # the fits' seconds, counted once (the answer fits no optimum twice): within the search's wall
    assert 0 < pred.fit_time() <= time.perf_counter() - started
    pred.optima.clear()  # as after a resume: the answer fits each probe's optimum inside its own time
    pred._cached, before, started = None, pred.fit_time(), time.perf_counter()
    again = pred.recommendation()
    assert 0 < pred.fit_time() - before <= time.perf_counter() - started
    assert again["weights"] == plan.results["recommendation"]["weights"]
    rec = plan.results["recommendation"]
    law = pred.lr_law()
    assert law.beta == pytest.approx(LR_BETA, abs=0.03)
    assert rec["lr"] == pytest.approx(LR_B * 1_280_000 ** -LR_BETA, rel=0.1)
    # DDO trials ran at the LR the sweeps give: the true LR*(budget) within a few percent
    ddo = [r for r in pred.rows if r["key"].startswith("ddo")]
    assert ddo and all(r["lr"] == pytest.approx(LR_B * r["budget"] ** -LR_BETA, rel=0.03) for r in ddo)
    w1 = plan.results["ddo"][20_000]["weights"]
    w2 = plan.results["ddo"][80_000]["weights"]
    # the optimum shifts towards the slowly saturating domain with scale, and the projection
    # continues the shift (AutoScale's central observation)
    assert w2["slow"] > w1["slow"] and w2["fast"] < w1["fast"]
    assert rec["weights"]["slow"] > w2["slow"] and rec["weights"]["fast"] < w2["fast"]
    assert sum(rec["weights"].values()) == pytest.approx(1.0)
    # expected losses: each domain's L(D) in its own tokens over every DDO run, at the
    # recommended mixture; exact on this oracle (separable in own tokens), inside its interval
    exp = rec["expected_loss"]
    assert exp["source"] == "own-tokens" and set(exp["per_domain"]) == set(DOMAINS)
    w = np.array([rec["weights"][d] for d in DOMAINS])
    truth = E + B * (w * 1_280_000) ** -G  # DDO runs trained near LR*, so a tiny LR penalty
    got = np.array([exp["per_domain"][d] for d in DOMAINS])
    np.testing.assert_allclose(got, truth, rtol=0.02)
    for d, t in zip(DOMAINS, truth):
        lo, hi = rec["expected_loss_interval"][d]
        assert lo <= exp["per_domain"][d] <= hi and hi - lo < 0.1 * t
    assert len(rec["evidence"]["trials"]) == 2 * 5 + 2 * 7


def test_true_constrained_optimum_is_approached() -> None:
    """DDO's optimum at a probe against the true optimum of the oracle at that budget."""
    plan, _ = run_search([20_000, 80_000], 320_000)
    probe = 80_000
    grid = np.array([(a, b, 1 - a - b) for a in np.linspace(0.01, 0.98, 300)
                     for b in np.linspace(0.01, 0.98, 300) if a + b < 0.99])
    losses = (E + B * (grid * probe) ** -G).mean(axis=1)
    best = grid[np.argmin(losses)]
    got = np.array([plan.results["ddo"][probe]["weights"][d] for d in DOMAINS])
    np.testing.assert_allclose(got, best, atol=0.06)


@pytest.mark.parametrize("design", [{"design": "fixed-total", "down": 0.5, "up": 2.0},
                                    {"design": "fixed-others", "down": 0.25, "up": 4.0}])
def test_the_predictor_fits_the_configured_design(design: dict) -> None:
    """The search tells the predictor its DDO design and factors; the fit uses them as given."""
    plan, pred = run_search([20_000, 80_000], 1_280_000, **design)
    for probe in (20_000, 80_000):
        optimum = plan.results["ddo"][probe]
        assert optimum["design"] == design["design"]
        factors = sorted({p["factor"] for p in optimum["perturbations"].values()})
        assert factors == pytest.approx([design["down"], design["up"]], rel=1e-6)


def test_a_design_the_runs_do_not_follow_is_not_silently_redetected() -> None:
    """Told fixed-others with factors 0.2/3 while the runs follow fixed-total 0.5/2, the fit does
    not guess another design: the probes cannot be fitted, and the search says so."""
    plan, pred = run_search([20_000, 80_000], 1_280_000, design="fixed-total", down=0.5, up=2.0,
                            predictor_design={"design": "fixed-others", "down": 0.2, "up": 3.0})
    assert not any(plan.results["ddo"].values()) and "recommendation" not in plan.results
    assert any("not a DDO perturbation design" in n and "(fixed-others)" in n for n in pred.notes)
    assert Predictor(DOMAINS, 1, probes=[1]).design == "auto"  # standalone use still detects


def shuffled_search(probes, target, lrs, seed: int, slots: int = 3, **predictor):
    """The plan and the predictor on the oracle, trials completed in a seeded random order."""
    cfg = PlanConfig(probes=probes, base_weights={d: 1 / 3 for d in DOMAINS}, target=target, lrs=lrs)
    pred = Predictor(DOMAINS, target, probes=probes, **predictor)
    plan = DDOPlan(cfg)
    plan.start()
    return plan, pred, drive_shuffled(plan, pred, oracle, slots=slots, seed=seed)


def test_ddo_lrs_do_not_depend_on_the_completion_order() -> None:
    """Before, a probe whose sweep finished first took its DDO LR from the one-horizon fallback
    (beta 0.32), the other from the two-horizon law: the answer followed the scheduling."""
    probes, target = [20_000, 80_000], 1_280_000
    lrs = log_grid(LR_B * probes[0] ** -LR_BETA, 5, 2.0)
    answers = []
    for seed in (0, 1, 2):
        plan, pred, issued = shuffled_search(probes, target, lrs, seed)
        answers.append(({s.key: s.lr for s in issued if s.stage == "ddo"},
                        plan.results["recommendation"]["lr"]))
    assert [s.stage for s in issued[:10]] == ["lr"] * 10
    assert answers[0] == answers[1] == answers[2]  # bit for bit
    law = pred.lr_law()
    # each probe's runs at its own sweep's vertex, moved along the law's slope to the run's budget
    vertex = {h.tokens: h.lr_star for h in law.horizons if h.used}
    for s in issued:
        if s.stage == "ddo":
            assert s.lr == float(vertex[s.probe] * (s.budget / s.probe) ** -law.beta)


def test_an_edge_sweep_is_extended_until_the_law_is_fitted() -> None:
    """The demo's failure: a grid whose largest LR is the best at a horizon left no LR law and an
    empty interval. Extending the sweep brackets the optimum and the law is fitted."""
    probes, target = [20_000, 80_000], 1_280_000
    lrs = log_grid(LR_B * probes[0] ** -LR_BETA / 6, 4, 2.0)  # every LR below both optima
    plan, pred, issued = shuffled_search(probes, target, lrs, seed=0, batch_tokens=4096)
    assert plan.lr_extra > 0 and all(r >= 1 for r in plan.lr_rounds.values())
    assert all(h["used"] for h in pred.lr_horizons())
    law = pred.lr_law()
    assert law is not None and law.beta_raw == pytest.approx(LR_BETA, abs=0.03)
    rec = plan.results["recommendation"]
    lo, hi = rec["lr_interval"]  # exact oracle: a (near) zero-width interval, but not empty
    assert np.isfinite([lo, hi]).all() and lo <= rec["lr"] <= hi
    assert rec["lr"] == pytest.approx(LR_B * target ** -LR_BETA, rel=0.15)
    assert rec["lr_batch_tokens"] == 4096
    assert any("4096 tokens" in n and "fixed batch size" in n for n in rec["evidence"]["notes"])
    evidence = rec["evidence"]["lr_law"]
    assert evidence["beta_raw"] == law.beta_raw and evidence["beta_prior"] == 0.32


def test_recommendation_without_a_batch_size_says_none() -> None:
    plan, pred = run_search([20_000, 80_000], 1_280_000)
    assert plan.results["recommendation"]["lr_batch_tokens"] is None


def test_expected_losses_use_every_ddo_run() -> None:
    """The own-token L(D) fits take every DDO run of every round (they vary each domain's tokens
    0.2x-3x), not the base mixture's runs alone."""
    plan, pred = run_search([20_000, 80_000], 1_280_000, predictor_design={}, rounds=2)
    assert any("/r2/" in r["key"] for r in pred.rows)
    runs = plan.results["recommendation"]["expected_loss"]["runs"]
    ddo_keys = sorted({r["key"] for r in pred.rows if r["key"].startswith("ddo/")})
    assert runs == ddo_keys and any("/r2/" in k for k in runs) and len(runs) > 2 * 7


def test_a_probe_trains_at_its_own_sweeps_vertex_not_the_shrunk_law() -> None:
    """The demo's case: vertices 1.7e-2 at 1e5 tokens and 2.2e-3 at 3e5 (a slope far from
    Bjorck et al.'s 0.32), where the prior-shrunk law gave 4.4e-3 and 2.9e-3.
    Near a swept horizon the run's LR is that horizon's vertex moved along the law's slope;
    far from every horizon (the target) it is the law's."""
    true_star = {100_000: 3e-2, 300_000: 1.3e-3}
    pred = Predictor(DOMAINS, 4_800_000, probes=list(true_star))
    rng = np.random.default_rng(0)  # noisy losses: the vertices have standard errors, so the prior acts
    for horizon, star in true_star.items():
        for k, lr in enumerate(star * np.array([0.1, 0.3, 1.0, 3.0, 10.0])):
            loss = 3.0 + 0.05 * np.log(lr / star) ** 2 + rng.normal(0, 0.02)
            pred.add(f"lr/{horizon}/{k}", [{"run_id": f"lr{horizon}-{k}", "tokens": horizon, "budget": horizon,
                                             "lr": float(lr), "loss": loss,
                                             **{f"w.{d}": 1 / 3 for d in DOMAINS}}], {"probe": horizon})
    law = pred.lr_law()
    assert law.beta < law.beta_raw  # the prior pulled the slope toward 0.32
    vertex = {h.tokens: h.lr_star for h in law.horizons}
    assert float(law.predict(300_000)) > 1.2 * vertex[300_000]  # the law's value is off there
    for horizon, star in true_star.items():
        assert vertex[horizon] == pytest.approx(star, rel=0.5)
        assert pred.lr_for(horizon) == pytest.approx(vertex[horizon], rel=1e-12)
        assert pred.lr_for(1.5 * horizon) == pytest.approx(vertex[horizon] * 1.5 ** -law.beta, rel=1e-12)
    assert pred.lr_for(4_800_000) == float(law.predict(4_800_000))  # 16x past the last horizon
