"""Regression baseline for mixtures (RegMix, Liu et al. 2024, arXiv 2407.01492).

Many small runs at random mixtures W (Dirichlet around the token prior) give an objective y each.
A regressor y ~ f(w) is fitted on them, then the mixture with the lowest predicted objective is
searched among many simulated mixtures (RegMix: 100,000 Dirichlet samples, mean of the top 128).

The regressor here is ridge regression on features [w, log(w + eps)]: the linear part is RegMix's
linear model; the log part captures the diminishing return of adding tokens to a domain (a domain's
loss falls roughly like a power of its share), which a purely linear model cannot. The ridge
penalty and eps are chosen by exact leave-one-out cross-validation over a small grid, in closed
form from one eigendecomposition per eps (see `_loo_path`). Pure numpy/scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.checks import weight_matrix

ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 4, 15))
EPSILONS: tuple[float, ...] = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
MIN_RUNS = 5


def features(weights: np.ndarray, eps: float) -> np.ndarray:
    """[w, log(w + eps)] per row: the design of the ridge regressor."""
    return np.hstack([weights, np.log(weights + eps)])


@dataclass(frozen=True)
class RidgeMixtureFit:
    """y_hat(w) = intercept + ((phi(w) - mean) / scale) . coef, phi(w) = [w, log(w + eps)].

    `alpha` and `eps` were chosen by exact leave-one-out CV (`loo_rmse` is that CV's root mean
    squared error). `prior` is the mean training mixture and `concentration` the Dirichlet
    precision of the training mixtures by the method of moments; `search_mixture` samples there.
    `w_max` is each domain's largest training weight: beyond it the fit extrapolates."""

    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    eps: float
    alpha: float
    loo_rmse: float
    n_runs: int
    prior: np.ndarray
    concentration: float
    w_max: np.ndarray

    @property
    def n_domains(self) -> int:
        return len(self.prior)

    def predict(self, weights: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
        """Predicted objective for each row of `weights` (rows x domains, normalised to sum 1)."""
        w = weight_matrix(weights, "predict")
        if w.shape[1] != self.n_domains:
            raise BadInput(f"weights have {w.shape[1]} domains, the fit has {self.n_domains}",
                           "RidgeMixtureFit.predict", "give the domains in the training order")
        return self.intercept + ((features(w, self.eps) - self.mean) / self.scale) @ self.coef


@dataclass(frozen=True)
class CrossValidation:
    """Out-of-fold predictions of a K-fold cross-validation (each fold refits alpha and eps)."""

    predictions: np.ndarray
    spearman: float
    rmse: float
    folds: int


@dataclass(frozen=True)
class MixtureSearch:
    """RegMix's search: the mean of the `top_k` lowest-predicted of `n_samples` Dirichlet samples."""

    weights: np.ndarray
    predicted: float
    top_k_predicted_mean: float
    n_samples: int
    n_in_support: int
    top_k: int
    prior: np.ndarray
    concentration: float


def _loo_path(z: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """Exact leave-one-out MSE of ridge with an unpenalised intercept for each alpha.

    With centred design Z and Z^T Z = V diag(lam) V^T, the hat matrix is
    H = 11^T/n + (ZV) diag(1/(lam+alpha)) (ZV)^T, and the LOO residual of row i is e_i / (1 - H_ii)
    (the standard identity for linear smoothers). One eigendecomposition of the small p x p Gram
    matrix serves the whole alpha grid."""
    n = len(y)
    lam, v = np.linalg.eigh(z.T @ z)
    lam = np.clip(lam, 0.0, None)  # round-off can make a null direction slightly negative
    zv = z @ v
    zv2 = zv * zv
    vty = zv.T @ (y - y.mean())
    out = np.empty(len(alphas))
    for k, a in enumerate(alphas):
        inv = 1.0 / (lam + a)
        fitted = y.mean() + zv @ (inv * vty)
        h = 1 / n + zv2 @ inv
        out[k] = float(np.mean(((y - fitted) / (1 - h)) ** 2))
    return out


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0  # a domain never varied carries no information; its column stays 0
    return (x - mean) / scale, mean, scale


def _dirichlet_moments(w: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean and precision s of a Dirichlet by moments: Var w_i = m_i (1 - m_i) / (s + 1), pooled
    over domains as s = sum m_i(1-m_i) / sum Var w_i - 1 (capped to a finite, positive range)."""
    m = w.mean(axis=0)
    var = w.var(axis=0, ddof=1) if len(w) > 1 else np.zeros_like(m)
    total = float(var.sum())
    s = float((m * (1 - m)).sum() / total - 1) if total > 0 else 1e6
    return m, min(max(s, 1e-3), 1e6)


def fit_ridge_mixture(weights: Sequence[Sequence[float]] | np.ndarray,
                      y: Sequence[float] | np.ndarray, *, alphas: Sequence[float] = ALPHAS,
                      epsilons: Sequence[float] = EPSILONS) -> RidgeMixtureFit:
    """Ridge regression of the objective y on [w, log(w + eps)] (RegMix baseline, Liu et al. 2024).

    Minimises ||y - b0 - Z beta||^2 + alpha ||beta||^2 over standardised features Z; (alpha, eps)
    is the pair of the grid with the lowest exact leave-one-out MSE (closed form, `_loo_path`). Rows of `weights` are normalised to sum 1."""
    w = weight_matrix(weights, "fit_ridge_mixture")
    yv = np.asarray(y, dtype=float).ravel()
    if len(yv) != len(w):
        raise BadInput(f"{len(w)} mixtures but {len(yv)} objective values", "fit_ridge_mixture")
    if not np.isfinite(yv).all():
        i = int(np.argmax(~np.isfinite(yv)))
        raise BadInput(f"objective value {i} is {yv[i]}", "fit_ridge_mixture",
                       "give finite objective values")
    if len(w) < MIN_RUNS:
        raise BadInput(f"{len(w)} runs are too few for the regression baseline",
                       "fit_ridge_mixture", f"give at least {MIN_RUNS} random-mixture runs "
                       "(RegMix uses hundreds)")
    best = (math.inf, 0.0, 0.0)
    for eps in epsilons:
        z, _, _ = _standardise(features(w, eps))
        mse = _loo_path(z, yv, alphas)
        k = int(np.argmin(mse))
        if mse[k] < best[0]:
            best = (float(mse[k]), float(alphas[k]), float(eps))
    loo_mse, alpha, eps = best
    z, mean, scale = _standardise(features(w, eps))
    yc = yv - yv.mean()
    coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ yc)
    prior, concentration = _dirichlet_moments(w)
    return RidgeMixtureFit(coef=coef, intercept=float(yv.mean()), mean=mean, scale=scale, eps=eps,
                           alpha=alpha, loo_rmse=math.sqrt(loo_mse), n_runs=len(w), prior=prior,
                           concentration=concentration, w_max=w.max(axis=0))


def cross_validate(weights: Sequence[Sequence[float]] | np.ndarray,
                   y: Sequence[float] | np.ndarray, *, folds: int = 5,
                   seed: int = 0) -> CrossValidation:
    """K-fold CV of `fit_ridge_mixture` (alpha and eps re-chosen inside every training fold), with
    the Spearman rank correlation RegMix reports between predicted and observed objectives."""
    w = weight_matrix(weights, "cross_validate")
    yv = np.asarray(y, dtype=float).ravel()
    if not 2 <= folds <= len(w):
        raise BadInput(f"{folds} folds for {len(w)} runs", "cross_validate",
                       "use 2 <= folds <= number of runs")
    order = np.random.default_rng(seed).permutation(len(w))
    pred = np.empty(len(w))
    for test in np.array_split(order, folds):
        train = np.setdiff1d(order, test)
        pred[test] = fit_ridge_mixture(w[train], yv[train]).predict(w[test])
    rho = float(stats.spearmanr(pred, yv).statistic)
    return CrossValidation(predictions=pred, spearman=rho,
                           rmse=float(np.sqrt(np.mean((pred - yv) ** 2))), folds=folds)


def search_mixture(fit: RidgeMixtureFit, *, n_samples: int = 100_000, top_k: int = 128,
                   prior: Sequence[float] | np.ndarray | None = None,
                   concentration: float | None = None, restrict_to_support: bool = True,
                   seed: int = 0, chunk: int = 20_000) -> MixtureSearch:
    """RegMix's search: draw `n_samples` mixtures w ~ Dirichlet(concentration * prior), predict
    each, and return the mean of the `top_k` with the lowest prediction (Liu et al. 2024 average
    the top 128 of 100,000 to damp the regressor's noise).

    Defaults sample where the regressor was trained: the mean training mixture and its method-of-
    moments Dirichlet precision (the random runs were drawn around the token prior). Domains with
    a zero prior get zero weight. With `restrict_to_support`, samples giving any domain more than
    its largest training weight (`fit.w_max`) are discarded: there the linear and log terms
    extrapolate (on the RegMix 1M data, unrestricted search puts half the mixture on Enron emails,
    a domain the runs never gave more than a few percent, at a predicted loss far below any run)."""
    p = fit.prior if prior is None else weight_matrix([list(np.asarray(prior, dtype=float))],
                                                     "search_mixture prior")[0]
    if len(p) != fit.n_domains:
        raise BadInput(f"prior has {len(p)} domains, the fit has {fit.n_domains}", "search_mixture")
    conc = fit.concentration if concentration is None else float(concentration)
    if not (math.isfinite(conc) and conc > 0):
        raise BadInput(f"concentration {concentration} is not a positive number", "search_mixture")
    if n_samples < 1 or not 1 <= top_k:
        raise BadInput(f"n_samples={n_samples}, top_k={top_k}", "search_mixture",
                       "use n_samples >= 1 and top_k >= 1")
    top_k = min(top_k, n_samples)
    rng = np.random.default_rng(seed)
    live = p > 0
    n_in = 0
    best_w = np.empty((0, fit.n_domains))
    best_y = np.empty(0)
    for start in range(0, n_samples, chunk):  # bounded memory: keep only the running top_k
        m = min(chunk, n_samples - start)
        w = np.zeros((m, fit.n_domains))
        w[:, live] = rng.dirichlet(conc * p[live], size=m)
        if restrict_to_support:
            w = w[(w <= fit.w_max + 1e-12).all(axis=1)]
        n_in += len(w)
        w_all = np.vstack([best_w, w])
        y_all = np.concatenate([best_y, fit.predict(w)])
        keep = np.argsort(y_all, kind="stable")[:top_k]
        best_w, best_y = w_all[keep], y_all[keep]
    if n_in == 0:
        raise BadInput(f"none of {n_samples} sampled mixtures lies within the training runs' "
                       "per-domain weight range", "search_mixture",
                       "sample more, give a prior closer to the runs' mixtures, or pass "
                       "restrict_to_support=False")
    mean_w = best_w.mean(axis=0)
    return MixtureSearch(weights=mean_w, predicted=float(fit.predict(mean_w[None, :])[0]),
                         top_k_predicted_mean=float(best_y.mean()), n_samples=n_samples,
                         n_in_support=n_in, top_k=len(best_y), prior=p, concentration=conc)
