"""The RegMix regression baseline: ridge on [w, log(w + eps)], on the RegMix 1M runs and synthetic data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.regression import (cross_validate, fit_ridge_mixture, _loo_path,
                                           search_mixture)

DATA = Path(__file__).parent / "data" / "regmix_1m"
TARGET = "metric/the_pile_pile_cc_val_loss"


@pytest.fixture(scope="module")
def regmix() -> tuple[np.ndarray, np.ndarray, list[str]]:
    mix = pd.read_csv(DATA / "train_mixture_1m.csv")
    loss = pd.read_csv(DATA / "train_pile_loss_1m.csv")
    joined = mix.merge(loss, on="index", validate="one_to_one")
    domains = [c for c in mix.columns if c != "index"]
    assert len(domains) == 17 and len(joined) == 512
    return joined[domains].to_numpy(float), joined[TARGET].to_numpy(float), domains


def test_cv_spearman_on_regmix_pile_cc(regmix) -> None:
    w, y, _ = regmix
    cv = cross_validate(w, y, folds=5, seed=0)
    assert cv.spearman >= 0.97
    assert cv.spearman == pytest.approx(stats.spearmanr(cv.predictions, y).statistic)
    # better than always predicting the mean by a wide margin
    assert cv.rmse < 0.5 * y.std()


def test_log_features_beat_a_linear_model(regmix) -> None:
    """RegMix's linear model misses the diminishing returns; the log part is what lifts it."""
    w, y, _ = regmix
    order = np.random.default_rng(0).permutation(len(y))
    linear = np.empty(len(y))
    for test in np.array_split(order, 5):
        train = np.setdiff1d(order, test)
        x = np.column_stack([np.ones(len(train)), w[train]])
        coef, *_ = np.linalg.lstsq(x, y[train], rcond=None)
        linear[test] = np.column_stack([np.ones(len(test)), w[test]]) @ coef
    rho_linear = stats.spearmanr(linear, y).statistic
    assert cross_validate(w, y, seed=0).spearman > rho_linear + 0.05


def test_closed_form_loo_matches_refitting() -> None:
    rng = np.random.default_rng(1)
    z = rng.standard_normal((30, 6))
    z -= z.mean(axis=0)
    y = z @ rng.standard_normal(6) + 0.3 * rng.standard_normal(30) + 2.0
    alpha = 3.0
    errors = []
    for i in range(30):
        keep = np.arange(30) != i
        zk, yk = z[keep], y[keep]
        zm, ym = zk.mean(axis=0), yk.mean()
        coef = np.linalg.solve((zk - zm).T @ (zk - zm) + alpha * np.eye(6), (zk - zm).T @ (yk - ym))
        errors.append(y[i] - (ym + (z[i] - zm) @ coef))
    assert _loo_path(z, y, [alpha])[0] == pytest.approx(np.mean(np.square(errors)), rel=1e-10)


def test_recovers_a_known_log_law() -> None:
    rng = np.random.default_rng(2)
    prior = np.array([0.4, 0.3, 0.2, 0.1])
    w = rng.dirichlet(5 * prior, size=300)
    true = 3.0 - 0.05 * np.log(w[:, 0] + 0.01) - 0.02 * np.log(w[:, 2] + 0.01) + 0.3 * w[:, 1]
    fit = fit_ridge_mixture(w, true + 0.002 * rng.standard_normal(300))
    test = rng.dirichlet(5 * prior, size=200)
    truth = 3.0 - 0.05 * np.log(test[:, 0] + 0.01) - 0.02 * np.log(test[:, 2] + 0.01) \
        + 0.3 * test[:, 1]
    assert np.sqrt(np.mean((fit.predict(test) - truth) ** 2)) < 0.01
    assert fit.prior == pytest.approx(w.mean(axis=0))
    assert 2.0 < fit.concentration < 10.0  # drawn at precision 5


def test_predict_normalises_and_checks_domains() -> None:
    rng = np.random.default_rng(3)
    w = rng.dirichlet(np.ones(3), size=40)
    fit = fit_ridge_mixture(w, w @ np.array([1.0, 2.0, 3.0]))
    assert fit.predict(w[:5] * 7.0) == pytest.approx(fit.predict(w[:5]))
    with pytest.raises(BadInput, match="2 domains"):
        fit.predict(w[:, :2])
    with pytest.raises(BadInput, match="all zero"):
        fit.predict(np.zeros((1, 3)))


def test_search_finds_the_best_region_and_stays_in_support() -> None:
    rng = np.random.default_rng(4)
    prior = np.array([0.25, 0.25, 0.25, 0.25])
    w = rng.dirichlet(4 * prior, size=400)
    # the objective falls with the share of domain 0 (with diminishing returns) and of domain 3
    y = 3.0 - 0.1 * np.log(w[:, 0] + 0.01) - 0.05 * np.log(w[:, 3] + 0.01)
    fit = fit_ridge_mixture(w, y)
    found = search_mixture(fit, n_samples=20_000, top_k=64, seed=0)
    assert found.weights.sum() == pytest.approx(1.0)
    assert found.weights[0] > 0.3 and found.weights[3] > 0.2
    assert found.weights[1] < 0.15 and found.weights[2] < 0.15
    assert found.predicted < y.min() + 0.05
    assert found.n_in_support <= 20_000 and found.top_k == 64
    again = search_mixture(fit, n_samples=20_000, top_k=64, seed=0)
    assert np.array_equal(found.weights, again.weights)


def test_search_on_regmix_favours_pile_cc_without_extrapolating(regmix) -> None:
    w, y, domains = regmix
    fit = fit_ridge_mixture(w, y)
    found = search_mixture(fit, n_samples=20_000, seed=0)
    assert domains[int(np.argmax(found.weights))] == "train_the_pile_pile_cc"
    assert (found.weights <= fit.w_max + 1e-12).all()
    # unrestricted, the fit extrapolates to a loss far below every run
    free = search_mixture(fit, n_samples=20_000, seed=0, restrict_to_support=False)
    assert free.predicted < found.predicted


def test_zero_prior_domain_gets_zero_weight() -> None:
    rng = np.random.default_rng(5)
    w = np.column_stack([rng.dirichlet(np.ones(3), size=50), np.zeros(50)])
    fit = fit_ridge_mixture(w, w[:, 0])
    found = search_mixture(fit, n_samples=2000, top_k=16, seed=1)
    assert found.weights[3] == 0.0


@pytest.mark.parametrize("w,y,match", [
    (np.ones((3, 2)), np.ones(3), "too few"),
    (np.ones((6, 2)), np.ones(5), "6 mixtures but 5"),
    (np.array([[1.0, -1.0]] * 6), np.ones(6), "not a finite number >= 0"),
    (np.ones((6, 2)), np.array([1, 2, 3, np.nan, 5, 6]), "objective value 3"),
])
def test_bad_input(w, y, match) -> None:
    with pytest.raises(BadInput, match=match):
        fit_ridge_mixture(w, y)
