"""The LR-horizon law (Bjorck et al. 2024) on synthetic sweeps with a known B and beta."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.lr_horizon import (BETA_BJORCK, BETA_PRIOR_SD, fit_horizon, fit_lr_horizon,
                                         shrink_beta)

B_TRUE, BETA_TRUE = 0.9, 0.32
HORIZONS = (1e8, 4e8, 1.6e9, 6.4e9)
GRID = np.logspace(-4.5, -1, 9)  # fixed across horizons, so the optimum moves within it


def lr_star(tokens: float, beta: float = BETA_TRUE) -> float:
    return B_TRUE * tokens ** -beta


def sweep(*, horizons=HORIZONS, grid=GRID, k=0.05, cubic=0.002, noise=0.003, seed=0,
          reps=1, beta=BETA_TRUE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L = L0(D) + k x^2 + cubic x^3 + noise, x = log LR - log LR*(D): asymmetric like real sweeps
    (steeper above the optimum), x = 0 still the minimum."""
    rng = np.random.default_rng(seed)
    lr, loss, tokens = [], [], []
    for d in horizons:
        for g in grid:
            for _ in range(reps):
                x = math.log(g) - math.log(lr_star(d, beta))
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


# ---------------------------------------------------------------- the prior on beta

def test_shrinkage_is_the_precision_weighted_mean() -> None:
    # estimate 0.5 with se 0.1, prior 0.32 with sd 0.2: precisions 100 and 25
    beta, sd = shrink_beta(0.5, 0.1, prior=0.32, prior_sd=0.2)
    assert beta == pytest.approx((0.5 * 100 + 0.32 * 25) / 125, abs=1e-12)  # 0.464
    assert sd == pytest.approx(1 / math.sqrt(125), abs=1e-12)
    assert shrink_beta(0.5, 0.0) == (0.5, 0.0)                 # exact data: the data alone
    assert shrink_beta(0.5, math.inf) == pytest.approx((BETA_BJORCK, BETA_PRIOR_SD))  # no data
    b, s = shrink_beta(0.5, math.nan)
    assert b == 0.5 and math.isnan(s)
    with pytest.raises(BadInput, match="prior sd"):
        shrink_beta(0.5, 0.1, prior_sd=0.0)


def test_two_horizon_law_is_shrunk_toward_the_prior() -> None:
    data = sweep(horizons=(1e8, 1.6e9), cubic=0.0, seed=3, noise=0.03)
    raw = fit_lr_horizon(*data, beta_prior=None)
    law = fit_lr_horizon(*data, beta_prior=0.6, beta_prior_sd=0.1)
    assert raw.beta == raw.beta_raw == law.beta_raw and raw.beta_se == law.beta_raw_se
    w_data, w_prior = 1 / raw.beta_se ** 2, 1 / 0.1 ** 2
    assert law.beta == pytest.approx((raw.beta * w_data + 0.6 * w_prior) / (w_data + w_prior))
    assert law.beta_se < raw.beta_se and raw.beta < law.beta < 0.6
    # the line turns about the weighted centre: there both laws give the same LR*
    v1, v2 = law.used_var
    x_c = (law.used_log_d[0] * v2 + law.used_log_d[1] * v1) / (v1 + v2)
    assert law.log_d_centre == pytest.approx(x_c)
    assert float(law.predict(math.exp(x_c))) == pytest.approx(float(raw.predict(math.exp(x_c))))
    # without a prior the interval is the interpolation's delta-method one
    for d in (4e8, 1e12):
        lam = (math.log(d) - raw.used_log_d[0]) / (raw.used_log_d[1] - raw.used_log_d[0])
        assert raw.log_se(d)[0] == pytest.approx(math.sqrt((1 - lam) ** 2 * v1 + lam ** 2 * v2))
        assert law.log_se(d)[0] <= raw.log_se(d)[0]
    assert law.to_json()["beta_raw"] == raw.beta and law.to_json()["beta_prior"] == 0.6


def test_with_many_horizons_the_data_win() -> None:
    """A true beta far from the prior (0.5 vs 0.32): four low-noise horizons recover it."""
    horizons = (1e8, 4e8, 1.6e9, 6.4e9)
    grid = np.logspace(-5.5, -1.5, 11)
    law = fit_lr_horizon(*sweep(horizons=horizons, grid=grid, cubic=0.0, noise=0.001, beta=0.5))
    exact = fit_lr_horizon(*sweep(horizons=horizons, grid=grid, cubic=0.0, noise=0.0, beta=0.5))
    assert law.beta_prior == BETA_BJORCK and law.n_used == 4
    assert abs(law.beta - 0.5) < 0.02 and abs(law.beta - law.beta_raw) < 0.01
    assert exact.beta == pytest.approx(0.5, abs=1e-9)  # exact data: se 0, the prior has no weight
    lo, hi = law.interval(1e11)
    assert lo < float(law.predict(1e11)) < hi
