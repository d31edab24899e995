"""The LR-horizon law (Bjorck et al. 2024) on synthetic sweeps with a known B and beta."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.lr_horizon import fit_horizon, fit_lr_horizon

B_TRUE, BETA_TRUE = 0.9, 0.32
HORIZONS = (1e8, 4e8, 1.6e9, 6.4e9)
GRID = np.logspace(-4.5, -1, 9)  # fixed across horizons, so the optimum moves within it


def lr_star(tokens: float) -> float:
    return B_TRUE * tokens ** -BETA_TRUE


def sweep(*, horizons=HORIZONS, grid=GRID, k=0.05, cubic=0.002, noise=0.003, seed=0,
          reps=1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L = L0(D) + k x^2 + cubic x^3 + noise, x = log LR - log LR*(D): asymmetric like real sweeps
    (steeper above the optimum), x = 0 still the minimum."""
    rng = np.random.default_rng(seed)
    lr, loss, tokens = [], [], []
    for d in horizons:
        for g in grid:
            for _ in range(reps):
                x = math.log(g) - math.log(lr_star(d))
                lr.append(g)
                loss.append(2.0 + 50 * d ** -0.3 + k * x * x + cubic * x ** 3
                            + noise * rng.standard_normal())
                tokens.append(d)
    return np.array(lr), np.array(loss), np.array(tokens)


@pytest.mark.parametrize("seed", range(6))
def test_beta_recovered_with_cubic_term_and_noise(seed: int) -> None:
    law = fit_lr_horizon(*sweep(seed=seed))
    assert abs(law.beta - BETA_TRUE) < 0.03
    assert law.n_used == len(HORIZONS)
    assert all(not h.at_edge for h in law.horizons)
    for h in law.horizons:  # every vertex within 15% of the true optimum
        assert abs(math.log(h.lr_star / lr_star(h.tokens))) < 0.15


def test_exact_quadratic_is_recovered_exactly() -> None:
    law = fit_lr_horizon(*sweep(cubic=0.0, noise=0.0))
    assert law.beta == pytest.approx(BETA_TRUE, abs=1e-9)
    assert law.B == pytest.approx(B_TRUE, rel=1e-7)
    assert float(law.predict(1e11)) == pytest.approx(lr_star(1e11), rel=1e-7)


def test_local_window_removes_asymmetry_bias() -> None:
    """A global quadratic over a wide fixed grid is pulled by the asymmetric far points."""
    data = sweep(cubic=0.004, noise=0.0)
    local = fit_lr_horizon(*data)
    whole = fit_lr_horizon(*data, window=None)
    assert abs(local.beta - BETA_TRUE) < 0.01
    assert abs(whole.beta - BETA_TRUE) > 3 * abs(local.beta - BETA_TRUE)


def test_interval_covers_the_truth_at_the_target() -> None:
    target = 1e11
    hits = 0
    for seed in range(100):
        lo, hi = fit_lr_horizon(*sweep(cubic=0.0, seed=seed)).interval(target)
        assert lo < hi
        hits += lo <= lr_star(target) <= hi
    assert hits >= 88  # nominal 95%


def test_minimum_at_grid_edge_is_reported_and_left_out(caplog: pytest.LogCaptureFixture) -> None:
    # the largest horizon's optimum lies below the smallest LR of its grid
    lr, loss, tokens = sweep(horizons=(1e8, 4e8, 1.6e9, 6.4e9, 1e12), grid=np.logspace(-4, -1, 9))
    with caplog.at_level(logging.WARNING, logger="autoscale_ray"):
        law = fit_lr_horizon(lr, loss, tokens)
    edge = {h.tokens: h for h in law.horizons}[1e12]
    assert edge.at_edge and not edge.used
    assert edge.lr_best_observed == pytest.approx(1e-4)
    assert "smallest LR" in edge.reason
    assert law.n_used == 4
    assert any("1e+12" in r.getMessage() and "left out" in r.getMessage() for r in caplog.records)
    assert abs(law.beta - BETA_TRUE) < 0.03  # not dragged by the unbracketed horizon
    included = fit_lr_horizon(lr, loss, tokens, include_edge=True)
    assert included.n_used == 5
    assert {h.tokens: h for h in included.horizons}[1e12].used


def test_vertex_outside_grid_is_at_edge() -> None:
    # a noisy, nearly flat sweep: best observed LR inside the grid, fitted vertex far above it
    grid = 1e-4 * np.exp(np.arange(5.0))
    fit = fit_horizon(grid, [1.17, 1.10, 1.18, 1.10, 1.12], 1e9)
    assert fit.convex and fit.lr_best_observed not in (grid[0], grid[-1])
    assert fit.lr_star > grid[-1]
    assert fit.at_edge and not fit.used and "outside the sampled LRs" in fit.reason


def test_non_convex_horizon_is_left_out() -> None:
    grid = np.logspace(-4, -2, 5)
    fit = fit_horizon(grid, 3 - 0.1 * (np.log(grid) - np.log(1e-3)) ** 2, 1e9)
    assert not fit.convex and not fit.used and math.isnan(fit.lr_star)


def test_single_horizon_is_bad_input() -> None:
    lr, loss, tokens = sweep(horizons=(1e9,))
    with pytest.raises(BadInput, match="a single horizon"):
        fit_lr_horizon(lr, loss, tokens)


def test_one_usable_horizon_names_the_excluded_one() -> None:
    lr, loss, tokens = sweep(horizons=(1e8, 1e12), grid=np.logspace(-4, -1, 9))
    with pytest.raises(BadInput, match="a single horizon") as exc:
        fit_lr_horizon(lr, loss, tokens)
    assert "1e+12 tokens" in str(exc.value) and "\n" not in str(exc.value)


def test_two_horizons_propagate_vertex_uncertainty() -> None:
    lr, loss, tokens = sweep(horizons=(1e8, 1.6e9), cubic=0.0, seed=3)
    law = fit_lr_horizon(lr, loss, tokens)
    assert law.method == "delta-two-horizons" and math.isnan(law.resid_sd)
    assert all(h.dof == 2 for h in law.horizons)  # 5 LRs in the window, 3 coefficients
    lo, hi = law.interval(1e10)
    assert lo < float(law.predict(1e10)) < hi
    # interpolating between the horizons is tighter than extrapolating far beyond them
    assert law.log_se(4e8)[0] < law.log_se(1e12)[0]
    # more noise, wider interval
    noisy = fit_lr_horizon(*sweep(horizons=(1e8, 1.6e9), cubic=0.0, seed=3, noise=0.03))
    assert noisy.log_se(1e10)[0] > law.log_se(1e10)[0]


def test_two_horizons_with_three_lrs_each_have_no_interval() -> None:
    grid = np.array([1e-3, 2e-3, 4e-3])  # brackets LR* of both horizons
    lr, loss, tokens = sweep(horizons=(1e8, 3e8), grid=grid, noise=0.0, cubic=0.0)
    law = fit_lr_horizon(lr, loss, tokens)
    assert all(math.isnan(v) for v in law.interval(1e10))


def test_replicates_at_one_lr_count_as_one_grid_point() -> None:
    lr, loss, tokens = sweep(reps=3, seed=1)
    law = fit_lr_horizon(lr, loss, tokens)
    assert all(h.n_lrs == len(GRID) and h.n_points == 15 for h in law.horizons)
    assert abs(law.beta - BETA_TRUE) < 0.03


def test_too_few_lrs_reported() -> None:
    fit = fit_horizon([1e-3, 2e-3, 1e-3], [3.0, 2.9, 3.01], 1e9)
    assert not fit.used and "2 distinct" in fit.reason


@pytest.mark.parametrize("field,value", [("lr", -1e-3), ("loss", float("nan")), ("tokens", 0.0)])
def test_bad_values_are_bad_input(field: str, value: float) -> None:
    data = dict(zip(("lr", "loss", "tokens"), (a.copy() for a in sweep())))
    data[field][2] = value
    with pytest.raises(BadInput, match=rf"{field}\[2\]"):
        fit_lr_horizon(**data)
