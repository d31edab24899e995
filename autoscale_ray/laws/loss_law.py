"""The loss scaling law L(N, D) = E + A / N^alpha + B / D^beta, and L(D) = E + B / D^beta.

Fitted as in Hoffmann et al. 2022 (Chinchilla, approach 3) and Epoch AI's replication
(Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt"): minimise the SUM over points of
Huber_delta(log L_i - LSE(a - alpha log N_i, b - beta log D_i, e)), delta = 1e-3, with a = log A,
b = log B, e = log E, by L-BFGS-B from Epoch's grid of 4,500 starts, best kept. Following Choshen,
Zhang & Andreas 2024 ("A Hitchhiker's Guide to Scaling Law Estimation"), intermediate checkpoints
are data points, the earliest ones are dropped (`min_tokens_mask`), and a fit is judged by its
absolute relative error (ARE) on the largest model's late checkpoints (`largest_model_holdout`,
`absolute_relative_error`). Intervals come from the bootstrap over points (`bootstrap_loss_law`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import ContextManager, Mapping

import numpy as np
from numpy.typing import ArrayLike

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.multistart import (HuberLSEProblem, batch_objective, epoch_grid,
                                           multistart_minimize, polish)

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # only the speed depends on it
    threadpool_limits = None

FORM_ND = "L(N,D)"
FORM_D = "L(D)"
HUBER_DELTA = 1e-3
LATE_FRACTION = 0.7  # "the last 30% of its training" (Hitchhiker's Guide)


@dataclass(frozen=True)
class LossLaw:
    """A fitted L(N, D) (or L(D), with A and alpha None) and, after `bootstrap_loss_law`, its
    bootstrap standard errors and percentile intervals (keys E, A, B, alpha, beta)."""

    form: str
    E: float
    B: float
    beta: float
    A: float | None
    alpha: float | None
    objective: float          # summed Huber loss at the optimum
    n_points: int
    delta: float = HUBER_DELTA
    n_starts: int = 0
    stderr: Mapping[str, float] | None = None
    interval: Mapping[str, tuple[float, float]] | None = None
    level: float | None = None
    n_bootstrap: int = 0

    def predict(self, N: ArrayLike | None, D: ArrayLike) -> np.ndarray:
        """L_hat = E + A / N^alpha + B / D^beta (the N term only for L(N, D))."""
        D = np.asarray(D, dtype=float)
        out = self.E + self.B * D ** -self.beta
        if self.form == FORM_ND:
            if N is None:
                raise BadInput("predicting an L(N, D) law needs model sizes N", None,
                               "pass the parameter counts")
            out = out + self.A * np.asarray(N, dtype=float) ** -self.alpha
        return out

    @property
    def names(self) -> tuple[str, ...]:
        return ("E", "A", "B", "alpha", "beta") if self.form == FORM_ND else ("E", "B", "beta")

    @property
    def theta(self) -> np.ndarray:
        """The optimiser's parameters: (a, b, e, alpha, beta) or (b, e, beta)."""
        if self.form == FORM_ND:
            return np.array([np.log(self.A), np.log(self.B), np.log(self.E), self.alpha, self.beta])
        return np.array([np.log(self.B), np.log(self.E), self.beta])

    def params(self) -> dict[str, float | None]:
        return {"E": self.E, "A": self.A, "B": self.B, "alpha": self.alpha, "beta": self.beta}


def _one_blas_thread() -> ContextManager:
    """scipy >= 1.15's L-BFGS-B calls BLAS on 5-vectors, and multithreaded OpenBLAS makes those
    calls 10-100x slower on a busy machine (scipy/scipy#22438). Entering the limit costs ~10 ms,
    so it wraps whole fits, not single optimiser calls."""
    return threadpool_limits(1, user_api="blas") if threadpool_limits else contextlib.nullcontext()


def _law_from_theta(theta: np.ndarray, form: str, **kw) -> LossLaw:
    if form == FORM_ND:
        a, b, e, alpha, beta = (float(v) for v in theta)
        return LossLaw(form, E=float(np.exp(e)), A=float(np.exp(a)), B=float(np.exp(b)),
                       alpha=alpha, beta=beta, **kw)
    b, e, beta = (float(v) for v in theta)
    return LossLaw(form, E=float(np.exp(e)), A=None, B=float(np.exp(b)), alpha=None, beta=beta, **kw)


def _arrays(loss: ArrayLike, tokens: ArrayLike, params: ArrayLike | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    L = np.asarray(loss, dtype=float).ravel()
    D = np.asarray(tokens, dtype=float).ravel()
    N = None if params is None else np.asarray(params, dtype=float).ravel()
    for name, v in (("loss", L), ("tokens", D), ("params", N)):
        if v is None:
            continue
        if v.shape != L.shape:
            raise BadInput(f"`{name}` has {v.size} values but `loss` has {L.size}", name,
                           "give one value per data point")
        if not np.all(np.isfinite(v)) or np.any(v <= 0):
            i = int(np.argmax(~np.isfinite(v) | (v <= 0)))
            raise BadInput(f"`{name}` must be finite and > 0 to take its log (point {i + 1} is "
                           f"{v[i]:g})", name, "drop that point (e.g. the step-0 evaluation)")
    return L, D, N


def _problem(L: np.ndarray, D: np.ndarray, N: np.ndarray | None, delta: float,
             weights: np.ndarray | None = None) -> HuberLSEProblem:
    x = np.log(D)[:, None] if N is None else np.column_stack([np.log(N), np.log(D)])
    return HuberLSEProblem(x=x, y=np.log(L), delta=delta, weights=weights)


def fit_loss_law(loss: ArrayLike, tokens: ArrayLike, params: ArrayLike | None = None, *,
                 delta: float = HUBER_DELTA, starts: np.ndarray | None = None) -> LossLaw:
    """Fit L(N, D) = E + A / N^alpha + B / D^beta (or L(D) = E + B / D^beta when `params` is None).

    Minimises sum_i Huber_delta(log L_i - LSE(a - alpha log N_i, b - beta log D_i, e)) from Epoch's
    grid of starts (`multistart.epoch_grid`; 4,500 for L(N, D), 150 for L(D)) and keeps the best,
    as in Hoffmann et al. 2022 and Besiroglu et al. 2024. L(N, D) needs >= 2 distinct model sizes;
    either form needs more points than parameters."""
    L, D, N = _arrays(loss, tokens, params)
    form = FORM_D if N is None else FORM_ND
    n_params = 3 if N is None else 5
    if L.size < n_params + 1:
        raise BadInput(f"{form} has {n_params} parameters but only {L.size} data points", "runs",
                       f"give at least {n_params + 1} evaluations (lower --min-tokens?)")
    if N is not None and np.unique(N).size < 2:
        raise BadInput("L(N, D) needs at least 2 distinct model sizes", "params",
                       "add runs of another size, or fit L(D) without `params`")
    problem = _problem(L, D, N, delta)
    grid = epoch_grid(problem.n_terms) if starts is None else np.atleast_2d(starts)
    with _one_blas_thread():
        best = multistart_minimize(problem, grid)
    return _law_from_theta(best.x, form, objective=best.fun, n_points=int(L.size), delta=delta,
                           n_starts=len(grid))


def bootstrap_loss_law(law: LossLaw, loss: ArrayLike, tokens: ArrayLike,
                       params: ArrayLike | None = None, *, replicates: int = 200, seed: int = 0,
                       level: float = 0.95, n_grid_starts: int = 16) -> LossLaw:
    """Bootstrap standard errors and percentile intervals of a fitted law (Epoch AI 2024 resampled
    the 240 Chinchilla points with replacement and refitted).

    Each replicate resamples the points with replacement (as multinomial weights on the
    objective, which is the same sum) and refits from the full-data optimum (warm start) plus the
    `n_grid_starts` grid starts with the lowest full-data objective. SE = sample standard
    deviation of the replicates; interval = their (1 - level)/2 and (1 + level)/2 quantiles."""
    if replicates < 2:
        raise BadInput(f"bootstrap needs >= 2 replicates, got {replicates}", "--bootstrap",
                       "use 0 to skip it or e.g. 200")
    L, D, N = _arrays(loss, tokens, params)
    if (N is None) != (law.form == FORM_D):
        raise BadInput(f"the law is {law.form} but params were "
                       f"{'not ' if N is None else ''}given", "params",
                       "pass the same data the law was fitted on")
    full = _problem(L, D, N, law.delta)
    grid = epoch_grid(full.n_terms)
    screened = grid[np.argsort(batch_objective(grid, full), kind="stable")[:n_grid_starts]]
    rng = np.random.default_rng(seed)
    draws = np.empty((replicates, len(law.theta)))
    with _one_blas_thread():
        for r in range(replicates):
            w = rng.multinomial(L.size, np.full(L.size, 1.0 / L.size)).astype(float)
            res = multistart_minimize(_problem(L, D, N, law.delta, weights=w), screened,
                                      screen=1.0, rounds=((10, 0.25), (30, 0.0)), n_polish=1,
                                      extra=law.theta)
            draws[r] = res.x
    natural = _natural(draws, law.form)
    lo, hi = np.quantile(natural, [(1 - level) / 2, (1 + level) / 2], axis=0)
    se = natural.std(axis=0, ddof=1)
    names = law.names
    return replace(law, stderr={k: float(v) for k, v in zip(names, se)},
                   interval={k: (float(a), float(b)) for k, a, b in zip(names, lo, hi)},
                   level=level, n_bootstrap=replicates)


def bootstrap_predictions(law: LossLaw, loss: ArrayLike, tokens: ArrayLike,
                          groups: ArrayLike, at_tokens: ArrayLike, *, seed: int = 0) -> np.ndarray:
    """L(D) predictions of a bootstrap over groups of points (a run's checkpoints are one group,
    since they share its noise): replicate r resamples the groups with replacement, refits by one
    L-BFGS-B polish from the full-data optimum (a resample moves the 3-parameter optimum little;
    the multistart of `bootstrap_loss_law` cost 60x more for the same intervals) and predicts at
    `at_tokens[r]` (one point per replicate, so a caller can pass each replicate its own target).
    Returns one prediction per replicate."""
    L, D, _ = _arrays(loss, tokens, None)
    g = np.asarray(groups).ravel()
    at = np.asarray(at_tokens, dtype=float).ravel()
    labels, index = np.unique(g, return_inverse=True)
    rng = np.random.default_rng(seed)
    out = np.empty(len(at))
    with _one_blas_thread():
        for r, target in enumerate(at):
            counts = rng.multinomial(len(labels), np.full(len(labels), 1.0 / len(labels)))
            res = polish(_problem(L, D, None, law.delta, weights=counts[index].astype(float)), law.theta)
            theta = res.x if np.isfinite(res.fun) else law.theta
            out[r] = float(_law_from_theta(theta, FORM_D, objective=0.0, n_points=0).predict(None, target))
    return out


def _natural(theta: np.ndarray, form: str) -> np.ndarray:
    """Optimiser parameters -> (E, A, B, alpha, beta) or (E, B, beta), per row."""
    if form == FORM_ND:
        a, b, e, alpha, beta = theta.T
        return np.column_stack([np.exp(e), np.exp(a), np.exp(b), alpha, beta])
    b, e, beta = theta.T
    return np.column_stack([np.exp(e), np.exp(b), beta])


def absolute_relative_error(law: LossLaw, loss: ArrayLike, tokens: ArrayLike,
                            params: ArrayLike | None = None) -> float:
    """ARE = mean_i |L_i - L_hat_i| / L_i (Choshen et al. 2024), a fraction."""
    L, D, N = _arrays(loss, tokens, params)
    if L.size == 0:
        raise BadInput("no points to compute the ARE on", "runs", "give the held-out checkpoints")
    return float(np.mean(np.abs(L - law.predict(N, D)) / L))


def min_tokens_mask(tokens: ArrayLike, budget: ArrayLike, min_tokens: float) -> np.ndarray:
    """Which checkpoints to keep: tokens >= min_tokens when min_tokens >= 1 (an absolute count,
    the Hitchhiker's Guide drops < 10B tokens for real LLMs), else tokens >= min_tokens x the run's
    budget (a fraction of each run, for proxies)."""
    tokens = np.asarray(tokens, dtype=float)
    if not np.isfinite(min_tokens) or min_tokens < 0:
        raise BadInput(f"min-tokens must be a finite number >= 0, got {min_tokens}", "--min-tokens",
                       "give a token count (e.g. 1e9) or a fraction of each run's budget (< 1)")
    if min_tokens >= 1:
        return tokens >= min_tokens
    return tokens >= min_tokens * np.asarray(budget, dtype=float)


def largest_model_holdout(params: ArrayLike, run_ids: ArrayLike, tokens: ArrayLike,
                          late_fraction: float = LATE_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """Masks (train, evaluate) for judging a fit by extrapolation (Choshen et al. 2024): train on
    every model smaller than the largest; evaluate on the largest model's checkpoints in the last
    30% of its training (tokens >= late_fraction x that run's largest tokens)."""
    N = np.asarray(params, dtype=float)
    runs = np.asarray(run_ids).astype(str)
    D = np.asarray(tokens, dtype=float)
    largest = N == N.max()
    train = ~largest
    late = np.zeros(N.size, dtype=bool)
    for run in np.unique(runs[largest]):
        rows = largest & (runs == run)
        late |= rows & (D >= late_fraction * D[rows].max())
    return train, late
