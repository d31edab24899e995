"""Direct Data Optimization (DDO): the compute-optimal domain mixture at one token budget.

AutoScale (Kang et al. 2024, arXiv 2407.20177), stage 1. Design: a base run with per-domain token
quantities N_i(base) and, for each domain i, runs with N_i multiplied by a down factor (1/5) and an
up factor (3), either with the other domains' quantities held fixed ("fixed-others", the total
moves) or with the total held fixed ("fixed-total", the others rescaled by a common factor).

With multipliers x_i = N_i / N_i(base) and y = objective / objective(base), the surrogate is

    y(x) = sum_i f_i(x_i),   f_i(x) = (x + a_i)^(-b_i) + c_i,   b_i > 0, x + a_i > 0,

fitted JOINTLY to every run by least squares, so both designs identify each f_i (in the
fixed-total design every run moves every x_i). Only sum_i c_i is identifiable (a shift of c_i into
c_j changes nothing), so one shared constant C = sum_i c_i is fitted and reported split equally,
c_i = C / m. With the paper's 2m + 1 runs there are 2m + 1 parameters (a_i, b_i, C): in the
fixed-others design the fit is the paper's per-domain three-point interpolation; with more factors
or replicate seeds it is a regression and its residuals are reported.

The optimum keeps the base budget: minimise sum_i f_i(x_i) subject to sum_i w0_i x_i = 1 (w0 the base
mixture, so sum_i x_i N_i(base) = N(base)) and x_i >= lower. For a uniform base this is the paper's
constraint sum_i x_i = m; for a non-uniform base the paper's sum_i x_i = m would change the budget,
so the budget-preserving constraint is used instead. The weights are w_i = w0_i x_i (= x_i / m for a
uniform base). The KKT conditions of this convex problem give, for a multiplier lambda,
x_i(lambda) = max(lower, (b_i / (lambda w0_i))^(1 / (1 + b_i)) - a_i); a 1-D root find on
log(lambda) for the budget makes it exact.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import brentq, least_squares

from autoscale_ray.errors import BadInput

DESIGNS = ("fixed-others", "fixed-total")
_B_MAX = 20.0          # keeps (x + a)^(-b) finite near the pole; larger b is not seen in practice
_A_MAX = 1e3
B_MAX = _B_MAX         # public: a response stuck at the cap was set by the bound, not the runs
_POLE_GAP = 1e-2       # a_i >= -(1 - _POLE_GAP) * min(x): the pole stays left of every x used
_B_SCAN = np.geomspace(1e-4, _B_MAX, 600)   # where the exact solve looks for sign changes in b
_SAME_POINT = 1e-9     # an exact design's unmoved multipliers are 1 to this relative tolerance
_MAX_COMBOS = 4096     # root combinations enumerated for `alternatives` (2^12: 12 two-root domains)
_SSE_RTOL = 1e-6       # least-squares fits within this relative SSE of the best are ties


# --------------------------------------------------------------------------- the design
@dataclass(frozen=True)
class DDODesign:
    """Which run is the base and how every run perturbs it (run indices into the caller's rows)."""

    kind: str                        # "fixed-others" or "fixed-total"
    base: int                        # the base run (the first at the base point)
    base_runs: tuple[int, ...]       # every run at the base point (replicates included)
    perturbed: tuple[int, ...]       # per run: the perturbed domain, -1 at the base point
    factors: tuple[float, ...]       # per run: the perturbed domain's multiplier, 1 at the base point
    multipliers: np.ndarray          # runs x domains: x_i = N_i / N_i(base)


def _group_points(q: np.ndarray, rtol: float) -> list[list[int]]:
    """Runs with the same per-domain quantities (within rtol): replicates of one design point."""
    groups: list[list[int]] = []
    for r in range(len(q)):
        for g in groups:
            if np.allclose(q[r], q[g[0]], rtol=rtol, atol=0.0):
                g.append(r)
                break
        else:
            groups.append([r])
    return groups


def _classify(x: np.ndarray, total_ratio: float, kind: str, factors: Sequence[float],
              rtol: float) -> tuple[int, float] | str:
    """(perturbed domain, its multiplier) of one run relative to a candidate base, or why not."""
    if kind == "fixed-others":
        moved = np.flatnonzero(np.abs(x - 1.0) > rtol)
        if len(moved) != 1:
            return f"changes {len(moved)} domains' quantities, not one"
        return int(moved[0]), float(x[moved[0]])
    if abs(total_ratio - 1.0) > rtol:
        return f"has {total_ratio:.4g} times the base's total tokens, not the same total"
    if len(x) == 2:  # either domain can be read as the perturbed one: prefer a declared factor
        match = [i for i in (0, 1) if any(abs(x[i] / f - 1.0) <= rtol for f in factors)]
        i = match[0] if len(match) == 1 else int(np.argmax(np.abs(np.log(x))))
        return i, float(x[i])
    common = float(np.median(x))
    if common <= 0:
        return "leaves most domains without tokens"
    moved = np.flatnonzero(np.abs(x / common - 1.0) > rtol)
    if len(moved) != 1:
        return f"rescales {len(moved)} domains differently from the rest, not one"
    return int(moved[0]), float(x[moved[0]])


def find_design(quantities: np.ndarray, *, base: int | None = None, design: str = "auto",
                factors: Sequence[float] = (0.2, 3.0), rtol: float = 1e-2,
                names: Sequence[str] | None = None) -> DDODesign:
    """Find the base run of a DDO perturbation design from per-run, per-domain token quantities.

    The base is the run from which every other run differs in exactly one domain's quantity
    (fixed-others) or in one domain's quantity at the same total (fixed-total). Runs at the same
    point (within `rtol`) are replicates. When several runs qualify (two domains, fixed-total),
    the one whose perturbations match the declared `factors` most often wins; a tie is BadInput.
    """
    q = np.asarray(quantities, dtype=float)
    n, m = q.shape
    names = list(names) if names is not None else [f"#{r}" for r in range(n)]
    if design not in ("auto", *DESIGNS):
        raise BadInput(f"unknown DDO design `{design}`", None, "use fixed-others, fixed-total or auto")
    if m < 2:
        raise BadInput("DDO needs at least two domains", None, "add `w.<domain>` columns for every domain")
    groups = _group_points(q, rtol)
    kinds = DESIGNS if design == "auto" else (design,)
    if base is not None:
        if (q[base] <= 0).any():
            raise BadInput(f"base run `{names[base]}` has no tokens of some domain", None,
                           "the base run must train on every domain")
        candidates = [next(g for g in groups if base in g)]
    else:
        candidates = [g for g in groups if (q[g[0]] > 0).all()]

    fits: list[tuple[int, list[int], str, dict[int, tuple[int, float]]]] = []
    best_miss: tuple[int, str] | None = None   # (number of misfits, message) of the nearest candidate
    for cand in candidates:
        ref = q[cand[0]]
        for kind in kinds:
            found: dict[int, tuple[int, float]] = {}
            misses: list[str] = []
            for g in groups:
                if g is cand:
                    continue
                got = _classify(q[g[0]] / ref, q[g[0]].sum() / ref.sum(), kind, factors, rtol)
                if isinstance(got, str):
                    misses.append(f"run `{names[g[0]]}` {got} relative to base `{names[cand[0]]}` "
                                  f"({kind})")
                else:
                    found[g[0]] = got
            if not misses:
                score = sum(any(abs(f / d - 1.0) <= rtol for d in factors) for _, f in found.values())
                fits.append((score, cand, kind, found))
            elif best_miss is None or len(misses) < best_miss[0]:
                best_miss = (len(misses), misses[0])
    if not fits:
        detail = f": {best_miss[1]}" if best_miss else ""
        raise BadInput("the runs are not a DDO perturbation design (a base run plus runs that each "
                       "change one domain's quantity)" + detail, None,
                       "give --base RUN_ID or --design, or keep only the runs of one budget's design")
    top = max(f[0] for f in fits)
    best = [f for f in fits if f[0] == top]
    if len(best) > 1:
        listed = ", ".join(f"`{names[f[1][0]]}` ({f[2]})" for f in best[:4])
        raise BadInput(f"several runs could be the base of the DDO design: {listed}", None,
                       "name it with --base RUN_ID")
    _, cand, kind, found = best[0]
    perturbed = [-1] * n
    mult = [1.0] * n
    for g in groups:
        if g is cand:
            continue
        domain, factor = found[g[0]]
        for r in g:
            # a factor is a ratio of the runs' quantities: 12 significant digits drop the last
            # ulps of the weights' arithmetic, so a design of 0.25 reads 0.25 for every domain
            perturbed[r], mult[r] = domain, float(f"{factor:.12g}")
    return DDODesign(kind=kind, base=cand[0], base_runs=tuple(cand), perturbed=tuple(perturbed),
                     factors=tuple(mult), multipliers=q / q[cand[0]])


# --------------------------------------------------------------------------- the surrogate fit
@dataclass(frozen=True)
class DDOFit:
    """Fitted surrogate y(x) = sum_i (x_i + a_i)^(-b_i) + C, C = sum_i c_i (split c_i = C / m)."""

    a: np.ndarray
    b: np.ndarray
    constant: float                  # C = sum_i c_i, the only identifiable part of the c_i
    residuals: np.ndarray            # fitted minus observed y, per run
    dof: int                         # runs minus fitted parameters (0: interpolation)
    # (a, b, C) of other fits found as good as this one (the data cannot tell them apart)
    alternatives: tuple[tuple[np.ndarray, np.ndarray, float], ...] = ()

    @property
    def c(self) -> np.ndarray:
        """Per-domain constants under the equal split of the shared constant."""
        return np.full(len(self.a), self.constant / len(self.a))

    @property
    def rmse(self) -> float:
        return float(np.sqrt(np.mean(self.residuals ** 2)))

    def response(self, x: np.ndarray) -> np.ndarray:
        """f_i(x_i) for each domain (columns), with the c_i split equally."""
        x = np.asarray(x, dtype=float)
        return (x + self.a) ** (-self.b) + self.c

    def predict(self, x: np.ndarray) -> np.ndarray:
        """y(x) for rows of multipliers x (or one vector)."""
        return self.response(x).sum(axis=-1)


def _model(theta: np.ndarray, x: np.ndarray, m: int) -> np.ndarray:
    a, b, c = theta[:m], theta[m:2 * m], theta[-1]
    return ((x + a) ** (-b)).sum(axis=1) + c


def _jac(theta: np.ndarray, x: np.ndarray, m: int) -> np.ndarray:
    a, b = theta[:m], theta[m:2 * m]
    base = x + a
    g = base ** (-b)
    return np.hstack([-b * g / base, -np.log(base) * g, np.ones((len(x), 1))])


_STARTS = [(a0, b0) for a0 in (0.0, 1.0, 4.0) for b0 in (0.1, 0.5, 2.0)]


def _solve(theta0: np.ndarray, free: np.ndarray, x: np.ndarray, y: np.ndarray,
           lo: np.ndarray, hi: np.ndarray, tol: float = 1e-8,
           max_nfev: int = 100) -> tuple[np.ndarray, float]:
    """Least squares over the parameters marked `free` (the rest held at theta0)."""
    m = x.shape[1]
    theta = theta0.copy()

    def resid(t: np.ndarray) -> np.ndarray:
        theta[free] = t
        return _model(theta, x, m) - y

    def jac(t: np.ndarray) -> np.ndarray:
        theta[free] = t
        return _jac(theta, x, m)[:, free]

    start = np.clip(theta0[free], lo[free], hi[free])
    res = least_squares(resid, start, jac=jac, bounds=(lo[free], hi[free]), method="trf",
                        x_scale="jac", xtol=tol, ftol=tol, gtol=tol, max_nfev=max_nfev)
    out = theta0.copy()
    out[free] = res.x
    return out, float(2.0 * res.cost)


def _a_of_b(b: float, x1: float, x2: float, d12: float, lo_a: float, hi_a: float) -> float | None:
    """The a with (x1 + a)^(-b) - (x2 + a)^(-b) = d12 (x1 < x2, d12 > 0), or None outside [lo_a, hi_a].

    The left side falls monotonically in a (from +inf at the pole to 0), so the root is unique."""
    def h(a: float) -> float:
        return (x1 + a) ** (-b) - (x2 + a) ** (-b) - d12

    h_lo, h_hi = h(lo_a), h(hi_a)
    if not (math.isfinite(h_lo) and math.isfinite(h_hi)) or h_lo < 0.0 or h_hi > 0.0:
        return None
    return float(brentq(h, lo_a, hi_a, xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=500))


def _scan_F(x1: float, x2: float, x3: float, d12: float, d23: float, lo_a: float,
            hi_a: float) -> list[float]:
    """domain_roots' F(b) on every b of _B_SCAN at once: a(b) by vectorised bisection (h falls
    monotonically in a, see `_a_of_b`), NaN where a(b) is outside [lo_a, hi_a]. Only the signs
    matter here (brentq refines each bracket with the scalar functions)."""
    b = _B_SCAN

    def h(a: np.ndarray) -> np.ndarray:
        return (x1 + a) ** (-b) - (x2 + a) ** (-b) - d12

    with np.errstate(all="ignore"):
        h_lo, h_hi = h(np.full(b.shape, lo_a)), h(np.full(b.shape, hi_a))
        ok = np.isfinite(h_lo) & np.isfinite(h_hi) & (h_lo >= 0.0) & (h_hi <= 0.0)
        lo, hi = np.full(b.shape, lo_a), np.full(b.shape, hi_a)
        for _ in range(200):  # bisection: (hi - lo) / 2^200 is below any float spacing here
            mid = 0.5 * (lo + hi)
            up = h(mid) > 0.0
            lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
        a = 0.5 * (lo + hi)
        f = (x2 + a) ** (-b) - (x3 + a) ** (-b) - d23
    return [float(v) for v in np.where(ok, f, np.nan)]


def domain_roots(x: Sequence[float], v: Sequence[float], *, lo_a: float,
                 hi_a: float = _A_MAX) -> list[tuple[float, float]]:
    """Every (a, b) with (x_k + a)^(-b) - (x_l + a)^(-b) = v_k - v_l on three points (x_k, v_k).

    f(x) = (x + a)^(-b) + c through three points (Kang et al. 2024, AutoScale's per-domain fit):
    c drops out of the two differences. With x1 < x2 < x3, the first difference fixes a(b) (unique,
    `_a_of_b`); the roots are the zeros in b of F(b) = (x2 + a(b))^(-b) - (x3 + a(b))^(-b) - (v2 - v3),
    bracketed by sign changes on a log grid of b in [1e-4, 20] and refined with brentq. Typically
    two: a "log-like" one (small b, a near the pole) and a power-law one. Points that no convex
    decreasing f passes through (v not falling, or falling faster on the right) give none.
    Returns the roots sorted by b; only those with lo_a <= a <= hi_a.
    """
    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    x1, x2, x3 = (float(np.asarray(x, dtype=float)[k]) for k in order)
    v1, v2, v3 = (float(np.asarray(v, dtype=float)[k]) for k in order)
    d12, d23 = v1 - v2, v2 - v3
    if not (d12 > 0.0 and d23 > 0.0 and d12 / (x2 - x1) > d23 / (x3 - x2)):
        return []

    def F(b: float) -> float:
        a = _a_of_b(b, x1, x2, d12, lo_a, hi_a)
        return math.nan if a is None else (x2 + a) ** (-b) - (x3 + a) ** (-b) - d23

    values = _scan_F(x1, x2, x3, d12, d23, lo_a, hi_a)
    roots: list[tuple[float, float]] = []
    for k in range(len(_B_SCAN) - 1):
        f0, f1 = values[k], values[k + 1]
        if not (math.isfinite(f0) and math.isfinite(f1)):
            continue
        if f0 == 0.0:
            b = float(_B_SCAN[k])
        elif f0 * f1 < 0.0:
            b = float(brentq(F, float(_B_SCAN[k]), float(_B_SCAN[k + 1]), xtol=1e-15,
                             rtol=4 * np.finfo(float).eps, maxiter=500))
        else:
            continue
        a = _a_of_b(b, x1, x2, d12, lo_a, hi_a)
        if a is not None:
            roots.append((a, b))
    return roots


def _exact_design(x: np.ndarray, rtol: float) -> tuple[tuple[int, ...], list[tuple[int, int]]] | None:
    """(base rows, per domain its two perturbed rows) when the runs are the paper's 2m + 1
    fixed-others design: runs at x = 1 (one, or replicate seeds of it) and, per domain, two runs
    that move only that domain to two distinct multipliers (the others at 1 within _SAME_POINT).
    None otherwise."""
    n, m = x.shape
    moved = np.abs(x - 1.0) > _SAME_POINT
    base = np.flatnonzero(~moved.any(axis=1))
    if len(base) < 1 or n != 2 * m + len(base):
        return None
    pairs: list[tuple[int, int]] = []
    for i in range(m):
        rows = np.flatnonzero(moved[:, i] & (moved.sum(axis=1) == 1))
        if len(rows) != 2 or len(_group_points(x[[int(base[0]), *rows], i:i + 1], rtol)) != 3:
            return None
        pairs.append((int(rows[0]), int(rows[1])))
    return tuple(int(b) for b in base), pairs


def _fit_exact(x: np.ndarray, y: np.ndarray, design: tuple[tuple[int, ...], list[tuple[int, int]]],
               lo_a: np.ndarray, floor: float) -> DDOFit | None:
    """The exact fit of the 2m + 1 design by the root rule (see fit_ddo); None if no root
    combination interpolates the runs with C >= floor. Replicates of the base enter as their
    mean: interpolating the points' means is the least-squares fit (the spread within a point is
    residual no member of the family can remove)."""
    base_rows, pairs = design
    n, m = x.shape
    y_base = float(np.mean(y[list(base_rows)]))
    roots = []
    for i, (r1, r2) in enumerate(pairs):
        found = domain_roots([1.0, x[r1, i], x[r2, i]], [y_base, y[r1], y[r2]], lo_a=float(lo_a[i]))
        if not found:
            return None
        roots.append(found)
    # g_i(1) per root: C = y_base - sum_i g_i(1), so the largest C takes, per domain, the root with
    # the smallest g_i(1) (the largest c_i); near-equal g_i(1) (within 1e-9) go to the larger b.
    g1 = [[(1.0 + a) ** (-b) for a, b in r] for r in roots]
    pick = []
    for i, r in enumerate(roots):
        best = min(g1[i])
        tied = [k for k in range(len(r)) if g1[i][k] <= best + 1e-9 * max(1.0, abs(best))]
        pick.append(max(tied, key=lambda k: r[k][1]))

    def theta_of(combo: Sequence[int]) -> np.ndarray:
        a = np.array([roots[i][k][0] for i, k in enumerate(combo)])
        b = np.array([roots[i][k][1] for i, k in enumerate(combo)])
        return np.concatenate([a, b, [y_base - float(np.sum((1.0 + a) ** (-b)))]])

    theta = theta_of(pick)
    if theta[-1] < floor:
        return None
    alternatives = []
    for combo in itertools.islice(itertools.product(*[range(len(r)) for r in roots]), _MAX_COMBOS):
        if list(combo) != pick:
            t = theta_of(combo)
            if t[-1] >= floor:
                alternatives.append((t[:m].copy(), t[m:2 * m].copy(), float(t[-1])))
    return DDOFit(a=theta[:m].copy(), b=theta[m:2 * m].copy(), constant=float(theta[-1]),
                  residuals=_model(theta, x, m) - y, dof=n - (2 * m + 1),
                  alternatives=tuple(alternatives))


def _best(cands: Sequence[tuple[np.ndarray, float]], scale: float) -> tuple[np.ndarray, float]:
    """The tie rule of the least-squares path: fits within _SSE_RTOL (relative, plus 1e-12 of the
    data's spread) of the smallest SSE are equally good; of those the largest C wins (the rule of
    the exact path), then the earlier candidate."""
    s_min = min(s for _, s in cands)
    tol = _SSE_RTOL * s_min + 1e-12 * scale
    tied = [c for c in cands if c[1] <= s_min + tol]
    return max(tied, key=lambda c: c[0][-1])


def fit_ddo(multipliers: np.ndarray, y: np.ndarray, *, lower: float = 0.2, rtol: float = 1e-2,
            domains: Sequence[str] | None = None, n_starts: int = 24,
            floor: float = 0.0, warm: DDOFit | None = None) -> DDOFit:
    """Fit y = sum_i (x_i + a_i)^(-b_i) + C over all runs (AutoScale's DDO surrogate), C >= floor.

    C is the surrogate's objective with unlimited data of every domain, so it is constrained to
    the normalised metric's floor (`floor`: 0 for a loss or perplexity ratio; -inf lifts it).

    Exact designs (the paper's 2m + 1 fixed-others runs: a base and two single-domain perturbations
    per domain): each domain's two difference equations are solved for every root (a_i, b_i)
    (`domain_roots`; typically two, a log-like one with small b_i and a power law), every
    combination gives C = y_base - sum_i (1 + a_i)^(-b_i), and those with C >= floor interpolate
    the runs equally well. RULE: the largest C, i.e. per domain the root with the smallest
    (1 + a_i)^(-b_i) (the largest c_i; ties within 1e-9 to the larger b_i). It is separable, so a
    tiny change of the input cannot flip it (roots move continuously), and on the paper's 1.2B
    runs it is the root scipy's curve_fit finds from its default start (1, 1, 1) in AutoScale's
    notebook. Every other combination with C >= floor is kept in `alternatives` (the first
    _MAX_COMBOS in order). If no combination has C >= floor, or some domain's three points admit
    no convex decreasing f_i, the design is fitted as a regression.

    Regressions (replicates, more factors, fixed-total): scipy.optimize.least_squares
    (trust-region reflective; bounds b_i in (0, 20], a_i > -min(observed x_i, lower), C >= floor),
    searched block by block from 9 shared starts (a_i, b_i) on a 3 x 3 grid and `n_starts` mixed
    ones (fixed seed), each domain refitted from the grid with the others held, until a sweep
    improves nothing; then polished. Fits within a relative 1e-6 of the best SSE are ties,
    broken by the same rule (the largest C); equally good (a_i, b_i) of single domains found in
    the last sweep go to `alternatives`. Needs >= 3 distinct multipliers (within `rtol`) per
    domain and at least 2m + 1 runs.

    `warm`: a regression is refitted from that fit's parameters alone (no search, no
    alternatives), as a bootstrap refits near the full-data optimum (Efron & Tibshirani 1993).
    """
    x = np.asarray(multipliers, dtype=float)
    y = np.asarray(y, dtype=float)
    n, m = x.shape
    if not (np.isfinite(x).all() and np.isfinite(y).all()) or (x <= 0).any():
        raise BadInput("DDO needs finite objectives and every run to train on every domain", None,
                       "drop failed runs and runs that leave a domain out (use a small factor)")
    if math.isnan(floor) or floor == math.inf:
        raise BadInput(f"objective floor {floor}", None,
                       "give the normalised metric's floor (0 for a loss or perplexity ratio)")
    names = list(domains) if domains is not None else [f"#{i}" for i in range(m)]
    for i in range(m):
        distinct = _group_points(x[:, i:i + 1], rtol)
        if len(distinct) < 3:
            raise BadInput(f"domain `{names[i]}` has {len(distinct)} distinct token quantities; "
                           "DDO needs 3",
                           None, "run the base, a down and an up perturbation of every domain")
    if n < 2 * m + 1:
        raise BadInput(f"{n} runs for {2 * m + 1} parameters", None,
                       "run the base plus a down and an up perturbation of every domain")
    x_min = np.minimum(x.min(axis=0), lower)
    lo = np.concatenate([-(1.0 - _POLE_GAP) * x_min, np.full(m, 1e-8), [floor]])
    hi = np.concatenate([np.full(m, _A_MAX), np.full(m, _B_MAX), [np.inf]])

    exact = _exact_design(x, rtol)
    if exact is not None:
        fit = _fit_exact(x, y, exact, lo[:m], floor)
        if fit is not None:
            return fit

    everything = np.ones(2 * m + 1, dtype=bool)
    scale = float(np.sum((y - y.mean()) ** 2)) + 1e-300
    if warm is not None:
        theta0 = np.clip(np.concatenate([warm.a, warm.b, [warm.constant]]), lo, hi)
        theta, _ = _solve(theta0, everything, x, y, lo, hi, tol=1e-15, max_nfev=1000)
        return DDOFit(a=theta[:m].copy(), b=theta[m:2 * m].copy(), constant=float(theta[-1]),
                      residuals=_model(theta, x, m) - y, dof=n - (2 * m + 1))

    def start(theta: np.ndarray) -> np.ndarray:
        theta = np.clip(theta, lo, hi)
        theta[-1] = max(floor, float(np.mean(y - _model(theta, x, m))))
        return theta

    # Joint starts: the shared grid points, then mixed ones (each domain its own grid point, from
    # a fixed-seed generator so the fit is deterministic): the joint problem's local minima
    # differ in which domains took which shape, and mixed starts cover the combinations.
    grid = np.array(_STARTS)
    picks = [np.full(m, k) for k in range(len(grid))]
    rng = np.random.default_rng(0)
    picks += [rng.integers(len(grid), size=m) for _ in range(n_starts)]
    theta, sse = _best([_solve(start(np.concatenate([grid[p, 0], grid[p, 1], [0.0]])),
                               everything, x, y, lo, hi) for p in picks], scale)
    for _sweep in range(4):
        alternatives: list[np.ndarray] = []
        improved = False
        for i in range(m):
            block = np.zeros(2 * m + 1, dtype=bool)
            block[[i, m + i, 2 * m]] = True
            tries = []
            for a0, b0 in _STARTS:
                t0 = theta.copy()
                t0[i], t0[m + i] = a0, b0
                tries.append(_solve(start(t0), block, x, y, lo, hi))
            cand, cand_sse = _best(tries, scale)
            if cand_sse < sse - 1e-10 * scale:
                theta, sse = _solve(cand, everything, x, y, lo, hi)
                improved = True
                continue
            # equally good (a_i, b_i) elsewhere: the data cannot tell them apart
            tol = max(1e-20 * scale, 0.1 * sse)  # 5% in RMSE
            for t, t_sse in tries:
                if t_sse <= sse + tol and all(
                        not np.allclose(t[[i, m + i]], u[[i, m + i]], rtol=1e-3, atol=1e-4)
                        for u in [theta, *[v for v in alternatives if v[i] != theta[i]]]):
                    alternatives.append(t)
        if not improved:
            break
    theta, sse = _solve(theta, everything, x, y, lo, hi, tol=1e-15, max_nfev=1000)
    residuals = _model(theta, x, m) - y
    return DDOFit(a=theta[:m].copy(), b=theta[m:2 * m].copy(), constant=float(theta[-1]),
                  residuals=residuals, dof=n - (2 * m + 1),
                  alternatives=tuple((t[:m].copy(), t[m:2 * m].copy(), float(t[-1]))
                                     for t in alternatives))


# --------------------------------------------------------------------------- the optimum
@dataclass(frozen=True)
class DDOOptimum:
    multipliers: np.ndarray          # x_i* (multiples of the base quantities)
    weights: np.ndarray              # w_i = w0_i x_i*, summing to 1
    at_bound: tuple[int, ...]        # domains held at the lower bound
    objective: float                 # predicted y(x*) (normalised by the base run)
    lagrange: float                  # lambda: the marginal value of budget


def optimize_mixture(fit: DDOFit, base_weights: np.ndarray, *, lower: float = 0.2) -> DDOOptimum:
    """Minimise sum_i f_i(x_i) s.t. sum_i w0_i x_i = 1, x_i >= lower (exact KKT solution).

    Stationarity f_i'(x_i) = -lambda w0_i gives x_i(lambda) = max(lower,
    (b_i / (lambda w0_i))^(1/(1+b_i)) - a_i), decreasing in lambda; brentq on log(lambda) finds the
    lambda that spends the budget. The problem is convex (f_i convex), so this is the optimum.
    """
    w0 = np.asarray(base_weights, dtype=float)
    w0 = w0 / w0.sum()
    a, b = fit.a, fit.b
    if not 0.0 < lower <= 1.0:
        raise BadInput(f"lower bound {lower} on the multipliers", None,
                       "give --min-multiplier in (0, 1]: the base mixture itself must be feasible")

    def x_of(log_lam: float) -> tuple[np.ndarray, np.ndarray]:
        free = np.exp((np.log(b) - log_lam - np.log(w0)) / (1.0 + b)) - a
        return np.maximum(free, lower), free

    def spent(log_lam: float) -> float:
        return float(w0 @ x_of(log_lam)[0]) - 1.0

    # lambda_hi: every domain at the bound (spends `lower` <= 1); lambda_lo: some domain alone
    # takes the whole budget (x_i = 1 / w0_i).
    log_hi = float(np.max(np.log(b) - np.log(w0) - (1.0 + b) * np.log(lower + a))) + 1e-9
    log_lo = float(np.min(np.log(b) - np.log(w0) - (1.0 + b) * np.log(1.0 / w0 + a))) - 1e-9
    if spent(log_hi) >= 0.0:  # lower == 1: the base mixture is the only feasible point
        log_lam = log_hi
    else:
        log_lam = brentq(spent, log_lo, log_hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500)
    x, free = x_of(log_lam)
    x = x / (w0 @ x)  # remove the root finder's last ~1e-15 of budget error
    x = np.maximum(x, lower)
    weights = w0 * x
    return DDOOptimum(multipliers=x, weights=weights / weights.sum(),
                      at_bound=tuple(int(i) for i in np.flatnonzero(free <= lower)),
                      objective=float(fit.predict(x)), lagrange=float(np.exp(log_lam)))


# --------------------------------------------------------------------------- all of it
@dataclass(frozen=True)
class DDOResult:
    design: DDODesign
    fit: DDOFit
    optimum: DDOOptimum
    base_quantities: np.ndarray      # N_i(base)
    base_objective: float            # mean objective of the base point's runs (the y unit)
    # largest weight change if an equally good alternative fit were used (0: the fit is unique)
    weight_spread: float = 0.0
    alternative_weights: tuple[np.ndarray, ...] = ()  # the optimum of each alternative fit


def solve_ddo(quantities: np.ndarray, objective: np.ndarray, *, base: int | None = None,
              design: str = "auto", factors: Sequence[float] = (0.2, 3.0), lower: float = 0.2,
              rtol: float = 1e-2, names: Sequence[str] | None = None,
              domains: Sequence[str] | None = None, floor: float = -math.inf,
              extra_quantities: np.ndarray | None = None,
              extra_objective: np.ndarray | None = None, warm: DDOFit | None = None) -> DDOResult:
    """DDO from per-run token quantities (runs x domains) and each run's final objective.
    `names` label the runs and `domains` the columns in error messages. `floor` is the floor of
    the objective normalised by the base run's (0 for a loss or perplexity); its default -inf
    leaves C free, as before it existed. `weight_spread` is the largest weight change over every
    alternative fit (in exact designs: every other root combination with C >= floor).

    `extra_quantities` / `extra_objective`: runs outside the perturbation design (refinement
    rounds centred elsewhere); the design is found on the first runs alone, and every run enters
    the fit with its multipliers relative to the base (residuals: design runs first, then these).
    `warm`: refit a regression from that fit (`fit_ddo`)."""
    q = np.asarray(quantities, dtype=float)
    obj = np.asarray(objective, dtype=float)
    d = find_design(q, base=base, design=design, factors=factors, rtol=rtol, names=names)
    base_obj = float(np.mean(obj[list(d.base_runs)]))
    if not base_obj > 0:
        raise BadInput(f"the base run's objective is {base_obj}", None,
                       "DDO normalises by the base objective; use a positive metric (loss, perplexity)")
    base_q = q[d.base]
    x, y = d.multipliers, obj / base_obj
    if extra_quantities is not None and len(extra_quantities):
        x = np.vstack([x, np.asarray(extra_quantities, dtype=float) / base_q])
        y = np.concatenate([y, np.asarray(extra_objective, dtype=float) / base_obj])
    fit = fit_ddo(x, y, lower=lower, rtol=rtol, domains=domains, floor=floor, warm=warm)
    opt = optimize_mixture(fit, base_q / base_q.sum(), lower=lower)
    alt_ws = tuple(optimize_mixture(DDOFit(a=a, b=b, constant=c, residuals=fit.residuals,
                                           dof=fit.dof), base_q / base_q.sum(), lower=lower).weights
                   for a, b, c in fit.alternatives)
    spread = max((float(np.abs(w - opt.weights).max()) for w in alt_ws), default=0.0)
    return DDOResult(design=d, fit=fit, optimum=opt, base_quantities=base_q, base_objective=base_obj,
                     weight_spread=spread, alternative_weights=alt_ws)
