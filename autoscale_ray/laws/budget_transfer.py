"""Per-domain losses in effective tokens, fitted across budgets: a second extrapolation to the target.

AutoScale's projection (laws/projection.py) carries DDO's optima from two probe budgets to the target
by a rule about the optima themselves; with two probes the rule cannot be checked. This law instead
models the runs: each validation domain j's final loss as a power law in the effective tokens every
training domain contributes to it,

    L_j(N) = E_j + B_j (u_j / N_ref)^(-b_j),   u_j = N_j + sum_{i != j} t_ji N_i + a_j N_ref,
    t_ji >= 0, a_j > 0, b_j > 0, 0 <= E_j < min L_j,

with N_i the tokens of domain i in the run (absolute, so every run of every probe budget is one
data set) and N_ref a fixed token unit. It is the per-domain power law in the domain's own tokens
that DDO's surrogate uses (Kang et al. 2024, arXiv 2407.20177), with the other domains' tokens
counted as "effective data transferred" (Hernandez et al. 2021, arXiv 2102.01293) at a linear
rate t_ji, and a_j > 0 the finite loss of a model that saw none of domain j. Unlike DDO's transfer
surrogate (laws/ddo_transfer.py, one budget, normalised at its base run) nothing is pinned to a
noisy base run. Fitted per domain by bounded least squares (scipy.optimize.least_squares, trust
region reflective) from a fixed grid of starts, lowest SSE kept, ties to the earliest start.

At a target of T tokens the mixture minimising sum_j e_j L_j(w T) (or sum_j e_j exp(L_j), the mean
perplexity) is found on the simplex with per-domain caps (data limits) by SLSQP. Each L_j is a
convex decreasing power of an affine function of w, so the objective is convex.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import least_squares, minimize

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.noise import SolveAll, solve_each

OBJECTIVES = ("mean-loss", "mean-ppl")
_T_MAX = 1e2
_A_MIN, _A_MAX = 1e-6, 1e3
_B_MIN, _B_MAX = 1e-3, 20.0
_LOGK = 40.0
_STARTS = [(t0, a0, b0, e0) for t0 in (0.0, 0.3) for a0 in (0.1, 1.0, 4.0) for b0 in (0.2, 0.5, 1.0)
           for e0 in (0.0, 0.5)]
_TIE = 1e-9


@dataclass(frozen=True)
class BudgetTransferLaw:
    """L_j(N) = E_j + B_j (((T N)_j) / N_ref + a_j)^(-b_j) per validation domain j (rows of
    `transfer`), fitted to `n_runs` runs."""

    transfer: np.ndarray     # m x m, row j = validation domain, T_jj = 1
    a: np.ndarray
    b: np.ndarray
    e: np.ndarray            # E_j, the irreducible loss
    k: np.ndarray            # B_j
    ref: float               # N_ref (tokens)
    residuals: np.ndarray    # runs x m: fitted minus observed loss
    dof: int                 # per domain: runs minus its m + 3 parameters

    @property
    def rmse(self) -> np.ndarray:
        return np.sqrt(np.mean(self.residuals ** 2, axis=0))

    def losses(self, quantities: np.ndarray) -> np.ndarray:
        """Predicted per-domain losses for token quantities (rows x m)."""
        u = np.atleast_2d(np.asarray(quantities, dtype=float)) / self.ref @ self.transfer.T + self.a
        return self.e + self.k * u ** (-self.b)

    def objective(self, quantities: np.ndarray, metric: str, eval_weights: np.ndarray) -> np.ndarray:
        losses = self.losses(quantities)
        return (np.exp(losses) if metric == "mean-ppl" else losses) @ eval_weights


def _fit_domain(j: int, x: np.ndarray, y: np.ndarray, warm: np.ndarray | None) -> np.ndarray:
    """theta = [t_ji (i != j), a_j, b_j, E_j, log B_j] of domain j, x in units of N_ref."""
    n, m = x.shape
    others = [i for i in range(m) if i != j]
    xo, xj = x[:, others], x[:, j]

    def parts(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = xj + xo @ theta[:m - 1] + theta[m - 1]
        return u, np.exp(theta[m + 2] - theta[m] * np.log(u))

    def resid(theta: np.ndarray) -> np.ndarray:
        return theta[m + 1] + parts(theta)[1] - y

    def jac(theta: np.ndarray) -> np.ndarray:
        u, p = parts(theta)
        d_u = -theta[m] * p / u
        return np.column_stack([d_u[:, None] * xo, d_u, -p * np.log(u), np.ones(n), p])

    lo = np.concatenate([np.zeros(m - 1), [_A_MIN, _B_MIN, 0.0, -_LOGK]])
    hi = np.concatenate([np.full(m - 1, _T_MAX), [_A_MAX, _B_MAX, max(float(y.min()) * (1 - 1e-9), 1e-12), _LOGK]])

    def solve(theta0: np.ndarray, tol: float, nfev: int) -> tuple[np.ndarray, float]:
        r = least_squares(resid, np.clip(theta0, lo, hi), jac=jac, bounds=(lo, hi), method="trf",
                          x_scale="jac", xtol=tol, ftol=tol, gtol=tol, max_nfev=nfev)
        return r.x, float(2.0 * r.cost)

    if warm is not None:
        return solve(warm, 1e-8, 60)[0]
    scale = float(np.sum((y - y.mean()) ** 2)) + 1e-300
    best: tuple[np.ndarray, float] | None = None
    for t0, a0, b0, e0 in _STARTS:
        e_start = e0 * float(y.min())
        u0 = xj + xo.sum(axis=1) * t0 + a0
        logk = float(np.log(max(float(np.mean(y)) - e_start, 1e-6)) + b0 * np.mean(np.log(u0)))
        cand = solve(np.concatenate([np.full(m - 1, t0), [a0, b0, e_start, logk]]), 1e-10, 200)
        if best is None or cand[1] < best[1] - _TIE * scale:  # ties: the earliest start
            best = cand
    assert best is not None
    return solve(best[0], 1e-14, 2000)[0]


def fit_budget_transfer(quantities: np.ndarray, losses: np.ndarray, *, ref: float | None = None,
                        warm: BudgetTransferLaw | None = None,
                        domains: Sequence[str] | None = None,
                        solve_all: SolveAll = solve_each) -> BudgetTransferLaw:
    """Fit the law to runs' token quantities and final per-domain losses (both runs x m, the same
    domain order), runs of several budgets together. `ref`: the token unit (default: the median
    run's total over m). `warm`: refit from that law's parameters alone (a bootstrap redraw).
    Each domain's law is fitted on its own (its start grid, then a polish); `solve_all(fit, [0..m-1])`
    runs those fits (laws/noise.py: in order, or in parallel with the same results)."""
    q = np.asarray(quantities, dtype=float)
    y = np.asarray(losses, dtype=float)
    n, m = q.shape
    names = list(domains) if domains is not None else [f"#{i}" for i in range(m)]
    if y.shape != (n, m):
        raise BadInput(f"per-domain losses of shape {y.shape} for {n} runs x {m} domains", None,
                       "give one loss per training domain and run")
    if not (np.isfinite(q).all() and np.isfinite(y).all()) or (q < 0).any() or (y <= 0).any():
        raise BadInput("the budget transfer law needs finite token quantities >= 0 and positive "
                       "losses", None, "drop failed runs")
    if n < m + 4:
        raise BadInput(f"{n} runs for the {m + 3} parameters of each domain's law", None,
                       "run DDO's design at two or more budgets")
    for i in range(m):
        if len(np.unique(np.round(q[:, i], 6))) < 3:
            raise BadInput(f"domain `{names[i]}` has fewer than 3 distinct token quantities", None,
                           "run DDO's design (a down and an up run of every domain)")
    unit = float(ref) if ref else float(np.median(q.sum(axis=1))) / m
    x = q / unit
    theta = [None if warm is None else np.concatenate(
        [warm.transfer[j, [i for i in range(m) if i != j]],
         [warm.a[j], warm.b[j], warm.e[j], np.log(warm.k[j])]]) for j in range(m)]

    def fit(j: int) -> np.ndarray:
        return _fit_domain(int(j), x, y[:, int(j)], theta[int(j)])

    fitted = solve_all(fit, list(range(m)))
    if any(t is None for t in fitted):  # a solver's ValueError, raised as fitting in order does
        raise ValueError(f"the budget transfer law of domain `{names[fitted.index(None)]}` could not be fitted")
    transfer, a, b, e, k = np.eye(m), np.zeros(m), np.zeros(m), np.zeros(m), np.zeros(m)
    for j, t in enumerate(fitted):
        transfer[j, [i for i in range(m) if i != j]] = t[:m - 1]
        a[j], b[j], e[j], k[j] = t[m - 1], t[m], t[m + 1], np.exp(t[m + 2])
    law = BudgetTransferLaw(transfer=transfer, a=a, b=b, e=e, k=k, ref=unit,
                            residuals=np.zeros_like(y), dof=n - (m + 3))
    return BudgetTransferLaw(**{**law.__dict__, "residuals": law.losses(q) - y})


def budget_transfer_optimum(law: BudgetTransferLaw, tokens: float, *, metric: str = "mean-loss",
                            eval_weights: np.ndarray | None = None, caps: np.ndarray | None = None,
                            starts: Sequence[np.ndarray] = ()) -> np.ndarray:
    """The weights w minimising the law's objective at `tokens` (quantities w x tokens) subject to
    sum w = 1, 0 <= w_i <= caps_i (SLSQP from the uniform mixture and each of `starts`; the lowest
    objective wins, ties to the first)."""
    if metric not in OBJECTIVES:
        raise BadInput(f"the budget transfer law cannot express metric `{metric}`", None,
                       f"use {' or '.join(OBJECTIVES)}")
    m = len(law.a)
    ev = np.full(m, 1.0 / m) if eval_weights is None else np.asarray(eval_weights, float) / np.sum(eval_weights)
    upper = np.ones(m) if caps is None else np.minimum(1.0, np.asarray(caps, dtype=float))
    if upper.sum() < 1.0 - 1e-12:
        raise BadInput("the domains' data caps sum to less than the target budget", None,
                       "raise the maximum epochs or give more data")
    scale = tokens / law.ref

    def fun(w: np.ndarray) -> tuple[float, np.ndarray]:
        u = scale * (law.transfer @ w) + law.a
        loss = law.e + law.k * u ** (-law.b)
        per = np.exp(loss) if metric == "mean-ppl" else loss
        outer = ev * (per if metric == "mean-ppl" else 1.0)  # d objective / d L_j
        value = float(per @ ev)
        d_loss = -law.b * law.k * u ** (-law.b - 1.0) * scale
        return value, (outer * d_loss) @ law.transfer

    best_w, best_f = None, np.inf
    for w0 in [np.full(m, 1.0 / m), *starts]:
        w0 = np.clip(np.asarray(w0, dtype=float), 0.0, upper)
        w0 = w0 / w0.sum() if w0.sum() > 0 else np.full(m, 1.0 / m)
        r = minimize(fun, w0, jac=True, method="SLSQP", bounds=list(zip(np.zeros(m), upper)),
                     constraints=[{"type": "eq", "fun": lambda w: float(w.sum()) - 1.0,
                                   "jac": lambda w: np.ones(m)}],
                     options={"ftol": 1e-14, "maxiter": 500})
        w = np.clip(r.x, 0.0, upper)
        w = w / w.sum()
        f = fun(w)[0]
        if f < best_f * (1.0 - 1e-12):
            best_w, best_f = w, f
    assert best_w is not None
    return best_w
