"""L(N, D) / L(D) fit: objective and gradient, Epoch's Chinchilla replication, recovery of known
laws, the fast multi-start against the naive loop, bootstrap, ARE, and input checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime
from scipy.special import huber, logsumexp

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.loss_law import (FORM_D, FORM_ND, absolute_relative_error,
                                         bootstrap_loss_law, fit_loss_law, largest_model_holdout,
                                         min_tokens_mask)
from autoscale_ray.laws.multistart import (HuberLSEProblem, batch_objective, batch_objective_grad,
                                           epoch_grid, multistart_minimize, naive_multistart)

DATA = Path(__file__).parent / "data" / "chinchilla_svg_extracted_data.csv"
# Epoch AI (Besiroglu et al. 2024), Table 1: estimate and bootstrap standard error.
EPOCH = {"E": (1.8169, 0.0257), "A": (482.01, 124.5), "B": (2085.4, 1293.0),
         "alpha": (0.3478, 0.0154), "beta": (0.3658, 0.0206)}


def chinchilla() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    df = pd.read_csv(DATA).sort_values("loss", kind="stable").iloc[:-5]  # 240 points, as Epoch
    n = df["Model Size"].to_numpy()
    return df["loss"].to_numpy(), df["Training FLOP"].to_numpy() / (6 * n), n


def law_nd(n, d, E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28):
    return E + A / n ** alpha + B / d ** beta


def checkpoints(sizes=(2e7, 5e7, 1e8, 2e8, 5e8), per_run=30, noise=0.002, seed=0, **law):
    """Each size trained to 20 tokens/param, evaluated at log-spaced checkpoints from 2% on."""
    rng = np.random.default_rng(seed)
    n = np.repeat(np.asarray(sizes, dtype=float), per_run)
    d = 20 * n * np.tile(np.logspace(np.log10(0.02), 0, per_run), len(sizes))
    loss = law_nd(n, d, **law) * np.exp(rng.normal(0.0, noise, n.size))
    runs = np.repeat([f"n{s:g}" for s in sizes], per_run)
    return loss, d, n, runs


@pytest.fixture(scope="module")
def chinchilla_fit():
    loss, d, n = chinchilla()
    return fit_loss_law(loss, d, n)


def test_objective_matches_direct_formula_and_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.uniform(16, 24, 50), rng.uniform(18, 27, 50)])
    y = rng.uniform(0.6, 1.6, 50)
    w = rng.integers(0, 3, 50).astype(float)
    for k, weights in ((2, None), (2, w), (1, None)):
        prob = HuberLSEProblem(x[:, 2 - k:], y, 1e-3, weights)
        thetas = np.column_stack([rng.uniform(0, 12, (4, k)), rng.uniform(-1, 1, 4),
                                  rng.uniform(0.05, 1.0, (4, k))])
        f, g = batch_objective_grad(thetas, prob)
        np.testing.assert_allclose(batch_objective(thetas, prob), f, rtol=1e-12)
        for th, fi, gi in zip(thetas, f, g):
            terms = np.column_stack([th[:k] - th[k + 1:] * prob.x, np.full(len(y), th[k])])
            h = huber(1e-3, y - logsumexp(terms, axis=1))
            assert fi == pytest.approx(h.sum() if weights is None else h @ weights, rel=1e-12)
            num = approx_fprime(th, lambda t: batch_objective(t[None], prob)[0], 1e-7)
            np.testing.assert_allclose(gi, num, atol=1e-5 * max(1.0, np.abs(num).max()))


def test_objective_is_finite_far_from_the_data():
    prob = HuberLSEProblem(np.array([[20.0, 25.0]]), np.array([1.0]))
    f, g = batch_objective_grad(np.array([[800.0, -900.0, 700.0, 0.1, 0.1]]), prob)
    assert np.isfinite(f).all() and np.isfinite(g).all()


def test_epoch_grid_is_their_grid():
    grid = epoch_grid(2)
    assert grid.shape == (4500, 5)
    assert set(grid[:, 0]) == set(grid[:, 1]) == {0.0, 5.0, 10.0, 15.0, 20.0, 25.0}
    assert set(grid[:, 2]) == {-1.0, -0.5, 0.0, 0.5, 1.0}
    assert set(grid[:, 3]) == set(grid[:, 4]) == {0.0, 0.5, 1.0, 1.5, 2.0}
    assert len(np.unique(grid, axis=0)) == 4500
    assert epoch_grid(1).shape == (150, 3)


def test_chinchilla_reproduces_epoch_within_one_standard_error(chinchilla_fit):
    fit = chinchilla_fit
    assert fit.form == FORM_ND and fit.n_points == 240 and fit.n_starts == 4500
    for name, (value, se) in EPOCH.items():
        assert abs(getattr(fit, name) - value) <= se, (name, getattr(fit, name))
    # Epoch's own grid + L-BFGS-B run: A=477.84, B=2143.86, E=1.8172, alpha=.3473, beta=.3672
    assert fit.E == pytest.approx(1.8172, abs=2e-4)
    assert fit.alpha == pytest.approx(0.3473, abs=2e-4)
    assert fit.beta == pytest.approx(0.3672, abs=2e-4)


def test_fast_multistart_matches_the_naive_loop_on_the_same_starts():
    loss, d, n = chinchilla()
    prob = HuberLSEProblem(np.column_stack([np.log(n), np.log(d)]), np.log(loss))
    starts = epoch_grid(2)[np.random.default_rng(3).choice(4500, 40, replace=False)]
    fast = multistart_minimize(prob, starts)
    naive = naive_multistart(prob, starts, analytic_grad=True)
    assert (naive.fun - fast.fun) / naive.fun <= 1e-6


def test_bootstrap_standard_errors_within_2x_of_epoch(chinchilla_fit):
    loss, d, n = chinchilla()
    boot = bootstrap_loss_law(chinchilla_fit, loss, d, n, replicates=100, seed=0)
    assert boot.n_bootstrap == 100 and boot.level == 0.95
    for name, (_, se) in EPOCH.items():
        assert se / 2 <= boot.stderr[name] <= 2 * se, (name, boot.stderr[name])
        lo, hi = boot.interval[name]
        assert lo < getattr(boot, name) < hi
    assert boot.E == chinchilla_fit.E  # the point estimate is the full-data fit


def test_recovers_a_known_law_from_checkpoints():
    loss, d, n, _ = checkpoints(noise=0.002)
    fit = fit_loss_law(loss, d, n)
    assert fit.E == pytest.approx(1.69, rel=0.03)
    assert fit.alpha == pytest.approx(0.34, abs=0.02)
    assert fit.beta == pytest.approx(0.28, abs=0.02)
    assert fit.A == pytest.approx(406.4, rel=0.35)
    assert fit.B == pytest.approx(410.7, rel=0.35)
    grid_n, grid_d = np.meshgrid([3e7, 3e8], [1e9, 1e10])
    np.testing.assert_allclose(fit.predict(grid_n, grid_d), law_nd(grid_n, grid_d), rtol=0.01)


def test_recovers_l_of_d_for_one_model_size():
    rng = np.random.default_rng(4)
    d = np.logspace(8, 10, 40)
    loss = (2.1 + 300.0 / d ** 0.3) * np.exp(rng.normal(0, 0.001, d.size))
    fit = fit_loss_law(loss, d)
    assert fit.form == FORM_D and fit.A is None and fit.alpha is None and fit.n_starts == 150
    assert fit.E == pytest.approx(2.1, rel=0.02)
    assert fit.beta == pytest.approx(0.3, abs=0.03)
    np.testing.assert_allclose(fit.predict(None, d), 2.1 + 300.0 / d ** 0.3, rtol=0.005)


def test_are_on_the_held_out_largest_model_small_when_right_large_when_off_law():
    loss, d, n, runs = checkpoints(sizes=(2e7, 5e7, 1e8, 2e8, 1e9), noise=0.002, seed=5)
    train, late = largest_model_holdout(n, runs, d)
    assert not train[n == 1e9].any() and train[n < 1e9].all()
    assert late.sum() > 0 and (d[late] >= 0.7 * d[n == 1e9].max()).all() and (n[late] == 1e9).all()
    fit = fit_loss_law(loss[train], d[train], n[train])
    good = absolute_relative_error(fit, loss[late], d[late], n[late])
    assert good < 0.01
    # the largest model 8% worse than the law (e.g. a mis-set LR): the extrapolation misses it
    bad = absolute_relative_error(fit, loss[late] * 1.08, d[late], n[late])
    assert bad > 0.05


def test_min_tokens_mask_absolute_and_fraction_of_budget():
    tokens = np.array([1e8, 5e8, 1e9, 2e9, 1e8, 4e8])
    budget = np.array([2e9, 2e9, 2e9, 2e9, 4e8, 4e8])
    np.testing.assert_array_equal(min_tokens_mask(tokens, budget, 5e8), [0, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(min_tokens_mask(tokens, budget, 0.25), [0, 1, 1, 1, 1, 1])
    with pytest.raises(BadInput, match="min-tokens"):
        min_tokens_mask(tokens, budget, -1.0)


def test_bad_input():
    loss, d, n, _ = checkpoints(per_run=8)
    with pytest.raises(BadInput, match="only 5 data points"):
        fit_loss_law(loss[:5], d[:5], n[:5])
    with pytest.raises(BadInput, match="2 distinct model sizes"):
        fit_loss_law(loss[:8], d[:8], n[:8])  # one size, but params given
    with pytest.raises(BadInput, match="tokens"):
        fit_loss_law(loss, np.where(np.arange(d.size) == 2, 0.0, d), n)
    with pytest.raises(BadInput, match="params"):
        fit_loss_law(loss, d, n[:-1])
