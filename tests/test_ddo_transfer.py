"""DDO with cross-domain transfer (autoscale_ray.laws.ddo_transfer): recovery of a known transfer
surface, the reduction to the paper's surrogate on a separable one, determinism, bad input, the
`ddo --surrogate transfer` command and the predictor's use of it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from autoscale_ray.errors import BadInput
from autoscale_ray.fits.ddo import ddo
from autoscale_ray.laws.ddo import solve_ddo
from autoscale_ray.laws.ddo_transfer import solve_ddo_transfer
from autoscale_ray.predictor import Predictor
from autoscale_ray.runs import write_runs
from autoscale_ray.searchers.ddo import DDOPlan, PlanConfig
from data_fixtures import cli  # noqa: F401  (a fixture: the command in this process)
from helpers import drive_plan

DOMAINS = ("web", "wiki", "code")
# the true surface, in multipliers of a base run: L_j = E_j + B_j (sum_i T_ji x_i + a_j)^(-b_j)
T = np.array([[1.0, 0.1, 0.05],
              [0.4, 1.0, 0.02],
              [0.03, 0.06, 1.0]])      # web helps wiki a lot; every domain helps every other a little
A = np.array([0.3, 0.1, 0.5])
BETA = np.array([0.5, 0.9, 0.3])
E = np.array([2.0, 1.5, 1.0])
SCALE = np.array([1.5, 1.0, 2.0])


def losses(x: np.ndarray, t: np.ndarray = T) -> np.ndarray:
    return E + SCALE * (np.atleast_2d(x) @ t.T + A) ** (-BETA)


def design(factors=(0.2, 3.0), kind: str = "fixed-others", w0=(1 / 3, 1 / 3, 1 / 3)) -> np.ndarray:
    """Multipliers of the base run and of each domain's perturbations (rows x domains)."""
    w0 = np.asarray(w0)
    rows = [np.ones(3)]
    for i in range(3):
        for f in factors:
            x = np.ones(3)
            x[i] = f
            if kind == "fixed-total":  # the others rescaled so the total stays the base's
                x[np.arange(3) != i] = (1 - f * w0[i]) / (1 - w0[i])
            rows.append(x)
    return np.array(rows)


def true_optimum(w0: np.ndarray, lower: float = 0.2, t: np.ndarray = T) -> np.ndarray:
    """The mean-loss optimum of the true surface (weights), by SLSQP from many starts."""
    best = None
    for x0 in [np.ones(3), *np.random.default_rng(0).uniform(lower, 2.0, (8, 3))]:
        x0 = x0 / (w0 @ x0)
        r = minimize(lambda x: float(losses(x, t).mean()), x0, method="SLSQP",
                     bounds=[(lower, 1 / w) for w in w0],
                     constraints=[{"type": "eq", "fun": lambda x: w0 @ x - 1}],
                     options={"ftol": 1e-15, "maxiter": 1000})
        if best is None or r.fun < best.fun:
            best = r
    return w0 * best.x / (w0 @ best.x)


@pytest.mark.parametrize("factors,kind", [((0.2, 0.5, 2.0, 3.0), "fixed-others"),
                                          ((0.2, 3.0), "fixed-others"),
                                          ((0.2, 0.5, 2.0), "fixed-total")])
def test_recovers_a_known_transfer_surface(factors, kind) -> None:
    w0 = np.array([0.4, 0.35, 0.25])
    x = design(factors, kind, w0)
    res = solve_ddo_transfer(x * w0 * 1e7, losses(x), factors=factors)
    assert res.design.kind == kind
    fit = res.fit
    assert np.abs(fit.residuals).max() < 1e-8
    np.testing.assert_allclose(fit.b, BETA, rtol=1e-4)
    np.testing.assert_allclose(fit.c, E / losses(np.ones(3))[0], rtol=1e-4)   # c_j = E_j / L_j(base)
    if kind == "fixed-others":
        np.testing.assert_allclose(fit.transfer, T, atol=1e-5)
        np.testing.assert_allclose(fit.a, A, rtol=1e-4)
    else:
        # every fixed-total run lies on the budget plane w0 . x = 1, which identifies each row of
        # T only up to adding a multiple of w0 (a_j and the scale absorb it): the fit is the
        # truth on the plane, where the optimum lives, and need not be T itself
        plane = np.random.default_rng(1).uniform(0.2, 2.0, (50, 3))
        plane /= (plane @ w0)[:, None]
        np.testing.assert_allclose(fit.losses(plane), losses(plane), rtol=1e-7)
        assert not np.allclose(fit.transfer, T, atol=1e-3)
    np.testing.assert_allclose(res.optimum.weights, true_optimum(w0), atol=1e-5)
    assert res.optimum.objective == pytest.approx(losses(res.optimum.multipliers).mean(), rel=1e-9)
    assert res.optimum.weights.sum() == pytest.approx(1.0)
    assert w0 @ res.optimum.multipliers == pytest.approx(1.0, rel=1e-12)   # the budget is kept


def test_mean_ppl_optimum_is_the_true_one() -> None:
    x = design((0.2, 0.5, 2.0, 3.0))
    w0 = np.full(3, 1 / 3)
    res = solve_ddo_transfer(x * w0 * 1e7, losses(x), metric="mean-ppl", factors=(0.2, 3.0))
    r = minimize(lambda v: float(np.exp(losses(v)).mean()), np.ones(3), method="SLSQP",
                 bounds=[(0.2, 3.0)] * 3, constraints=[{"type": "eq", "fun": lambda v: v.sum() - 3}],
                 options={"ftol": 1e-15})
    np.testing.assert_allclose(res.optimum.multipliers, r.x, atol=1e-5)
    # perplexity weighs the high-loss domain more than the mean loss does
    assert not np.allclose(res.optimum.weights, solve_ddo_transfer(
        x * w0 * 1e7, losses(x), factors=(0.2, 3.0)).optimum.weights, atol=1e-3)


def test_reduces_to_the_paper_fit_on_a_separable_surface() -> None:
    """Per-domain losses L_j = m ((x_j + a_j)^(-b_j) + c_j) with sum_j L_j(base) / m = 1, so the
    mean loss is exactly the paper's surrogate sum_i (x_i + a_i)^(-b_i) + C: no transfer is found
    and the optimum is the paper surrogate's (both fits unique with 4 factors per domain)."""
    a, b = np.array([1.5, 2.0, 5.0]), np.array([1.2, 1.5, 0.6])
    c = np.full(3, (1 - ((1 + a) ** (-b)).sum()) / 3)
    factors = (0.2, 0.5, 2.0, 3.0)
    x = design(factors)
    per = 3 * ((x + a) ** (-b) + c)
    w0 = np.full(3, 1 / 3)
    mine = solve_ddo_transfer(x * w0 * 1e7, per, factors=factors)
    paper = solve_ddo(x * w0 * 1e7, per.mean(axis=1), factors=factors)
    assert paper.fit.rmse < 1e-8 and paper.weight_spread == 0.0
    np.testing.assert_allclose(mine.fit.transfer, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(mine.fit.a, a, rtol=1e-5)
    np.testing.assert_allclose(mine.optimum.weights, paper.optimum.weights, atol=1e-6)
    assert mine.optimum.at_bound == paper.optimum.at_bound
    assert mine.optimum.objective == pytest.approx(paper.optimum.objective, rel=1e-8)


def test_deterministic_and_stable_under_tiny_perturbations() -> None:
    x = design((0.2, 3.0))
    rng = np.random.default_rng(7)
    noisy = losses(x) + rng.normal(0, 0.01, (len(x), 3))
    q = x / 3 * 1e7
    first, second = solve_ddo_transfer(q, noisy), solve_ddo_transfer(q, noisy)
    assert first.optimum.weights.tobytes() == second.optimum.weights.tobytes()
    assert first.fit.transfer.tobytes() == second.fit.transfer.tobytes()
    for k in range(3):
        jitter = np.random.default_rng(100 + k)
        bumped = solve_ddo_transfer(q * (1 + 1e-12 * jitter.standard_normal(q.shape)),
                                    noisy * (1 + 1e-12 * jitter.standard_normal(noisy.shape)))
        np.testing.assert_allclose(bumped.optimum.weights, first.optimum.weights, atol=1e-8)
        np.testing.assert_allclose(bumped.fit.transfer, first.fit.transfer, atol=1e-6)


# --------------------------------------------------------------------------- the table and the verb
def runs_table(path: Path, *, with_losses: bool = True, loss_column: bool = False) -> Path:
    x = design((0.2, 0.5, 2.0, 3.0))
    names = ["base"] + [f"{d}-x{f:g}" for d in DOMAINS for f in (0.2, 0.5, 2.0, 3.0)]
    rows = []
    for name, xr, lr in zip(names, x, losses(x)):
        q = xr / 3
        for frac in (0.5, 1.0):  # two evaluations: the final one is used
            row = {"run_id": name, "tokens": frac * q.sum() * 3e6, "budget": q.sum() * 3e6,
                   **{f"w.{d}": v for d, v in zip(DOMAINS, q)}}
            if with_losses:
                row |= {f"loss.{d}": v + (1 - frac) for d, v in zip(DOMAINS, lr)}
            if loss_column or not with_losses:
                row["loss"] = float(lr.mean() + (1 - frac)) + (0.1 if loss_column else 0.0)
            rows.append(row)
    write_runs(pd.DataFrame(rows), path)
    return path


def test_fits_ddo_transfer_extra_and_bad_input(tmp_path: Path) -> None:
    path = runs_table(tmp_path / "runs.csv")
    mix = ddo(path, surrogate="transfer")
    e = mix.extra
    assert e["surrogate"] == "transfer" and e["base"] == "base"
    assert e["transfer"]["wiki"]["web"] == pytest.approx(0.4, abs=1e-5)
    assert e["rmse"] < 1e-8 and set(e["residuals"]["base"]) == set(DOMAINS)
    np.testing.assert_allclose([mix.weights[d] for d in DOMAINS], true_optimum(np.full(3, 1 / 3)),
                               atol=1e-5)
    assert ddo(path).extra["surrogate"] == "paper"   # today's default
    with pytest.raises(BadInput, match=r"runs.csv: the transfer surrogate cannot express metric "
                                       r"`loss`.*--surrogate paper"):
        ddo(path, surrogate="transfer", metric="loss")
    only_loss = runs_table(tmp_path / "only_loss.csv", with_losses=False)
    with pytest.raises(BadInput, match=r"only_loss.csv: the transfer surrogate needs each "
                                       r"domain's own validation loss: no column loss.web, "
                                       r"loss.wiki, loss.code; .*--surrogate paper"):
        ddo(only_loss, surrogate="transfer")
    frame = pd.read_csv(path).drop(columns=["loss.code"])
    frame.to_csv(tmp_path / "two.csv", index=False)
    with pytest.raises(BadInput, match=r"no column loss.code;"):
        ddo(tmp_path / "two.csv", surrogate="transfer")
    other = runs_table(tmp_path / "other_loss.csv", loss_column=True)
    with pytest.raises(BadInput, match=r"`loss` is not the mean of the `loss.<domain>` columns"):
        ddo(other, surrogate="transfer")
    with pytest.raises(BadInput, match=r"unknown DDO surrogate `additive`"):
        ddo(path, surrogate="additive")


def test_cli_ddo_surrogate_transfer(tmp_path: Path, cli) -> None:  # noqa: F811
    path = runs_table(tmp_path / "runs.parquet")
    code, out, err = cli("ddo", str(path), "--up", "3", "--surrogate", "transfer", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["surrogate"] == "transfer" and set(obj["transfer"]) == set(DOMAINS)
    assert sum(obj["weights"].values()) == pytest.approx(1.0)
    assert obj["transfer"]["web"]["web"] == 1.0
    code, out, err = cli("ddo", str(path), "--surrogate", "transfer")
    assert code == 0, err
    assert "surrogate transfer" in out and "transfer t_ji" in out
    code, out, err = cli("ddo", str(path), "--surrogate", "transfer", "--metric", "loss")
    assert code == 2 and "--surrogate paper" in err and not out


def test_predictor_uses_the_transfer_surrogate() -> None:
    """A search's DDO stage (DDOPlan + Predictor) on a transfer surface: the predictor's fits are
    the transfer surrogate's and recover its probe optimum."""
    budget = 3_000_000

    def rows(spec) -> list[dict]:
        w = np.array([spec.weights[d] for d in DOMAINS])
        x = w * spec.budget / (budget / 3)       # multipliers of the uniform base run
        per = losses(x)[0]
        return [{"run_id": spec.key, "tokens": float(spec.budget), "budget": spec.budget, "lr": 1e-3,
                 **{f"w.{d}": float(v) for d, v in zip(DOMAINS, w)},
                 **{f"loss.{d}": float(v) for d, v in zip(DOMAINS, per)}}]

    cfg = PlanConfig(probes=[budget], base_weights={d: 1 / 3 for d in DOMAINS}, target=budget * 10,
                     lr=1e-3)
    pred = Predictor(DOMAINS, budget * 10, probes=[budget], lr=1e-3, surrogate="transfer")
    plan = DDOPlan(cfg)
    plan.start()
    drive_plan(plan, pred, rows)
    got = pred.optima[budget]
    assert got.extra["surrogate"] == "transfer"
    # the plan's probe ran with the declared factors 0.2 and 3, the paper's 2m + 1 design
    assert got.extra["n_runs"] == 7
    np.testing.assert_allclose([got.weights[d] for d in DOMAINS], true_optimum(np.full(3, 1 / 3)),
                               atol=1e-4)
