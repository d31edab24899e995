"""DDO (AutoScale, Kang et al. 2024): design detection, the joint surrogate fit, the KKT optimum.

Ground truth: separable power laws y = sum_i (x_i + a_i)^(-b_i) + C with y(base) = 1 (the
surrogate's own family, so an exact fit exists); the true optimum is computed independently with
SLSQP on the true function (and a dense grid for the optimiser test).
"""

from __future__ import annotations

import csv
import itertools
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import curve_fit, fsolve, minimize

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
    identified by the paper's design. With the floor lifted every root combination is kept, the
    truth's among them, and the spread is the largest weight change over all of them."""
    a, b = np.array([0.8, 0.5]), np.array([0.7, 1.0])
    q = design(np.full(2, 0.5), (0.2, 3.0), "fixed-others")
    y = truth_y(q / q[0], a, b)                           # C = -0.33: below a loss's floor of 0
    res = solve_ddo(q, y, floor=-np.inf)
    fits = [(res.fit.a, res.fit.b, res.fit.constant), *res.fit.alternatives]
    assert len(fits) == 4                                 # two roots per domain
    w_true, _ = true_optimum(np.full(2, 0.5), a, b)
    optima = [optimize_mixture(DDOFit(aa, bb, cc, res.fit.residuals, 0), np.full(2, 0.5)).weights
              for aa, bb, cc in fits]
    assert min(np.abs(w - w_true).max() for w in optima) < 1e-6
    assert res.weight_spread == pytest.approx(max(np.abs(w - optima[0]).max() for w in optima),
                                              abs=1e-12)
    assert res.weight_spread > 0.005
    # the rule: per domain the root with the smaller (1 + a)^(-b), i.e. the largest C of the four
    assert res.fit.constant == max(c for _, _, c in fits)
    floored = solve_ddo(q, y, floor=0.0)                  # the truth's C < 0: the floor excludes it
    assert floored.fit.constant >= 0.0 and floored.fit.rmse > 1e-4


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


# --------------------------------------------------------------------------- the paper's runs
PAPER = Path(__file__).parent / "data" / "autoscale_ddo" / "gpt2_large_ddo_1.2b.csv"
# DDO_example.ipynb's optimum of these runs (its last cell, as multipliers; weights = x / 7) and
# AutoScale_example.ipynb's 1.2B optimum (entered there as a number, from an earlier fit)
NOTEBOOK_DDO = np.array([1.62400123, 0.2, 1.27295996, 1.17864697, 1.85235172, 0.63745544, 0.23458466])
NOTEBOOK_AUTOSCALE = np.array([1.63121445, 0.2, 1.30180479, 1.21425702, 1.83266187, 0.62006189, 0.2])


def paper_runs() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(multipliers, mean perplexity per run, domains) of AutoScale's 15 GPT-2 Large runs."""
    rows = list(csv.DictReader(PAPER.open()))
    domains = [k[2:] for k in rows[0] if k.startswith("x.")]
    x = np.array([[float(r[f"x.{d}"]) for d in domains] for r in rows])
    ppl = np.array([np.mean([float(r[f"ppl.{d}"]) for d in domains]) for r in rows])
    return x, ppl, domains


def notebook_procedure(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AutoScale's notebook, independently of the code: per domain scipy's curve_fit of
    (x + a)^(-b) + c from its default start (1, 1, 1) on the three points (0.2, 1, 3), then
    minimise sum_i f_i(x_i) s.t. sum_i x_i = m, x_i >= 0.2 (SLSQP). Returns (multipliers, params)."""
    m = x.shape[1]
    f = lambda t, a, b, c: (t + a) ** (-b) + c  # noqa: E731
    params = []
    for i in range(m):
        rows = [0, *np.flatnonzero(np.abs(x[:, i] - 1) > 1e-9)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # the fit's covariance is undefined with 3 points
            p, _ = curve_fit(f, x[rows, i], y[rows], maxfev=100_000)
        params.append(p)
    pr = np.array(params)
    res = minimize(lambda t: np.sum((t + pr[:, 0]) ** (-pr[:, 1])), np.ones(m), method="SLSQP",
                   bounds=[(0.2, None)] * m, constraints=[{"type": "eq", "fun": lambda t: t.sum() - m}],
                   options={"ftol": 1e-15, "maxiter": 1000})
    assert res.success
    return res.x, pr


def independent_roots(xs: np.ndarray, ys: np.ndarray) -> list[tuple[float, float]]:
    """Every interpolating (a, b) of one domain by a different method: fsolve on the two
    difference equations from a grid of starts, deduplicated."""
    found: list[tuple[float, float]] = []
    for a0 in (-0.15, -0.1, 0.0, 0.3, 1.0, 3.0, 8.0):
        for b0 in (0.01, 0.05, 0.2, 1.0, 2.0, 4.0):
            def eqs(p: np.ndarray) -> list[float]:
                a, b = p
                g = np.abs(xs + a) ** (-b)
                return [g[1] - g[0] - (ys[1] - ys[0]), g[2] - g[0] - (ys[2] - ys[0])]
            with np.errstate(all="ignore"):             # starts far off overflow on the way
                p, _, ok, _ = fsolve(eqs, [a0, b0], full_output=True, xtol=1e-14)
            if ok == 1 and p[1] > 0 and (xs + p[0] > 0).all() and np.abs(eqs(p)).max() < 1e-12 \
                    and not any(abs(p[0] - u) < 1e-6 and abs(p[1] - v) < 1e-6 for u, v in found):
                found.append((float(p[0]), float(p[1])))
    return found


def test_paper_runs_reproduce_the_notebook() -> None:
    """solve_ddo (loss-ratio floor 0) on AutoScale's 15 published 1.2B runs gives the notebook
    procedure's optimum (the two differ only in curve_fit's tolerance), and the notebook's own
    printed optimum within 0.0004 per weight (its inputs had more digits than the CSV)."""
    x, ppl, _ = paper_runs()
    res = solve_ddo(x * 1.2e9 / 7, ppl, floor=0.0)
    assert res.design.kind == "fixed-others" and res.fit.dof == 0 and res.fit.rmse < 1e-12
    nb_x, nb_params = notebook_procedure(x, ppl / ppl[0])
    np.testing.assert_allclose(res.optimum.weights, nb_x / 7, atol=2e-6)
    np.testing.assert_allclose(res.fit.a, nb_params[:, 0], rtol=1e-3)   # the same roots
    np.testing.assert_allclose(res.fit.b, nb_params[:, 1], rtol=1e-3)
    np.testing.assert_allclose(res.optimum.weights, NOTEBOOK_DDO / 7, atol=4e-4)
    assert res.optimum.at_bound == (1,)                  # github at 0.2, as in the notebook
    # floor 0 leaves this one combination: none other of the 128 has C >= 0
    assert res.fit.constant >= 0.0 and res.fit.alternatives == () and res.weight_spread == 0.0


def test_published_autoscale_optimum_is_no_root_combination_of_these_runs() -> None:
    """AutoScale_example.ipynb's 1.2B optimum differs from the DDO notebook's by up to 0.0048 per
    weight, and no combination of the runs' interpolating roots comes closer: it is not the
    optimum of these runs under any exact fit, so 0.005 is the tolerance against it."""
    x, ppl, _ = paper_runs()
    res = solve_ddo(x * 1.2e9 / 7, ppl, floor=-np.inf)
    fits = [(res.fit.a, res.fit.b, res.fit.constant), *res.fit.alternatives]
    assert len(fits) == 2 ** 7
    gaps = [np.abs(optimize_mixture(DDOFit(a, b, c, res.fit.residuals, 0), np.full(7, 1 / 7)).weights
                   - NOTEBOOK_AUTOSCALE / 7).max() for a, b, c in fits]
    assert min(gaps) > 0.004
    assert gaps[0] == min(gaps) < 0.005                    # the chosen fit is the nearest


def test_paper_runs_are_stable_under_tiny_perturbations() -> None:
    """Every input (quantities and perplexities) times 1 + U(-1e-12, 1e-12), five seeds: the same
    optimum to 1e-9 (the old multistart flipped between interpolants at 1e-15)."""
    x, ppl, _ = paper_runs()
    q = x * 1.2e9 / 7
    ref = solve_ddo(q, ppl, floor=0.0).optimum.weights
    rng = np.random.default_rng(12)
    for _ in range(5):
        res = solve_ddo(q * (1 + rng.uniform(-1e-12, 1e-12, q.shape)),
                        ppl * (1 + rng.uniform(-1e-12, 1e-12, ppl.shape)), floor=0.0)
        np.testing.assert_allclose(res.optimum.weights, ref, rtol=0, atol=1e-9)
    again = solve_ddo(q, ppl, floor=0.0).optimum.weights
    assert np.array_equal(again, ref)                      # bit for bit


@pytest.mark.parametrize("floor", [0.0, -0.5, -np.inf])
def test_floor_holds_and_spread_is_the_enumerated_maximum(floor: float) -> None:
    """Every kept fit has C >= floor and interpolates the runs; the kept fits are exactly the
    root combinations (found independently) with C >= floor; weight_spread is the largest weight
    change over them."""
    x, ppl, _ = paper_runs()
    y = ppl / ppl[0]
    res = solve_ddo(x * 1.2e9 / 7, ppl, floor=floor)
    fits = [(res.fit.a, res.fit.b, res.fit.constant), *res.fit.alternatives]
    for a, b, c in fits:
        assert c >= floor
        assert np.abs(((x + a) ** (-b)).sum(axis=1) + c - y).max() < 1e-10
    roots = []
    for i in range(7):
        rows = [0, *np.flatnonzero(np.abs(x[:, i] - 1) > 1e-9)]
        roots.append(independent_roots(x[rows, i], y[rows]))
    assert [len(r) for r in roots] == [2] * 7
    w_base = np.full(7, 1 / 7)
    chosen = res.optimum.weights
    spread, feasible = 0.0, 0
    for combo in itertools.product(*roots):
        a, b = np.array([r[0] for r in combo]), np.array([r[1] for r in combo])
        c = y[0] - np.sum((1 + a) ** (-b))
        if c < floor:
            continue
        feasible += 1
        w = optimize_mixture(DDOFit(a, b, c, res.fit.residuals, 0), w_base).weights
        spread = max(spread, float(np.abs(w - chosen).max()))
    assert feasible == len(fits)
    assert res.fit.constant == pytest.approx(max(c for _, _, c in fits))
    assert res.weight_spread == pytest.approx(spread, abs=1e-9)


def test_regression_respects_the_floor_and_is_stable() -> None:
    """Replicates (a regression): C >= floor even when the truth's C is below it, and the fit does
    not move under 1e-12 relative changes of the objectives."""
    w0 = np.array([0.35, 0.3, 0.2, 0.15])
    q = np.repeat(design(w0, (0.2, 3.0), "fixed-others"), 2, axis=0)
    y = truth_y(q / q[0]) + np.random.default_rng(3).normal(0.0, 1e-3, len(q))
    res = solve_ddo(q, y, floor=0.0)
    assert res.fit.dof == len(q) - 9 and res.fit.constant >= 0.0
    assert all(c >= 0.0 for _, _, c in res.fit.alternatives)
    rng = np.random.default_rng(5)
    for _ in range(3):
        res2 = solve_ddo(q, y * (1 + rng.uniform(-1e-12, 1e-12, len(y))), floor=0.0)
        np.testing.assert_allclose(res2.optimum.weights, res.optimum.weights, rtol=0, atol=1e-9)


def test_refinement_runs_enter_the_fit_relative_to_the_base() -> None:
    """Runs of a second round centred at the first optimum (not a design around the base) are
    fitted with their multipliers relative to the base: on a surface in the family the joint fit
    stays exact and keeps the optimum."""
    a_true, b_true = np.array([3.0, 2.0, 1.0]), np.array([1.0, 1.2, 2.0])
    c_true = 1.0 - float(((1.0 + a_true) ** -b_true).sum())  # y(base) = 1: in the family, C >= 0

    def y(x: np.ndarray) -> np.ndarray:
        return ((np.atleast_2d(x) + a_true) ** -b_true).sum(axis=1) + c_true

    base = np.full(3, 1000.0)
    design = [base.copy()]
    for i in range(3):
        for f in (0.2, 3.0):
            q = base.copy()
            q[i] *= f
            design.append(q)
    design = np.array(design)
    first = solve_ddo(design, y(design / base), floor=0.0)
    centre = first.optimum.multipliers * base
    extra = [centre.copy()]
    for i in range(3):
        for f in (0.2 ** 0.5, 3.0 ** 0.5):
            q = centre.copy()
            q[i] *= f
            extra.append(q)
    extra = np.array(extra)
    both = solve_ddo(design, y(design / base), floor=0.0, extra_quantities=extra,
                     extra_objective=y(extra / base))
    assert len(both.fit.residuals) == 14 and both.fit.dof == 14 - 7
    assert np.abs(both.fit.residuals).max() < 1e-6  # the surface is in the family: exact fit
    np.testing.assert_allclose(both.optimum.weights, first.optimum.weights, atol=1e-4)
