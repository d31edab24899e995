"""DDO with cross-domain transfer: a per-domain surrogate fitted to every run's per-domain losses.

AutoScale's DDO surrogate (Kang et al. 2024, arXiv 2407.20177; `autoscale_ray.laws.ddo`) is
additive in the domains, y(x) = sum_i (x_i + a_i)^(-b_i) + C, and is fitted to the aggregate
objective only. Real domains transfer: tokens of one domain lower the loss of others (the premise
of per-domain data-mixing laws, Ye et al. 2024, arXiv 2403.16952), which an additive surrogate
cannot see. Here each validation domain j gets its
own law in an effective token count that every training domain contributes to:

    L_j(x) = E_j + B_j (s_j(x) + a_j)^(-b_j),   s_j(x) = x_j + sum_{i != j} t_ji x_i,
    t_ji >= 0, b_j > 0, E_j >= 0,

with x_i = N_i / N_i(base) as in DDO: the Chinchilla-style per-domain law in the effective tokens
sum_i T_ji N_i (T_jj = 1), a_j the "saw none of it" offset. It is fitted in units of the base run's
loss, l_j = L_j / L_j(base), where the base point fixes the scale B_j:

    l_j(x) = c_j + (1 - c_j) ((s_j(x) + a_j) / (s_j(1) + a_j))^(-b_j),   0 <= c_j < 1,

so each domain has m + 2 free parameters (m - 1 transfers, a_j, b_j, c_j) and its own direction
has exactly the 3 the paper's three points per domain identify. With t = 0 it is the paper's
per-domain form f_j(x_j) = (x_j + a_j)^(-b_j) + c_j up to the positive factor the base
normalisation fixes (the paper's form, written in multipliers, has that factor pinned to 1; here
l_j(base) = 1 pins it instead, so a law E + B N^(-g) in raw tokens is represented exactly). The
transfer matrix generalises the paper's additive surrogate to an affine map of the multipliers,
in the spirit of Ye et al.'s cross-domain terms (their law is exponential in the shares). Each domain's parameters are fitted by bounded least
squares (scipy.optimize.least_squares, trust-region reflective) over all runs, from a fixed grid
of 24 starts; the lowest SSE wins and a tie (within 1e-9 of the data's spread) goes to the earliest
start, so the fit is deterministic. Identifiability: in the fixed-others design each domain j
sees its own 3 points plus 2 per other domain (2m + 1 points for m + 2 parameters): T is
identified wherever it is non-zero. In the fixed-total design every run lies on the budget plane
w0 . x = 1, so each row of T is identified only up to adding a multiple of w0 (a_j and the base
scale absorb it): the law is identified on the plane, and so is the optimum, but T itself is not.

The objective is a known function of the predicted per-domain losses L_j = L_j(base) l_j(x):
`mean-loss` sum_j e_j L_j or `mean-ppl` sum_j e_j exp(L_j) (e the eval mixture; uniform by
default). Each l_j is convex (a convex decreasing power of an affine function), so both
objectives are convex in x, and the optimum under the budget sum_i w0_i x_i = 1, x_i >= lower is
found by SLSQP (deterministic starts: the base mixture and the additive optimum).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import least_squares, minimize

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.ddo import DDODesign, find_design

OBJECTIVES = ("mean-loss", "mean-ppl")
_B_MAX = 20.0           # as in laws/ddo.py: keeps (s + a)^(-b) finite near the pole
_A_MAX = 1e3
_T_MAX = 1e2            # a domain's tokens worth at most 100 of another's
_POLE_GAP = 1e-2        # a_j >= -(1 - _POLE_GAP) min(x_j, lower): s_j + a_j > 0 wherever used
_C_MAX = 1.0 - 1e-9     # c_j < 1: the loss falls with the domain's effective tokens
_STARTS = [(t0, a0, b0, c0) for t0 in (0.0, 0.3) for a0 in (0.0, 1.0, 4.0) for b0 in (0.2, 1.0)
           for c0 in (0.0, 0.5)]
_TIE = 1e-9             # SSEs within this fraction of the data's spread are a tie (first start wins)


# --------------------------------------------------------------------------- the fit
@dataclass(frozen=True)
class TransferFit:
    """Per-domain laws l_j(x) = c_j + (1 - c_j) ((T x + a)_j / (T 1 + a)_j)^(-b_j), T_jj = 1,
    and the objective they feed."""

    transfer: np.ndarray             # m x m: row j = validation domain, column i = training domain
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    base_losses: np.ndarray          # L_j(base): the unit of l_j
    metric: str                      # "mean-loss" or "mean-ppl"
    eval_weights: np.ndarray         # e_j, summing to 1
    residuals: np.ndarray            # runs x m: fitted minus observed l_j
    dof: int                         # per domain: runs minus its m + 2 parameters

    @property
    def rmse(self) -> np.ndarray:
        """Per-domain RMSE of l_j (relative loss units)."""
        return np.sqrt(np.mean(self.residuals ** 2, axis=0))

    def response(self, x: np.ndarray) -> np.ndarray:
        """l_j(x) = c_j + (1 - c_j) ((s_j(x) + a_j) / (s_j(base) + a_j))^(-b_j), rows x domains."""
        u = np.asarray(x, dtype=float) @ self.transfer.T + self.a
        return self.c + (1.0 - self.c) * (u / self._u_base) ** (-self.b)

    @property
    def _u_base(self) -> np.ndarray:
        return self.transfer.sum(axis=1) + self.a   # s_j(base) + a_j: x = 1 at the base

    def losses(self, x: np.ndarray) -> np.ndarray:
        """Predicted per-domain losses L_j(x) = L_j(base) l_j(x)."""
        return self.base_losses * self.response(x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The objective: sum_j e_j L_j(x) (mean-loss) or sum_j e_j exp(L_j(x)) (mean-ppl)."""
        losses = self.losses(x)
        return (np.exp(losses) if self.metric == "mean-ppl" else losses) @ self.eval_weights

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """d predict / d x for one vector x."""
        x = np.asarray(x, dtype=float)
        u = self.transfer @ x + self.a
        dl = -(1.0 - self.c) * self.b * (u / self._u_base) ** (-self.b) / u * self.base_losses
        outer = self.eval_weights * (np.exp(self.losses(x)) if self.metric == "mean-ppl" else 1.0)
        return (outer * dl) @ self.transfer


def _distinct(values: np.ndarray, rtol: float) -> int:
    """How many values differ from each other by more than rtol (relative), counted in sorted order."""
    v = np.sort(values)
    return 1 + int(np.sum(np.diff(v) > rtol * np.abs(v[1:])))


def _fit_domain(j: int, x: np.ndarray, y: np.ndarray, lower: float,
                warm: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """(theta, SSE) of domain j's law, theta = [t_ji for i != j, a_j, b_j, c_j]; from `warm`
    alone when given, else from every start in _STARTS."""
    n, m = x.shape
    others = [i for i in range(m) if i != j]
    xo = x[:, others]

    def parts(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(u = s_j + a_j per run, r = (u / U)^(-b_j), U = s_j(base) + a_j)."""
        t, a, b = theta[:m - 1], theta[m - 1], theta[m]
        u = x[:, j] + xo @ t + a
        big_u = 1.0 + t.sum() + a
        return u, np.exp(-b * (np.log(u) - np.log(big_u))), big_u

    def resid(theta: np.ndarray) -> np.ndarray:
        c = theta[m + 1]
        return c + (1.0 - c) * parts(theta)[1] - y

    def jac(theta: np.ndarray) -> np.ndarray:
        b, c = theta[m], theta[m + 1]
        u, r, big_u = parts(theta)
        k = -(1.0 - c) * r * b
        return np.column_stack([k[:, None] * (xo / u[:, None] - 1.0 / big_u), k * (1.0 / u - 1.0 / big_u),
                                -(1.0 - c) * r * (np.log(u) - np.log(big_u)), 1.0 - r])

    a_lo = -(1.0 - _POLE_GAP) * min(float(x[:, j].min()), lower)
    lo = np.concatenate([np.zeros(m - 1), [a_lo, 1e-8, 0.0]])
    hi = np.concatenate([np.full(m - 1, _T_MAX), [_A_MAX, _B_MAX, _C_MAX]])
    scale = float(np.sum((y - y.mean()) ** 2)) + 1e-300

    def solve(theta0: np.ndarray, tol: float, nfev: int) -> tuple[np.ndarray, float]:
        r = least_squares(resid, np.clip(theta0, lo, hi), jac=jac, bounds=(lo, hi), method="trf",
                          x_scale="jac", xtol=tol, ftol=tol, gtol=tol, max_nfev=nfev)
        return r.x, float(2.0 * r.cost)

    if warm is not None:
        return solve(warm, 1e-8, 40)  # a bootstrap refit: near the optimum, a few steps do
    best: tuple[np.ndarray, float] | None = None
    for t0, a0, b0, c0 in _STARTS:
        cand = solve(np.concatenate([np.full(m - 1, t0), [max(a0, a_lo), b0, c0]]), 1e-10, 100)
        # documented tie rule: a later start replaces the best only if clearly better, so equally
        # good fits resolve to the earliest start in _STARTS's fixed order
        if best is None or cand[1] < best[1] - _TIE * scale:
            best = cand
    assert best is not None
    return solve(best[0], 1e-15, 2000)


def fit_transfer(multipliers: np.ndarray, ratios: np.ndarray, base_losses: np.ndarray, *,
                 metric: str = "mean-loss", eval_weights: np.ndarray | None = None,
                 lower: float = 0.2, rtol: float = 1e-2,
                 domains: Sequence[str] | None = None,
                 warm: TransferFit | None = None) -> TransferFit:
    """Fit l_j(x) = c_j + (1 - c_j) ((s_j(x) + a_j) / (s_j(1) + a_j))^(-b_j),
    s_j(x) = x_j + sum_{i != j} t_ji x_i, per domain j over all runs.

    `ratios` are the observed L_j / L_j(base) (runs x m). Bounded least squares per domain
    (t_ji in [0, 100], a_j > -min(x_j, lower), b_j in (0, 20], c_j in [0, 1)) from 24 fixed starts;
    the lowest SSE wins, ties (within 1e-9 of the spread) go to the earliest start. Needs 3
    distinct multipliers of every domain and m + 2 runs (the paper's 2m + 1 runs are enough).
    `warm`: refit from that fit's parameters alone (a bootstrap refit near the full-data optimum).
    """
    x = np.asarray(multipliers, dtype=float)
    y = np.asarray(ratios, dtype=float)
    n, m = x.shape
    names = list(domains) if domains is not None else [f"#{i}" for i in range(m)]
    if metric not in OBJECTIVES:
        raise BadInput(f"the transfer surrogate cannot express metric `{metric}`", None,
                       f"use {' or '.join(OBJECTIVES)}, or --surrogate paper for a custom metric")
    if y.shape != (n, m):
        raise BadInput(f"per-domain losses of shape {y.shape} for {n} runs x {m} domains", None,
                       "give one `loss.<domain>` column per training domain")
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or (x <= 0).any() or (y <= 0).any():
        raise BadInput("the transfer surrogate needs finite positive per-domain losses and every "
                       "run to train on every domain", None,
                       "drop failed runs and runs that leave a domain out (use a small factor)")
    for i in range(m):
        if _distinct(x[:, i], rtol) < 3:
            raise BadInput(f"domain `{names[i]}` has {_distinct(x[:, i], rtol)} distinct token "
                           "quantities; DDO needs 3", None,
                           "run the base, a down and an up perturbation of every domain")
    if n < m + 2:
        raise BadInput(f"{n} runs for the {m + 2} parameters of each domain's law", None,
                       "run the base plus a down and an up perturbation of every domain")
    e = np.full(m, 1.0 / m) if eval_weights is None else np.asarray(eval_weights, dtype=float)
    if e.shape != (m,) or not np.isfinite(e).all() or (e < 0).any() or e.sum() <= 0:
        raise BadInput("eval mixture weights must be m finite numbers >= 0, not all zero", None)
    transfer, a, b, c = np.eye(m), np.zeros(m), np.zeros(m), np.zeros(m)
    for j in range(m):
        others = [i for i in range(m) if i != j]
        start = None if warm is None else np.concatenate(
            [warm.transfer[j, others], [warm.a[j], warm.b[j], warm.c[j]]])
        theta, _ = _fit_domain(j, x, y[:, j], lower, start)
        transfer[j, [i for i in range(m) if i != j]] = theta[:m - 1]
        a[j], b[j], c[j] = theta[m - 1:]
    fit = TransferFit(transfer=transfer, a=a, b=b, c=c,
                      base_losses=np.asarray(base_losses, dtype=float), metric=metric,
                      eval_weights=e / e.sum(), residuals=np.zeros_like(y), dof=n - (m + 2))
    residuals = fit.response(x) - y
    return TransferFit(**{**fit.__dict__, "residuals": residuals})


# --------------------------------------------------------------------------- the optimum
@dataclass(frozen=True)
class TransferOptimum:
    multipliers: np.ndarray          # x_i*
    weights: np.ndarray              # w_i = w0_i x_i*, summing to 1
    at_bound: tuple[int, ...]        # domains held at the lower bound
    objective: float                 # predicted objective at x* (the metric's units)
    losses: np.ndarray               # predicted per-domain losses at x*


def additive_part(fit: TransferFit) -> TransferFit:
    """The fit with every other domain frozen at its base quantity: t -> 0, a_j += sum_{i!=j} t_ji
    (each domain's own response at the base, which is what an additive surrogate sees)."""
    m = len(fit.a)
    return TransferFit(**{**fit.__dict__, "transfer": np.eye(m),
                          "a": fit.a + fit.transfer.sum(axis=1) - 1.0})


def _slsqp(fit: TransferFit, w0: np.ndarray, lower: float, x0: np.ndarray) -> np.ndarray:
    bounds = [(lower, 1.0 / w) for w in w0]
    r = minimize(lambda v: float(fit.predict(v)), x0, jac=fit.gradient, method="SLSQP",
                 bounds=bounds, constraints=[{"type": "eq", "fun": lambda v: float(w0 @ v) - 1.0,
                                               "jac": lambda v: w0}],
                 options={"ftol": 1e-15, "maxiter": 1000})
    x = np.clip(r.x, lower, None)
    # exact budget: the free domains absorb SLSQP's last ~1e-12 of it; near-bound ones snap to it
    bound = x <= lower * (1.0 + 1e-7)
    x[bound] = lower
    free = ~bound
    if free.any():
        x[free] *= (1.0 - float(w0[bound] @ x[bound])) / float(w0[free] @ x[free])
    return x


def optimize_transfer(fit: TransferFit, base_weights: np.ndarray, *,
                      lower: float = 0.2) -> TransferOptimum:
    """Minimise the objective s.t. sum_i w0_i x_i = 1, lower <= x_i <= 1 / w0_i (SLSQP).

    Convex, so every start reaches the same optimum up to tolerance; two fixed starts (the base
    x = 1, then the optimum of `additive_part`) guard against a stalled solve, the lower objective
    wins and a tie (within 1e-12 relative) goes to the first.
    """
    w0 = np.asarray(base_weights, dtype=float)
    w0 = w0 / w0.sum()
    if not 0.0 < lower <= 1.0:
        raise BadInput(f"lower bound {lower} on the multipliers", None,
                       "give --min-multiplier in (0, 1]: the base mixture itself must be feasible")
    ones = np.ones(len(w0))
    if lower == 1.0:
        candidates = [ones]
    else:
        additive = _slsqp(additive_part(fit), w0, lower, ones)
        candidates = [_slsqp(fit, w0, lower, ones), _slsqp(fit, w0, lower, additive)]
    x = candidates[0]
    for cand in candidates[1:]:
        if float(fit.predict(cand)) < float(fit.predict(x)) * (1.0 - 1e-12):
            x = cand
    weights = w0 * x
    return TransferOptimum(multipliers=x, weights=weights / weights.sum(),
                           at_bound=tuple(int(i) for i in np.flatnonzero(x <= lower)),
                           objective=float(fit.predict(x)), losses=fit.losses(x))


# --------------------------------------------------------------------------- all of it
@dataclass(frozen=True)
class TransferResult:
    design: DDODesign
    fit: TransferFit
    optimum: TransferOptimum
    base_quantities: np.ndarray      # N_i(base)
    base_objective: float            # the objective of the base point's mean per-domain losses


def solve_ddo_transfer(quantities: np.ndarray, losses: np.ndarray, *, metric: str = "mean-loss",
                       eval_weights: np.ndarray | None = None, base: int | None = None,
                       design: str = "auto", factors: Sequence[float] = (0.2, 3.0),
                       lower: float = 0.2, rtol: float = 1e-2, names: Sequence[str] | None = None,
                       domains: Sequence[str] | None = None,
                       extra_quantities: np.ndarray | None = None,
                       extra_losses: np.ndarray | None = None,
                       warm: TransferFit | None = None) -> TransferResult:
    """DDO with transfer from per-run token quantities and per-run, per-domain final losses
    (both runs x domains, the same domain order). The design is found as in `laws.ddo`, on the
    first runs alone; `extra_*` runs (refinement rounds) enter the fit relative to its base.
    `warm`: refit from that fit (`fit_transfer`)."""
    q = np.asarray(quantities, dtype=float)
    ell = np.asarray(losses, dtype=float)
    d = find_design(q, base=base, design=design, factors=factors, rtol=rtol, names=names)
    x = d.multipliers
    if extra_quantities is not None and len(extra_quantities):
        x = np.vstack([x, np.asarray(extra_quantities, dtype=float) / q[d.base]])
        ell = np.vstack([ell, np.asarray(extra_losses, dtype=float)])
    base_losses = ell[list(d.base_runs)].mean(axis=0)
    if not (np.isfinite(base_losses).all() and (base_losses > 0).all()):
        raise BadInput(f"the base run's per-domain losses are {base_losses.tolist()}", None,
                       "the transfer surrogate normalises each domain by its base loss; give "
                       "positive losses")
    fit = fit_transfer(x, ell / base_losses, base_losses, metric=metric,
                       eval_weights=eval_weights, lower=lower, rtol=rtol, domains=domains,
                       warm=warm)
    base_q = q[d.base]
    opt = optimize_transfer(fit, base_q / base_q.sum(), lower=lower)
    e = fit.eval_weights
    base_obj = float((np.exp(base_losses) if metric == "mean-ppl" else base_losses) @ e)
    return TransferResult(design=d, fit=fit, optimum=opt, base_quantities=base_q,
                          base_objective=base_obj)
