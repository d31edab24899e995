"""The AutoScale projection of optimal domain quantities to a larger budget.

AutoScale (Kang et al. 2024, arXiv 2407.20177), stage 2. From the optimal per-domain token
quantities N_i(1) at budget N(1) and N_i(2) at N(2), the next scale is N_i(3) = N_i(2)^2 / N_i(1);
iterating, N_i(k) = N_i(1) r_i^(k-1) with r_i = N_i(2) / N_i(1). In logs this is a line per domain
along one latent scale s shared by all domains:

    log N_i(s) = alpha_i + s beta_i,       beta_i = log r_i.

(For L = sum_i beta_i N_i^(-gamma_i) the exact optimum is N_i*(t) = (beta_i gamma_i t)^(1/(1+gamma_i)),
so log N_i* is linear in log t with a per-domain slope: the model is exact with s linear in log t.)
For a target budget T the real s with sum_i exp(alpha_i + s beta_i) = T is found by brentq and the
quantities are exp(alpha_i + s beta_i).

With K >= 3 source scales the lines are fitted by least squares: minimise
sum_{k,i} (log N_i(k) - alpha_i - s_k beta_i)^2 over alpha, beta and the latent s_k. Eliminating
alpha leaves the best rank-1 approximation of the column-centred log-quantity matrix, which the SVD
gives exactly (Eckart-Young). The gauge is fixed by s = 0 at the smallest source and s = K - 1 at
the largest, so two sources reproduce the two-point rule (s = 0, 1) and evenly spaced scales come
out as s_k = k - 1.

A domain with zero tokens at a source has no logarithm: BadInput (DDO's lower bound keeps every
domain positive; drop a domain you do not train on from every file). Domains at DDO's lower bound
at a source carry no information about their optimum; they are projected like the others (the
paper's rule) and named by the caller; `floor_weights` re-imposes a floor if asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.evidence import guard_log_ratios


@dataclass(frozen=True)
class ProjectionFit:
    """log N_i(s) = alpha_i + s beta_i fitted to the sources (rows of `scales` order)."""

    alpha: np.ndarray            # log N_i at s = 0 (the smallest source)
    beta: np.ndarray             # log r_i: growth of log N_i per unit of s
    scales: np.ndarray           # s_k of each source
    rmse_log: float              # RMSE of the log-quantity fit (0 for two sources)

    @property
    def ratios(self) -> np.ndarray:
        return np.exp(self.beta)

    def quantities(self, s: float) -> np.ndarray:
        """Per-domain token quantities at latent scale s."""
        return np.exp(self.alpha + s * self.beta)

    def exponent(self, target: float) -> float:
        """The s with sum_i N_i(s) = target, on the branch where the total grows with s."""
        return _solve_exponent(self.alpha, self.beta, float(target))

    def predict(self, target: float) -> np.ndarray:
        """Per-domain token quantities summing to `target`."""
        return self.quantities(self.exponent(target))

    def guarded(self, quantities: np.ndarray, sigma: np.ndarray) -> "ProjectionFit":
        """The fit with each domain's slope shrunk by the uncertainty `sigma` of its log
        quantity change between the smallest and largest source (laws/evidence.py,
        `guard_log_ratios`), re-anchored at the largest source (the best evidence). sigma 0:
        unchanged; inf: the domain's quantity grows at the total's average rate (no trend of
        its own)."""
        logs = np.log(np.asarray(quantities, dtype=float))
        span = float(self.scales[-1] - self.scales[0])
        common = float(np.log(np.exp(logs[-1]).sum() / np.exp(logs[0]).sum())) / span
        beta = guard_log_ratios(self.beta, np.asarray(sigma, dtype=float) / span, common)
        alpha = logs[-1] - self.scales[-1] * beta
        return ProjectionFit(alpha=alpha, beta=beta, scales=self.scales, rmse_log=self.rmse_log)


def fit_projection(quantities: np.ndarray) -> ProjectionFit:
    """Fit the AutoScale lines to per-domain optimal quantities (sources x domains), sources
    ordered by budget, smallest first. Two sources: the paper's two-point rule, exactly."""
    q = np.asarray(quantities, dtype=float)
    if q.ndim != 2 or q.shape[0] < 2:
        raise BadInput("the projection needs optimal mixtures at two or more budgets", None,
                       "give two or more mixture files")
    if not np.isfinite(q).all() or (q <= 0).any():
        raise BadInput("a domain has no tokens at some source budget", None,
                       "every domain needs a positive quantity at every source")
    k = q.shape[0]
    logs = np.log(q)
    centred = logs - logs.mean(axis=0)
    u, sing, vt = np.linalg.svd(centred, full_matrices=False)
    left = u[:, 0] * sing[0]                 # s_k up to the gauge, times the scale of beta
    span = left[-1] - left[0]
    if abs(span) <= 1e-12 * max(1.0, float(np.abs(logs).max())):
        raise BadInput("the smallest and largest sources have the same per-domain quantities", None,
                       "give optimal mixtures at different budgets")
    scales = (left - left[0]) / span * (k - 1)
    beta = vt[0] * span / (k - 1)
    alpha = logs.mean(axis=0) - scales.mean() * beta
    resid = logs - (alpha + np.outer(scales, beta))
    return ProjectionFit(alpha=alpha, beta=beta, scales=scales,
                         rmse_log=float(np.sqrt(np.mean(resid ** 2))) if k > 2 else 0.0)


def _solve_exponent(alpha: np.ndarray, beta: np.ndarray, target: float) -> float:
    """Root of G(s) = log sum_i exp(alpha_i + s beta_i) - log T. G is convex; with shrinking
    domains (beta_i < 0) it has a minimum and the root on its increasing side is taken."""
    if not (np.isfinite(target) and target > 0):
        raise BadInput(f"target budget {target}", None, "give a positive number of tokens")
    if not (beta > 0).any():
        raise BadInput("no domain grows with the budget between the sources", None,
                       "check that the mixture files are ordered optima at growing budgets")
    log_t = np.log(target)

    def g(s: float) -> float:
        z = alpha + s * beta
        top = z.max()
        return float(top + np.log(np.exp(z - top).sum()) - log_t)

    def slope(s: float) -> float:  # G'(s) = softmax-weighted mean of beta, increasing in s
        z = alpha + s * beta
        p = np.exp(z - z.max())
        return float(p @ beta / p.sum())

    if (beta < 0).any():  # the minimum of G: G' goes from min(beta) < 0 to max(beta) > 0
        lo, hi = -1.0, 1.0
        while slope(lo) > 0:
            lo *= 2.0
        while slope(hi) < 0:
            hi *= 2.0
        s_lo = brentq(slope, lo, hi, xtol=1e-14)
        if g(s_lo) > 0:
            raise BadInput(f"target {target:g} is below the smallest total the projection reaches "
                           f"({np.exp(g(s_lo) + log_t):.4g} tokens)", None,
                           "give a larger --target-tokens")
    else:
        s_lo, step = 0.0, 1.0
        while g(s_lo) > 0:
            s_lo -= step
            step *= 2.0
            if step > 1e6:
                raise BadInput(f"target {target:g} is below every total the projection reaches",
                               None, "give a larger --target-tokens")
    s_hi, step = max(s_lo, 0.0) + 1.0, 1.0
    while g(s_hi) < 0:
        s_hi += step
        step *= 2.0
    return float(brentq(g, s_lo, s_hi, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))


def floor_weights(weights: np.ndarray, min_weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Re-impose a floor: w'_i = max(min_weight, k w_i) with k such that sum w' = 1 (the domains
    above the floor keep their proportions). Returns (w', mask of domains held at the floor)."""
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    m = len(w)
    if not 0.0 <= min_weight <= 1.0 / m:
        raise BadInput(f"minimum weight {min_weight} for {m} domains", None,
                       f"give --min-weight in [0, {1.0 / m:.4g}]")
    floored = np.zeros(m, dtype=bool)
    if min_weight == 0.0:
        return w, floored
    while True:  # at most m rounds: the floored set only grows
        k = (1.0 - min_weight * floored.sum()) / w[~floored].sum() if (~floored).any() else 0.0
        new = floored | (k * w < min_weight)
        if (new == floored).all():
            break
        floored = new
    out = np.where(floored, min_weight, k * w)
    return out / out.sum(), floored


def shares_log_linear(shares: np.ndarray, budgets: np.ndarray, target: float) -> np.ndarray:
    """The other two-point rule: each domain's share linear in the log budget,
    w_i(T) = a_i + b_i log T, least squares over the sources (two sources: through both), clipped
    at 0 and renormalised. It reproduces the sources as exactly as AutoScale's rule does (to first
    order the two agree), so with two or three sources the data cannot tell them apart: the
    projection's interval holds both (model uncertainty, fits/project.py)."""
    w = np.asarray(shares, dtype=float)
    x = np.log(np.asarray(budgets, dtype=float))
    if w.ndim != 2 or w.shape[0] != len(x) or len(x) < 2:
        raise BadInput("the projection needs optimal mixtures at two or more budgets", None,
                       "give two or more mixture files")
    design = np.c_[np.ones_like(x), x]
    coef, *_ = np.linalg.lstsq(design, w, rcond=None)
    out = np.maximum(coef[0] + coef[1] * np.log(float(target)), 0.0)
    if out.sum() <= 0:
        raise BadInput("every share extrapolates below 0 at the target", None,
                       "give sources closer to the target")
    return out / out.sum()
