"""DDO (AutoScale, Kang et al. 2024): design detection, the joint surrogate fit, the KKT optimum.

Ground truth: separable power laws y = sum_i (x_i + a_i)^(-b_i) + C with y(base) = 1 (the
surrogate's own family, so an exact fit exists); the true optimum is computed independently with
SLSQP on the true function (and a dense grid for the optimiser test).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.ddo import DDOFit, find_design, optimize_mixture, solve_ddo

A = np.array([0.3, 1.0, 0.5, 4.0])
B = np.array([0.8, 1.2, 0.5, 0.15])      # domain 3 saturates: its optimum sits on the bound
FACTORS4 = (0.2, 0.5, 2.0, 2.5)


def design(w0: np.ndarray, factors: tuple[float, ...], kind: str, budget: float = 1e6) -> np.ndarray:
    """Per-run quantities: the base, then each domain times each factor (independent of the code)."""
    m = len(w0)
    rows = [w0.copy()]
    for i in range(m):
        for f in factors:
            q = w0.copy()
            q[i] *= f
            if kind == "fixed-total":
                q[np.arange(m) != i] *= (1 - q[i]) / (1 - w0[i])
            rows.append(q)
    return np.array(rows) * budget


def truth_y(x: np.ndarray, a: np.ndarray = A, b: np.ndarray = B) -> np.ndarray:
    return ((x + a) ** (-b)).sum(axis=-1) + 1.0 - ((1 + a) ** (-b)).sum()


def true_optimum(w0: np.ndarray, a: np.ndarray = A, b: np.ndarray = B, lower: float = 0.2):
    res = minimize(lambda x: np.sum((x + a) ** (-b)), np.ones(len(a)), method="SLSQP",
                   bounds=[(lower, None)] * len(a),
                   constraints=[{"type": "eq", "fun": lambda x: w0 @ x - 1}],
                   options={"ftol": 1e-14, "maxiter": 500})
    assert res.success
    return res.x * w0 / (res.x @ w0), tuple(np.flatnonzero(res.x < lower + 1e-6))


@pytest.mark.parametrize("w0", [np.full(4, 0.25), np.array([0.4, 0.3, 0.2, 0.1])])
def test_kkt_optimum_matches_slsqp_and_grid(w0: np.ndarray) -> None:
    fit = DDOFit(a=A, b=B, constant=0.0, residuals=np.zeros(1), dof=0)
    opt = optimize_mixture(fit, w0, lower=0.2)
    w_true, bound = true_optimum(w0)
    np.testing.assert_allclose(opt.weights, w_true, atol=1e-6)
    assert opt.at_bound == bound == (3,)
    assert opt.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert w0 @ opt.multipliers == pytest.approx(1.0, abs=1e-12)   # the base budget is kept
    # dense grid over the first three multipliers (the fourth spends the rest): nothing beats it
    g = np.linspace(0.2, 1 / w0.min(), 160)
    x0, x1, x2 = np.meshgrid(g, g, g, indexing="ij")
    x3 = (1 - w0[0] * x0 - w0[1] * x1 - w0[2] * x2) / w0[3]
    ok = x3 >= 0.2
    grid = np.stack([x0[ok], x1[ok], x2[ok], x3[ok]], axis=1)
    assert fit.predict(opt.multipliers) <= fit.predict(grid).min() + 1e-12


@pytest.mark.parametrize("kind", ["fixed-others", "fixed-total"])
def test_recovers_true_optimum_without_noise(kind: str) -> None:
    w0 = np.full(4, 0.25)
    q = design(w0, FACTORS4, kind)
    rng = np.random.default_rng(1)
    order = rng.permutation(len(q))                        # the base need not come first
    y = truth_y(q / q[0])
    res = solve_ddo(q[order], 3.2 * y[order], factors=(0.2, 2.5))
    assert res.design.kind == kind
    assert order[res.design.base] == 0
    assert res.fit.rmse < 1e-9 and res.fit.dof == len(q) - 9
    w_true, bound = true_optimum(w0)
    np.testing.assert_allclose(res.optimum.weights, w_true, atol=0.005)
    assert res.optimum.at_bound == bound == (3,)
    np.testing.assert_allclose(res.fit.a, A, rtol=1e-4)
    np.testing.assert_allclose(res.fit.b, B, rtol=1e-4)


@pytest.mark.parametrize("kind", ["fixed-others", "fixed-total"])
def test_recovers_optimum_with_noise_and_replicates(kind: str) -> None:
    """Noise of 1e-3 on the normalised objective (about 0.1% of the loss, seed-to-seed scale for
    small proxies), 6 replicate seeds per design point: weights within 0.01 of the truth."""
    w0 = np.array([0.35, 0.3, 0.2, 0.15])
    q = np.repeat(design(w0, FACTORS4, kind), 6, axis=0)
    y = truth_y(q / q[0]) + np.random.default_rng(7).normal(0.0, 1e-3, len(q))
    res = solve_ddo(q, y, factors=(0.2, 2.5))
    assert len(res.design.base_runs) == 6
    assert 5e-4 < res.fit.rmse < 2e-3                      # a real regression: residuals reported
    w_true, bound = true_optimum(w0)
    np.testing.assert_allclose(res.optimum.weights, w_true, atol=0.01)
    assert res.optimum.at_bound == bound


def test_paper_design_is_the_three_point_interpolation() -> None:
    """2m + 1 runs, fixed-others: each f_i passes through its domain's three points."""
    a, b = np.array([0.8, 0.2, 1.5]), np.array([0.7, 1.1, 0.4])
    q = design(np.full(3, 1 / 3), (0.2, 3.0), "fixed-others")
    x = q / q[0]
    y = truth_y(x, a, b)
    res = solve_ddo(q, y)
    assert res.fit.dof == 0 and res.fit.rmse < 1e-10
    g = (x + res.fit.a) ** (-res.fit.b)
    for i in range(3):
        for r in (1 + 2 * i, 2 + 2 * i):   # y(perturbed) - y(base) = f_i(x) - f_i(1)
            assert y[r] - y[0] == pytest.approx(g[r, i] - g[0, i], abs=1e-10)


def test_two_interpolating_roots_are_reported() -> None:
    """(a, b) = (0.8, 0.7) and (0.6457, 0.5520) fit the same three points: the optimum is not
    identified by the paper's design, and the spread between the fits' optima is reported."""
    a, b = np.array([0.8, 0.5]), np.array([0.7, 1.0])
    q = design(np.full(2, 0.5), (0.2, 3.0), "fixed-others")
    res = solve_ddo(q, truth_y(q / q[0], a, b))
    assert res.fit.alternatives, "the second root of domain 0 was not found"
    assert res.weight_spread > 0.005
    w_true, _ = true_optimum(np.full(2, 0.5), a, b)
    optima = [res.optimum.weights]
    for aa, bb, cc in res.fit.alternatives:
        alt = DDOFit(a=aa, b=bb, constant=cc, residuals=res.fit.residuals, dof=0)
        optima.append(optimize_mixture(alt, np.full(2, 0.5)).weights)
    assert min(np.abs(w - w_true).max() for w in optima) < 1e-6


def test_find_design_detects_base_kind_and_perturbations() -> None:
    q = design(np.full(3, 1 / 3), (0.2, 2.5), "fixed-total")
    d = find_design(q[::-1], factors=(0.2, 2.5))
    assert d.kind == "fixed-total" and d.base == len(q) - 1
    assert sorted(zip(d.perturbed, np.round(d.factors, 6)))[1:] == \
        [(0, 0.2), (0, 2.5), (1, 0.2), (1, 2.5), (2, 0.2), (2, 2.5)]
    with pytest.raises(BadInput, match="run `#1` changes 3 domains"):
        find_design(q, design="fixed-others")        # names the first run that does not fit
    d2 = find_design(design(np.full(2, 0.5), (0.2, 1.8), "fixed-total"), factors=(0.2, 1.8))
    assert d2.base == 0                              # two domains: ties broken by the factors


def test_bad_designs_are_bad_input() -> None:
    q = design(np.full(3, 1 / 3), (0.2, 3.0), "fixed-others")
    q_bad = q.copy()
    q_bad[3] *= [1.0, 1.5, 2.0]                      # changes two domains
    with pytest.raises(BadInput, match="not a DDO perturbation design"):
        find_design(q_bad)
    with pytest.raises(BadInput, match="distinct token quantities"):
        solve_ddo(design(np.full(3, 1 / 3), (0.2,), "fixed-others"), np.ones(4))
    with pytest.raises(BadInput, match="at least two domains"):
        find_design(np.ones((3, 1)))
    with pytest.raises(BadInput, match="min-multiplier"):
        optimize_mixture(DDOFit(A, B, 0.0, np.zeros(1), 0), np.full(4, 0.25), lower=1.5)
    with pytest.raises(BadInput, match="no tokens"):
        find_design(np.vstack([q, [0.0, 1.0, 1.0]]), base=len(q))
