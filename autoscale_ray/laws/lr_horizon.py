"""Optimal peak learning rate across token horizons (Bjorck et al. 2024, arXiv 2409.19913).

Per horizon D (a run's planned token budget), final loss is fitted against u = log(LR) with a
quadratic L(u) = a + b u + c u^2 by ordinary least squares; if c > 0 its vertex
u* = -b / (2c) is that horizon's optimal LR, LR*(D) = exp(u*). Across horizons the paper finds a
power law LR*(D) = B * D^(-beta) (beta ~ 0.32 at a fixed batch size), fitted here as the line
log LR* = log B - beta * log D by least squares and extrapolated to the target horizon.

The line's slope is shrunk toward Bjorck et al.'s beta = 0.32 (a Gaussian prior on beta, sd 0.1 by
default; `shrink_beta`): with two horizons the slope rests on two noisy vertices and extrapolates
far, so the prior steadies it; with many horizons or a small standard error the data win.

A horizon whose lowest observed loss sits at the edge of its LR grid, or whose vertex falls outside
the sampled LR range, has not bracketed its optimum: the vertex would be an extrapolation of the
quadratic. Such horizons are flagged (`at_edge`), warned about on the `autoscale_ray` logger and
left out of the power law unless `include_edge=True`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from scipy import stats

from autoscale_ray.errors import BadInput

log = logging.getLogger("autoscale_ray")

MIN_LRS = 3  # a quadratic needs three distinct LRs
DEFAULT_WINDOW = 2  # grid LRs each side of the observed best that enter the quadratic
BETA_BJORCK = 0.32  # Bjorck et al. 2024's LR-horizon exponent at a fixed batch size
BETA_PRIOR_SD = 0.1  # prior sd on beta: covers the spread of exponents across their model sizes


@dataclass(frozen=True)
class HorizonFit:
    """The quadratic fit of final loss vs log(LR) at one horizon.

    L(u) = a + b (u - center) + c (u - center)^2 with u = log(LR); the vertex u* = center - b/(2c)
    is LR*(D) when c > 0. `log_lr_star_se` is the delta-method standard error of u*
    (gradient (0, -1/(2c), b/(2c^2)) against the OLS covariance of (a, b, c)); NaN with no residual
    degrees of freedom (exactly three points)."""

    tokens: float
    n_lrs: int
    n_points: int  # points that entered the quadratic (after the window)
    lr_min: float
    lr_max: float
    lr_best_observed: float
    coef: tuple[float, float, float]
    center: float
    convex: bool
    at_edge: bool
    lr_star: float
    log_lr_star_se: float
    dof: int
    loss_at_star: float
    used: bool
    reason: str

    def predict(self, lr: float | np.ndarray) -> np.ndarray:
        """Predicted final loss at peak learning rate(s) `lr` for this horizon."""
        u = np.log(np.asarray(lr, dtype=float)) - self.center
        a, b, c = self.coef
        return a + b * u + c * u * u

    def to_json(self) -> dict[str, object]:
        return {"tokens": self.tokens, "lr_star": self.lr_star, "n_lrs": self.n_lrs,
                "n_points": self.n_points, "at_edge": self.at_edge, "convex": self.convex,
                "used": self.used, "reason": self.reason, "lr_range": [self.lr_min, self.lr_max],
                "lr_best_observed": self.lr_best_observed, "log_lr_star_se": self.log_lr_star_se,
                "loss_at_star": self.loss_at_star}


@dataclass(frozen=True)
class LRHorizonLaw:
    """LR*(D) = B * D^(-beta) fitted over the usable horizons (Bjorck et al. 2024).

    The raw line is ordinary (unweighted) least squares of log LR* on log D (per-horizon vertex
    variances from a few LRs are too noisy to serve as weights): slope -beta_raw, standard error
    beta_raw_se. Its beta is then shrunk toward the prior (`shrink_beta`; `beta`, `beta_se` are the
    posterior mean and sd; equal to the raw ones without a prior), and the line passes through the
    centre (log_d_centre, its fitted log LR*), the point whose estimate is uncorrelated with the
    slope: the mean of log D with n >= 3, the inverse-vertex-variance weighted mean with 2.

    Interval at a horizon D (`interval`), in log space, x0 = log D, x_c the centre:
    - with n >= 3 horizons, the t prediction interval of the line with the posterior slope sd,
      log LR*(D) +- t_{n-2} * sqrt(s^2 (1 + 1/n) + (x0 - x_c)^2 beta_se^2) (without a prior,
      beta_se^2 = s^2 / Sxx: the OLS prediction interval);
    - with exactly 2 horizons the raw line passes through both vertices and has no residual; the
      vertex variances v1, v2 (delta method on each quadratic) give the centre's variance
      v1 v2 / (v1 + v2), so var = v1 v2 / (v1 + v2) + (x0 - x_c)^2 beta_se^2 (without a prior this
      is (1 - l)^2 v1 + l^2 v2, l = (x0 - x1) / (x2 - x1)), with a t quantile at the
      Welch-Satterthwaite degrees of freedom of the two fits' parts at x0 (conservative where the
      prior carries the slope). If either quadratic has no residual degrees of freedom the
      interval is (NaN, NaN). This covers the noise of the two vertices only; horizon-to-horizon
      scatter cannot be estimated from two points.
    """

    B: float
    beta: float
    beta_se: float
    level: float
    method: str
    horizons: tuple[HorizonFit, ...]
    n_used: int
    log_d_mean: float
    sxx: float
    resid_sd: float
    used_log_d: tuple[float, ...]
    used_var: tuple[float, ...]
    used_dof: tuple[int, ...]
    beta_raw: float = math.nan
    beta_raw_se: float = math.nan
    beta_prior: float | None = None
    beta_prior_sd: float = math.nan
    log_d_centre: float = math.nan
    centre_var: float = math.nan

    def predict(self, tokens: float | np.ndarray) -> np.ndarray:
        """LR*(D) = B * D^(-beta)."""
        return self.B * np.asarray(tokens, dtype=float) ** (-self.beta)

    def log_se(self, tokens: float) -> tuple[float, float]:
        """(standard error of log LR*, degrees of freedom) at horizon `tokens`."""
        x0 = math.log(float(tokens))
        slope_part = (x0 - self.log_d_centre) ** 2 * self.beta_se ** 2
        if self.method == "t-regression":
            se = math.sqrt(self.resid_sd ** 2 * (1 + 1 / self.n_used) + slope_part)
            return se, float(self.n_used - 2)
        (x1, x2), (v1, v2) = self.used_log_d, self.used_var
        lam = (x0 - x1) / (x2 - x1)
        parts = ((1 - lam) ** 2 * v1, lam ** 2 * v2)
        return math.sqrt(self.centre_var + slope_part), _satterthwaite(parts, self.used_dof)

    def interval(self, tokens: float) -> tuple[float, float]:
        """(lo, hi) of LR* at horizon `tokens` at `level` (see the class docstring)."""
        se, dof = self.log_se(tokens)
        if not (math.isfinite(se) and math.isfinite(dof) and dof > 0):
            return (math.nan, math.nan)
        q = float(stats.t.ppf(0.5 + self.level / 2, dof)) * se
        centre = math.log(float(self.predict(tokens)))
        return (math.exp(centre - q), math.exp(centre + q))

    def to_json(self) -> dict[str, object]:
        """The law's numbers (raw and shrunk beta, the prior) for reports."""
        return {"B": self.B, "beta": self.beta, "beta_se": self.beta_se, "beta_raw": self.beta_raw,
                "beta_raw_se": self.beta_raw_se, "beta_prior": self.beta_prior,
                "beta_prior_sd": self.beta_prior_sd if self.beta_prior is not None else None,
                "method": self.method, "horizons": self.n_used, "level": self.level}


def shrink_beta(beta: float, se: float, prior: float = BETA_BJORCK,
                prior_sd: float = BETA_PRIOR_SD) -> tuple[float, float]:
    """Posterior (mean, sd) of beta: estimate beta ~ N(beta_true, se^2), prior N(prior, prior_sd^2).

    w = 1/se^2 + 1/prior_sd^2, mean = (beta/se^2 + prior/prior_sd^2) / w, sd = 1/sqrt(w): the
    conjugate normal update, i.e. the precision-weighted mean (prior: Bjorck et al. 2024, arXiv
    2409.19913, beta ~ 0.32 at a fixed batch size). se = 0: the data alone (beta, 0); se unknown
    (NaN): no weight can be given to either, so (beta, NaN)."""
    if not (math.isfinite(prior_sd) and prior_sd > 0):
        raise BadInput(f"prior sd {prior_sd} is not a positive number", "shrink_beta",
                       "use e.g. 0.1, or no prior")
    if math.isnan(se):
        return beta, math.nan
    if se == 0:
        return beta, 0.0
    w_data, w_prior = 1 / se ** 2, 1 / prior_sd ** 2
    w = w_data + w_prior
    return (beta * w_data + prior * w_prior) / w, 1 / math.sqrt(w)


def local_window(lr: np.ndarray, loss: np.ndarray, window: int | None) -> np.ndarray:
    """Which points enter a horizon's quadratic: those at the `window` grid LRs on each side of
    the best observed LR (lowest mean loss), shifted inward at the grid's ends so 2*window+1 LRs
    are kept; every point when `window` is None."""
    lr = np.asarray(lr, dtype=float)
    if window is None:
        return np.ones(lr.size, dtype=bool)
    if window < 1:
        raise BadInput(f"window {window} < 1", "fit_horizon", "use >= 1 (3 LRs) or None (all)")
    grid = np.unique(lr)
    best = int(np.argmin([np.asarray(loss, dtype=float)[lr == g].mean() for g in grid]))
    lo = max(0, min(best - window, len(grid) - 2 * window - 1))
    return np.isin(lr, grid[lo:lo + 2 * window + 1])


def fit_horizon(lr: Sequence[float] | np.ndarray, loss: Sequence[float] | np.ndarray,
                tokens: float, *, window: int | None = DEFAULT_WINDOW) -> HorizonFit:
    """Fit L = a + b u + c u^2 (u = log LR, centred) by OLS at one horizon; vertex -b/(2c) if c > 0.

    Local fit: only the `window` grid LRs on each side of the best observed LR (by mean loss) enter
    the quadratic, shifted inward at the grid ends so 2*window+1 LRs are kept (all LRs when None).
    Real loss-vs-log(LR) curves are asymmetric (steeper above the optimum); far grid points then
    pull a global quadratic's vertex, and with a fixed grid that bias changes with the horizon and
    leaks into beta. Flags `at_edge` when the lowest mean loss over the whole grid is at its
    smallest or largest LR, or the vertex lies outside the sampled range (Bjorck et al. 2024 bracket
    the optimum per horizon). `used` is the default verdict (usable, not at the edge)."""
    lr = np.asarray(lr, dtype=float)
    loss = np.asarray(loss, dtype=float)
    grid = np.unique(lr)
    mean_loss = np.array([loss[lr == g].mean() for g in grid])
    best = int(np.argmin(mean_loss))
    n_lrs = len(grid)
    keep = local_window(lr, loss, window)
    lr, loss = lr[keep], loss[keep]
    base = dict(tokens=float(tokens), n_lrs=n_lrs, n_points=len(lr), lr_min=float(grid[0]),
                lr_max=float(grid[-1]), lr_best_observed=float(grid[best]))
    u = np.log(lr)
    n = len(lr)
    if n_lrs < MIN_LRS:
        return HorizonFit(**base, coef=(math.nan,) * 3, center=math.nan, convex=False,
                          at_edge=True, lr_star=math.nan, log_lr_star_se=math.nan, dof=0,
                          loss_at_star=math.nan, used=False,
                          reason=f"only {n_lrs} distinct LR(s); a quadratic needs {MIN_LRS}")
    center = float(u.mean())  # centring keeps the normal equations well conditioned
    x = u - center
    design = np.column_stack([np.ones(n), x, x * x])
    coef, *_ = np.linalg.lstsq(design, loss, rcond=None)
    a, b, c = (float(v) for v in coef)
    dof = n - 3
    convex = c > 0
    if not convex:
        return HorizonFit(**base, coef=(a, b, c), center=center, convex=False,
                          at_edge=best in (0, n_lrs - 1), lr_star=math.nan,
                          log_lr_star_se=math.nan, dof=dof, loss_at_star=math.nan, used=False,
                          reason="loss vs log(LR) is not convex; no minimum to take")
    x_star = -b / (2 * c)
    se = math.nan
    if dof > 0:
        resid = loss - design @ coef
        cov = float(resid @ resid) / dof * np.linalg.pinv(design.T @ design)
        grad = np.array([0.0, -1 / (2 * c), b / (2 * c * c)])
        se = math.sqrt(max(float(grad @ cov @ grad), 0.0))
    u_star = center + x_star
    outside = not (math.log(grid[0]) <= u_star <= math.log(grid[-1]))
    at_edge = best in (0, n_lrs - 1) or outside
    reasons = []
    if best in (0, n_lrs - 1):
        reasons.append(f"lowest observed loss at the {'smallest' if best == 0 else 'largest'} LR "
                       f"{grid[best]:.4g} of the grid")
    if outside:
        reasons.append(f"vertex {math.exp(u_star):.4g} outside the sampled LRs "
                       f"[{grid[0]:.4g}, {grid[-1]:.4g}]")
    return HorizonFit(**base, coef=(a, b, c), center=center, convex=True, at_edge=at_edge,
                      lr_star=math.exp(u_star), log_lr_star_se=se, dof=dof,
                      loss_at_star=a - b * b / (4 * c), used=not at_edge,
                      reason="; ".join(reasons))


def _check(lr: np.ndarray, loss: np.ndarray, tokens: np.ndarray) -> None:
    if not (lr.shape == loss.shape == tokens.shape) or lr.ndim != 1:
        raise BadInput(f"lr, loss and tokens must be 1-D arrays of one length "
                       f"(got {lr.shape}, {loss.shape}, {tokens.shape})", "fit_lr_horizon")
    for name, arr, positive in (("lr", lr, True), ("loss", loss, False), ("tokens", tokens, True)):
        bad = ~np.isfinite(arr) | ((arr <= 0) if positive else False)
        if bad.any():
            i = int(np.argmax(bad))
            raise BadInput(f"{name}[{i}] = {arr[i]} is not a finite{' positive' if positive else ''} "
                           "number", "fit_lr_horizon", f"fix or drop that {name} value")


def fit_lr_horizon(lr: Sequence[float] | np.ndarray, loss: Sequence[float] | np.ndarray,
                   tokens: Sequence[float] | np.ndarray, *, include_edge: bool = False,
                   level: float = 0.95, window: int | None = DEFAULT_WINDOW,
                   beta_prior: float | None = BETA_BJORCK,
                   beta_prior_sd: float = BETA_PRIOR_SD) -> LRHorizonLaw:
    """Fit LR*(D) = B * D^(-beta) (Bjorck et al. 2024, arXiv 2409.19913) from an LR sweep.

    Each point is one run: its peak `lr`, final `loss` and horizon `tokens` (its budget). Per
    horizon, `fit_horizon` takes the vertex of a quadratic in log LR (local to the best observed
    LR, see `window`); then log LR* = log B - beta log D by OLS over the usable horizons (convex
    fit, >= 3 LRs, not at the grid edge; edge horizons too with `include_edge`), and beta shrunk
    toward `beta_prior` by its standard error (`shrink_beta`, prior sd `beta_prior_sd`; None: no
    prior), the line kept through its centre (see `LRHorizonLaw`). Needs >= 2 usable horizons."""
    lr_a, loss_a, tok_a = (np.asarray(v, dtype=float).ravel() for v in (lr, loss, tokens))
    _check(lr_a, loss_a, tok_a)
    if not 0 < level < 1:
        raise BadInput(f"level {level} is not in (0, 1)", "fit_lr_horizon", "use e.g. 0.95")
    if beta_prior is not None and not math.isfinite(beta_prior):
        raise BadInput(f"beta prior {beta_prior} is not a finite number", "fit_lr_horizon",
                       "use e.g. 0.32 (Bjorck et al.), or None for no prior")
    fits = []
    for d in np.unique(tok_a):
        sel = tok_a == d
        fit = fit_horizon(lr_a[sel], loss_a[sel], float(d), window=window)
        if include_edge and fit.convex and fit.at_edge:
            fit = replace(fit, used=True)
        if fit.at_edge or not fit.used:
            verdict = "used anyway (include_edge)" if fit.used else "left out of the LR law"
            log.warning("LR sweep at horizon %.4g tokens: %s; %s", d,
                        fit.reason or "not usable", verdict)
        fits.append(fit)
    used = [f for f in fits if f.used]
    if len(used) < 2:
        left = "; ".join(f"{f.tokens:.4g} tokens: {f.reason}" for f in fits if not f.used)
        raise BadInput(f"the LR law needs >= 2 usable horizons, got {len(used)}: a single horizon "
                       "cannot determine beta" + (f" (left out: {left})" if left else ""),
                       "fit_lr_horizon", "sweep LRs at another horizon, widen the LR grid of "
                       "edge horizons, or accept edge vertices with include_edge / --include-edge")
    x = np.log([f.tokens for f in used])
    y = np.log([f.lr_star for f in used])
    n = len(used)
    x_mean = float(x.mean())
    sxx = float(((x - x_mean) ** 2).sum())
    slope = float(((x - x_mean) * (y - y.mean())).sum() / sxx)
    intercept = float(y.mean() - slope * x_mean)
    var = tuple(f.log_lr_star_se ** 2 for f in used)
    if n >= 3:
        resid = y - (intercept + slope * x)
        s = math.sqrt(float(resid @ resid) / (n - 2))
        method, beta_se = "t-regression", s / math.sqrt(sxx)
        x_c, centre_var = x_mean, s * s / n
    else:
        s = math.nan
        method = "delta-two-horizons"
        beta_se = math.sqrt(sum(var) / (2 * sxx))  # 2 sxx = (log D2 - log D1)^2
        v1, v2 = var
        if not math.isfinite(beta_se):
            log.warning("LR law from 2 horizons whose quadratics have no residual degrees of "
                        "freedom (3 LRs each): no interval and no prior weight; sweep >= 4 LRs or "
                        "a third horizon")
            x_c, centre_var = x_mean, math.nan
        elif v1 + v2 > 0:
            # the inverse-variance weighted centre: there the line's value and slope are uncorrelated
            x_c = float((x[0] * v2 + x[1] * v1) / (v1 + v2))
            centre_var = v1 * v2 / (v1 + v2)
        else:
            x_c, centre_var = x_mean, 0.0
    y_c = intercept + slope * x_c
    beta, beta_post_se = -slope, beta_se
    if beta_prior is not None:
        beta, beta_post_se = shrink_beta(-slope, beta_se, beta_prior, beta_prior_sd)
    return LRHorizonLaw(B=math.exp(y_c + beta * x_c), beta=beta, beta_se=beta_post_se,
                        level=level, method=method, horizons=tuple(fits), n_used=n,
                        log_d_mean=x_mean, sxx=sxx, resid_sd=s,
                        used_log_d=tuple(float(v) for v in x), used_var=var,
                        used_dof=tuple(f.dof for f in used), beta_raw=-slope, beta_raw_se=beta_se,
                        beta_prior=beta_prior, beta_prior_sd=beta_prior_sd, log_d_centre=x_c,
                        centre_var=centre_var)


def _satterthwaite(parts: Sequence[float], dofs: Sequence[int]) -> float:
    """Welch-Satterthwaite degrees of freedom of sum(parts), each part a variance estimate with
    dofs[i] degrees of freedom: (sum p)^2 / sum(p^2 / dof). NaN if any part has no dof."""
    if any(d <= 0 or not math.isfinite(p) for p, d in zip(parts, dofs)):
        return math.nan
    den = sum(p * p / d for p, d in zip(parts, dofs))
    return sum(parts) ** 2 / den if den > 0 else float(min(dofs))


def lr_prior_interval(lr_star: float, horizon: float, tokens: float, log_se: float,
                      grid_step: float, level: float = 0.9,
                      beta_sd: float = BETA_PRIOR_SD, beta: float = BETA_BJORCK) -> tuple[float, float]:
    """Interval of LR*(tokens) moved from one horizon's vertex `lr_star` along D^-beta with beta
    uncertain (Bjorck et al. 2024's exponent, prior mean `beta`, sd `beta_sd`): in logs,
    log lr_star - beta log(D / D_h) +- z_level sqrt(se_h^2 + log(D / D_h)^2 beta_sd^2). se_h is
    the vertex's own standard error; when the quadratic has none (no residual degrees of freedom,
    or the best LR was only observed), the grid's resolution stands in: a uniform error over half
    a log step, sd = grid_step / (2 sqrt 3). Normal quantile z (the prior is normal)."""
    se_h = log_se if math.isfinite(log_se) and log_se > 0 else grid_step / (2.0 * math.sqrt(3.0))
    span = math.log(float(tokens) / float(horizon))
    se = math.sqrt(se_h ** 2 + span ** 2 * beta_sd ** 2)
    z = float(stats.norm.ppf(0.5 + level / 2.0))
    centre = math.log(float(lr_star)) - beta * span
    return (math.exp(centre - z * se), math.exp(centre + z * se))
