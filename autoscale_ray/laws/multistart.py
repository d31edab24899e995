"""Multi-start minimisation of the Huber-on-log-sum-exp scaling-law objective, vectorised over starts.

The model (Hoffmann et al. 2022, "Chinchilla", appendix D.2; Besiroglu et al. 2024, Epoch AI,
"Chinchilla Scaling: A replication attempt") is

    log L_i  ~  LSE(c_1 - g_1 x_i1, ..., c_K - g_K x_iK, e),      x_ik = log N_i, log D_i, ...

i.e. L = E + sum_k C_k / X_k^g_k with c_k = log C_k, e = log E. The fit minimises the SUM over
points of Huber_delta(r_i), r_i = log L_i - LSE(...), with L-BFGS-B from a grid of starts and keeps
the best. The parameter vector is theta = (c_1..c_K, e, g_1..g_K); for K = 2 this is Epoch's
(a, b, e, alpha, beta). Optional linear features z_i (the mixture weights of a mixing law) enter
chosen terms through coefficient blocks: block b adds t_b . z_i to each term in its set S_b (the
constant term is index K), e.g. one block over the power-law terms gives
L = E + exp(t . z) sum_k C_k / X_k^g_k; theta gains the blocks at its end.

The naive procedure runs scipy's L-BFGS-B from each grid start in turn (4,500 starts for L(N, D)).
`multistart_minimize` reaches the same best optimum much faster: it evaluates objective and analytic
gradient for a whole (starts x params) array at once, runs a batched L-BFGS on all starts with
successive halving (after a few iterations keep the best fraction and continue with those), and
polishes the few distinct survivors with scipy L-BFGS-B (jac=True, tight tolerances). The
benchmark `benchmarks/law_multistart.py` checks it against the naive loop.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber

# Bound the temporary (starts x points) arrays to about this many float64 entries.
_CHUNK_ENTRIES = 1 << 21

# Epoch's grid of starts (Besiroglu et al. 2024, following Hoffmann et al. 2022).
EXPONENT_GRID = (0.0, 0.5, 1.0, 1.5, 2.0)
LOG_E_GRID = (-1.0, -0.5, 0.0, 0.5, 1.0)
LOG_COEF_GRID = (0.0, 5.0, 10.0, 15.0, 20.0, 25.0)

# Tolerances of the final polish (objective scaled to ~1): the optimum to ~1e-10 relative.
POLISH_OPTIONS = {"maxiter": 5000, "maxfun": 10000, "ftol": 1e-13, "gtol": 1e-9}


@dataclass(frozen=True)
class HuberLSEProblem:
    """Data of one fit: features `x` (n x K, logs of N, D, ...), targets `y` (n, log loss),
    optional per-point `weights` (bootstrap multiplicities), the Huber `delta`, and optional
    linear features `z` (n x P) with `z_terms`, the term indices each coefficient block enters
    (0..K-1 the power-law terms, K the constant; default one block over the power-law terms)."""

    x: np.ndarray
    y: np.ndarray
    delta: float = 1e-3
    weights: np.ndarray | None = None
    z: np.ndarray | None = None
    z_terms: tuple[tuple[int, ...], ...] | None = None

    @property
    def n_terms(self) -> int:
        return self.x.shape[1]

    @property
    def blocks(self) -> tuple[tuple[int, ...], ...]:
        if self.z is None:
            return ()
        return self.z_terms if self.z_terms is not None else (tuple(range(self.n_terms)),)

    @property
    def n_linear(self) -> int:
        return 0 if self.z is None else self.z.shape[1] * len(self.blocks)

    @property
    def n_params(self) -> int:
        return 2 * self.n_terms + 1 + self.n_linear


def epoch_grid(n_terms: int) -> np.ndarray:
    """Epoch's grid of starts, (starts x params) in the order (c_1..c_K, e, g_1..g_K).

    For K = 2 it is 5 x 5 x 5 x 6 x 6 = 4,500 starts: exponents in {0, .5, 1, 1.5, 2},
    e in {-1, -.5, 0, .5, 1}, log-coefficients in {0, 5, ..., 25}; for K = 1, 150 starts."""
    rows = [(*coefs, e, *exps)
            for exps in itertools.product(EXPONENT_GRID, repeat=n_terms)
            for e in LOG_E_GRID
            for coefs in itertools.product(LOG_COEF_GRID, repeat=n_terms)]
    return np.asarray(rows, dtype=float)


def _lse_terms(theta: np.ndarray, problem: HuberLSEProblem
               ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """For starts x points: the shift m = max_k t_k, the shifted exponentials exp(t_k - m)
    (one 2-D array per term, the constant term last) and their sum. t_k = c_k - g_k x_k, t_K = e,
    plus t_b . z for each block b of linear features whose set holds k.

    One 2-D array per term rather than a (starts x points x terms) array: numpy reduces a
    trailing axis of length 3 slowly, and element-wise ops on 2-D arrays are what it does best."""
    x, z = problem.x, problem.z
    k = x.shape[1]
    terms = [theta[:, j, None] - theta[:, k + 1 + j, None] * x[None, :, j] for j in range(k)]
    e = theta[:, k, None]
    if z is not None:
        p = z.shape[1]
        for b, members in enumerate(problem.blocks):
            lo = 2 * k + 1 + b * p
            lin = np.einsum("sp,ip->si", theta[:, lo:lo + p], z)
            for j in members:
                if j == k:
                    e = e + lin
                else:
                    terms[j] += lin
    m = np.maximum(terms[0], e)
    for t in terms[1:]:
        np.maximum(m, t, out=m)
    exps = []
    for t in terms:
        t -= m
        exps.append(np.exp(t, out=t))
    exps.append(np.exp(e - m))
    s = exps[0].copy()
    for ez in exps[1:]:
        s += ez
    return m, exps, s


def _step(n_points: int) -> int:
    return max(1, _CHUNK_ENTRIES // max(1, n_points))


def batch_objective(theta: np.ndarray, problem: HuberLSEProblem) -> np.ndarray:
    """sum_i w_i Huber_delta(log L_i - LSE_i(theta)) for each row of `theta` (starts x params)."""
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    out = np.empty(theta.shape[0])
    step = _step(problem.x.shape[0])
    for lo in range(0, theta.shape[0], step):
        m, _, s = _lse_terms(theta[lo:lo + step], problem)
        r = problem.y[None, :] - m - np.log(s)
        h = huber(problem.delta, r)
        out[lo:lo + step] = h.sum(axis=1) if problem.weights is None else np.einsum("si,i->s", h, problem.weights)
    return out


def batch_objective_grad(theta: np.ndarray, problem: HuberLSEProblem) -> tuple[np.ndarray, np.ndarray]:
    """Objective and its analytic gradient for each row of `theta` (starts x params).

    With r_i = y_i - LSE_i and softmax weights s_ik = exp(t_ik - LSE_i), dLSE/dc_k = s_ik,
    dLSE/de = s_i,K+1, dLSE/dg_k = -s_ik x_ik; Huber'(r) = psi(r) = clip(r, -delta, delta), so
    df/dtheta = -sum_i w_i psi(r_i) dLSE_i/dtheta, and Huber(r) = psi(r) (r - psi(r) / 2).
    A block b of linear features: dLSE/dt_bp = sum_{k in S_b} s_ik z_ip."""
    # einsum, not matmul: BLAS threads on these thin products cost more than they save, and
    # far more on a loaded machine.
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    k = problem.n_terms
    f = np.empty(theta.shape[0])
    grad = np.empty_like(theta)
    step = _step(problem.x.shape[0])
    for lo in range(0, theta.shape[0], step):
        sl = slice(lo, lo + step)
        m, exps, s = _lse_terms(theta[sl], problem)
        r = problem.y[None, :] - m - np.log(s)
        psi = np.clip(r, -problem.delta, problem.delta)
        r -= 0.5 * psi
        r *= psi                                     # Huber(r), in place
        if problem.weights is not None:
            f[sl] = np.einsum("si,i->s", r, problem.weights)
            psi *= problem.weights[None, :]
        else:
            f[sl] = r.sum(axis=1)
        psi /= s                                     # psi_i / sum_k exp(t_ik - m_i)
        qs = []
        for j in range(k):
            q = exps[j] * psi                        # psi_i s_ij
            grad[sl, j] = -q.sum(axis=1)
            grad[sl, k + 1 + j] = np.einsum("si,i->s", q, problem.x[:, j])
            qs.append(q)
        q_const = exps[k] * psi
        grad[sl, k] = -q_const.sum(axis=1)
        if problem.z is not None:
            qs.append(q_const)
            p = problem.z.shape[1]
            for b, members in enumerate(problem.blocks):
                q_sum = sum(qs[j] for j in members)
                lo = 2 * k + 1 + b * p
                grad[sl, lo:lo + p] = -np.einsum("si,ip->sp", q_sum, problem.z)
    return f, grad


def objective_grad(theta: np.ndarray, problem: HuberLSEProblem) -> tuple[float, np.ndarray]:
    """Single-start objective and gradient, the `fun(x) -> (f, g)` that scipy's minimize takes."""
    f, g = batch_objective_grad(theta[None, :], problem)
    return float(f[0]), g[0]


def objective_only(theta: np.ndarray, problem: HuberLSEProblem) -> float:
    return float(batch_objective(theta[None, :], problem)[0])


def batched_lbfgs(problem: HuberLSEProblem, x0: np.ndarray, iters: int, memory: int = 8,
                  gtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """`iters` iterations of L-BFGS (two-loop recursion, Armijo backtracking) run in lockstep on
    every row of `x0` (starts x params). Returns the final points and objective values.

    Rows are independent problems; one objective/gradient evaluation serves all active rows, so
    the per-start Python and scipy overhead of a loop is gone. Rows whose gradient falls below
    `gtol` or whose line search fails stop moving."""
    x = np.array(x0, dtype=float)
    n, p = x.shape
    f, g = batch_objective_grad(x, problem)
    s_hist = np.zeros((n, memory, p))
    y_hist = np.zeros((n, memory, p))
    rho = np.zeros((n, memory))
    active = np.isfinite(f) & np.all(np.isfinite(g), axis=1)
    for it in range(iters):
        idx = np.flatnonzero(active & (np.abs(g).max(axis=1) > gtol))
        if idx.size == 0:
            break
        q = g[idx].copy()
        order = [(it - 1 - j) % memory for j in range(min(it, memory))]  # newest first
        alphas = []
        for j in order:
            a = rho[idx, j] * np.einsum("sp,sp->s", s_hist[idx, j], q)
            q -= a[:, None] * y_hist[idx, j]
            alphas.append(a)
        if order:
            j = order[0]
            sy = np.einsum("sp,sp->s", s_hist[idx, j], y_hist[idx, j])
            yy = np.einsum("sp,sp->s", y_hist[idx, j], y_hist[idx, j])
            gamma = np.where((sy > 0) & (yy > 0), sy / np.where(yy > 0, yy, 1.0), 1.0)
        else:  # first step: unit-length steepest descent, like L-BFGS-B
            gamma = 1.0 / np.maximum(1.0, np.linalg.norm(q, axis=1))
        q *= gamma[:, None]
        for j, a in zip(reversed(order), reversed(alphas)):
            b = rho[idx, j] * np.einsum("sp,sp->s", y_hist[idx, j], q)
            q += (a - b)[:, None] * s_hist[idx, j]
        d = -q
        slope = np.einsum("sp,sp->s", g[idx], d)
        bad = ~(slope < 0)  # not a descent direction: fall back to steepest descent
        if bad.any():
            d[bad] = -g[idx[bad]] / np.maximum(1.0, np.linalg.norm(g[idx[bad]], axis=1))[:, None]
            slope[bad] = np.einsum("sp,sp->s", g[idx[bad]], d[bad])
        step = np.ones(idx.size)
        done = np.zeros(idx.size, dtype=bool)
        f_new = np.empty(idx.size)
        g_new = np.empty((idx.size, p))
        for _ in range(40):  # Armijo backtracking with quadratic interpolation, rows not yet accepted
            todo = np.flatnonzero(~done)
            if todo.size == 0:
                break
            trial = x[idx[todo]] + step[todo, None] * d[todo]
            ft, gt = batch_objective_grad(trial, problem)
            ok = np.isfinite(ft) & (ft <= f[idx[todo]] + 1e-4 * step[todo] * slope[todo])
            f_new[todo[ok]], g_new[todo[ok]] = ft[ok], gt[ok]
            done[todo[ok]] = True
            # minimiser of the quadratic through f(0), f'(0) and f(t), kept within [0.1 t, 0.5 t]
            rej, t = todo[~ok], step[todo[~ok]]
            curv = ft[~ok] - f[idx[rej]] - slope[rej] * t
            with np.errstate(invalid="ignore", divide="ignore"):
                t_quad = -slope[rej] * t * t / (2.0 * curv)
            step[rej] = np.where(np.isfinite(t_quad), np.clip(t_quad, 0.1 * t, 0.5 * t), 0.1 * t)
        failed = idx[~done]
        active[failed] = False
        acc = np.flatnonzero(done)
        rows = idx[acc]
        sv = step[acc, None] * d[acc]
        yv = g_new[acc] - g[rows]
        sy = np.einsum("sp,sp->s", sv, yv)
        slot = it % memory
        good = sy > 1e-12 * np.linalg.norm(sv, axis=1) * np.linalg.norm(yv, axis=1)
        s_hist[rows, slot] = np.where(good[:, None], sv, 0.0)
        y_hist[rows, slot] = np.where(good[:, None], yv, 0.0)
        rho[rows, slot] = np.where(good, 1.0 / np.where(good, sy, 1.0), 0.0)
        # rows that did not take part this iteration get an empty (no-op) history slot
        skipped = np.setdiff1d(np.arange(n), rows, assume_unique=True)
        rho[skipped, slot] = 0.0
        x[rows] += sv
        f[rows], g[rows] = f_new[acc], g_new[acc]
    return x, f


def polish(problem: HuberLSEProblem, x0: np.ndarray, options: dict | None = None):
    """scipy L-BFGS-B from one start with the analytic gradient; returns scipy's OptimizeResult.

    The objective is divided by its value at the start: scipy's `ftol` test is relative to
    max(|f|, 1), and a summed Huber loss with delta = 1e-3 is ~1e-3, so unscaled it would stop
    on an absolute, not a relative, change."""
    x0 = np.asarray(x0, dtype=float)
    scale = objective_only(x0, problem)
    scale = scale if np.isfinite(scale) and scale > 0 else 1.0

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = objective_grad(theta, problem)
        return f / scale, g / scale

    res = minimize(fun, x0, jac=True, method="L-BFGS-B", options=options or POLISH_OPTIONS)
    res.fun = objective_only(res.x, problem)
    return res


@dataclass(frozen=True)
class MultiStartResult:
    """Best point of a multi-start fit and how it was found."""

    x: np.ndarray
    fun: float
    n_starts: int
    n_polished: int
    candidates: np.ndarray = field(repr=False)  # polished points, best first
    candidate_funs: np.ndarray = field(repr=False)


def _distinct(points: np.ndarray, order: np.ndarray, k: int, tol: float = 1e-3) -> list[int]:
    """Up to k indices from `order` whose points differ by more than `tol` (max-abs)."""
    kept: list[int] = []
    for i in order:
        if all(np.max(np.abs(points[i] - points[j])) > tol for j in kept):
            kept.append(int(i))
            if len(kept) == k:
                break
    return kept


def _subsample(problem: HuberLSEProblem, m: int) -> HuberLSEProblem:
    """The problem restricted to a fixed (seeded) random subset of m points."""
    n = problem.x.shape[0]
    if n <= m:
        return problem
    idx = np.sort(np.random.default_rng(0).choice(n, size=m, replace=False))
    w = None if problem.weights is None else problem.weights[idx]
    z = None if problem.z is None else problem.z[idx]
    return HuberLSEProblem(problem.x[idx], problem.y[idx], problem.delta, w, z, problem.z_terms)


def multistart_minimize(problem: HuberLSEProblem, starts: np.ndarray, *, screen: float = 0.125,
                        rounds: tuple[tuple[int, float], ...] = ((3, 0.25), (10, 0.25), (30, 0.0)),
                        n_polish: int = 4, screen_points: int = 512,
                        extra: np.ndarray | None = None) -> MultiStartResult:
    """Best local minimum of the objective from many starts, by screening, batched L-BFGS with
    successive halving, and a scipy polish of the distinct survivors.

    All starts are scored by their initial objective (one batched evaluation) and the best
    `screen` fraction goes on. `rounds` is a sequence of (iterations, fraction kept): the live
    starts run `iterations` batched L-BFGS steps, then only the best `fraction` continues; 0 ends
    the screening. The `n_polish` best distinct points (plus every row of `extra`, e.g. a warm
    start) are polished with scipy L-BFGS-B and the best polished point is returned.
    With more than `screen_points` data points, screening and racing use a fixed random subset
    of that many points (only the ranking of starts depends on it); the polish uses all points.
    This is a heuristic, checked rather than proved: on Epoch's Chinchilla points only 7% of the
    4,500 starts reach the global optimum under the naive loop (the rest stop in degenerate
    minima), and the start with the lowest initial objective is among them; the benchmark
    `benchmarks/law_multistart.py` compares the result with the naive loop over the full grid."""
    starts = np.atleast_2d(np.asarray(starts, dtype=float))
    race = _subsample(problem, screen_points)
    f0 = batch_objective(starts, race)
    live = np.flatnonzero(np.isfinite(f0))
    if live.size == 0:
        raise FloatingPointError("the objective is not finite at any start")
    live = live[np.argsort(f0[live], kind="stable")[:max(n_polish, int(np.ceil(screen * live.size)))]]
    x = starts[live]
    f = f0[live]
    for iters, keep in rounds:
        x, f = batched_lbfgs(race, x, iters)
        if keep <= 0:
            break
        best = np.argsort(f, kind="stable")[:max(n_polish, int(np.ceil(keep * len(x))))]
        x, f = x[best], f[best]
    chosen = x[_distinct(x, np.argsort(f, kind="stable"), n_polish)]
    if extra is not None:
        chosen = np.vstack([chosen, np.atleast_2d(extra)])
    results = [polish(problem, c) for c in chosen]
    funs = np.array([r.fun if np.isfinite(r.fun) else np.inf for r in results])
    order = np.argsort(funs, kind="stable")
    pts = np.array([results[i].x for i in order])
    return MultiStartResult(x=pts[0], fun=float(funs[order[0]]), n_starts=len(starts),
                            n_polished=len(chosen), candidates=pts, candidate_funs=funs[order])


def naive_multistart(problem: HuberLSEProblem, starts: np.ndarray, *, analytic_grad: bool = False,
                     options: dict | None = None) -> MultiStartResult:
    """Epoch's procedure, one start at a time: scipy L-BFGS-B from every start, best kept.

    With `analytic_grad=False` (Epoch's notebook) scipy differentiates by finite differences.
    This is the reference the fast `multistart_minimize` is checked against."""
    starts = np.atleast_2d(np.asarray(starts, dtype=float))
    best_x, best_f = starts[0], np.inf
    for x0 in starts:
        if analytic_grad:
            r = minimize(objective_grad, x0, args=(problem,), jac=True, method="L-BFGS-B",
                         options=options)
        else:
            r = minimize(objective_only, x0, args=(problem,), method="L-BFGS-B", options=options)
        if np.isfinite(r.fun) and r.fun < best_f:
            best_x, best_f = r.x, float(r.fun)
    return MultiStartResult(x=best_x, fun=best_f, n_starts=len(starts), n_polished=len(starts),
                            candidates=best_x[None, :], candidate_funs=np.array([best_f]))
