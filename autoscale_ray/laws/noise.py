"""Measured noise: what replicate seeds of a run say, each perturbation's effect against it, and
percentile intervals of bootstrap draws.

Noise. The base run of a DDO design is trained with k >= 2 seeds; the sample standard deviation
(ddof = 1) of their final objective (and of each domain's loss) is the run-to-run noise sigma
(AutoScale's DDO, Kang et al. 2024, fits through single runs and assumes none).

Signal-to-noise of a perturbation. A run with domain i's tokens moved by a factor differs from the
mean of the n base replicates by Delta = y_r - mean(y_base), whose noise sd is
sigma sqrt(1 + 1/n). SNR_i = max_r |Delta_r| / (sigma sqrt(1 + 1/n)) over domain i's runs; a
domain with SNR_i < 2 moved the objective by less than twice its noise: its fitted response, and
so its optimal weight, rests on noise.

Intervals. A parametric bootstrap (Efron & Tibshirani 1993, ch. 6) redraws each observation as
y* = y_hat + N(0, sigma^2) and refits; the (1 - level)/2 and (1 + level)/2 quantiles of the refitted
quantity are its percentile interval.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

SNR_WITHIN_NOISE = 2.0  # an effect below 2 noise sd is not told apart from noise
DEFAULT_LEVEL = 0.9


def replicate_sd(values: np.ndarray) -> np.ndarray:
    """Sample sd (ddof = 1) over the replicates (rows) of `values`, per column; NaN with fewer
    than two replicates."""
    v = np.asarray(values, dtype=float)
    if v.shape[0] < 2:
        return np.full(v.shape[1:], math.nan)
    return v.std(axis=0, ddof=1)


def perturbation_snr(y: np.ndarray, base_runs: Sequence[int], perturbed: Sequence[int],
                     n_domains: int, sigma: float) -> np.ndarray:
    """Per domain, max_r |y_r - mean(y_base)| / (sigma sqrt(1 + 1/n_base)) over the runs that
    perturb it (module docstring); NaN for a domain without runs or when sigma is not positive."""
    y = np.asarray(y, dtype=float)
    base = list(base_runs)
    centre = float(np.mean(y[base]))
    se = sigma * math.sqrt(1.0 + 1.0 / len(base)) if sigma > 0 else math.nan
    snr = np.full(n_domains, math.nan)
    for run, domain in enumerate(perturbed):
        if domain < 0 or run >= len(y) or not math.isfinite(se):
            continue
        effect = abs(y[run] - centre) / se
        snr[domain] = effect if not np.isfinite(snr[domain]) else max(snr[domain], effect)
    return snr


def percentile_interval(draws: np.ndarray, level: float = DEFAULT_LEVEL,
                        include: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) per column: the (1 - level)/2 and (1 + level)/2 quantiles of the draws (rows),
    widened to contain every row of `include` (the point estimate, equally good fits)."""
    d = np.asarray(draws, dtype=float)
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2], axis=0)
    if include is not None:
        inc = np.atleast_2d(np.asarray(include, dtype=float))
        lo, hi = np.minimum(lo, inc.min(axis=0)), np.maximum(hi, inc.max(axis=0))
    return lo, hi


SolveAll = Callable[[Callable[[np.ndarray], np.ndarray], Sequence[np.ndarray]], list]


def solve_each(solve: Callable[[np.ndarray], np.ndarray], redraws: Sequence[np.ndarray]) -> list:
    """solve(y) for each redraw in order, None where the solver rejects it (ValueError, e.g. a fit
    without a valid root). A caller may run this over chunks of the redraws in parallel: each
    result depends on its redraw alone."""
    out = []
    for y in redraws:
        try:
            out.append(np.asarray(solve(y), dtype=float))
        except ValueError:
            out.append(None)
    return out


def solve_every(solve_all: SolveAll, solve: Callable[[int], np.ndarray], n: int) -> list[np.ndarray]:
    """solve(i) for i in 0..n-1 through `solve_all` (in order, or in parallel with the same rows),
    each unit required: a unit the solver rejected is solved again here, so its ValueError is the
    one fitting in order would have raised."""
    rows = solve_all(solve, list(range(n)))
    for i, row in enumerate(rows):
        if row is None:
            solve(i)  # raises the rejected unit's own error
            raise ValueError(f"unit {i} was rejected in parallel but solved in order")
    return rows


def parametric_draws(solve: Callable[[np.ndarray], np.ndarray], fitted: np.ndarray,
                     sigma: np.ndarray | float, n: int, seed: int = 0,
                     solve_all: SolveAll = solve_each) -> np.ndarray:
    """Rows solve(fitted + N(0, sigma^2)) for n redraws (module docstring), from a fixed-seed
    generator so the draws are reproducible; a redraw the solver rejects is skipped, so fewer than
    n rows may come back. `solve_all(solve, redraws)` solves them as `solve_each` does (a parallel
    one returns the same rows: the redraws are drawn here, in order, before any is solved)."""
    rng = np.random.default_rng(seed)
    centre = np.asarray(fitted, dtype=float)
    redraws = [centre + rng.normal(0.0, 1.0, centre.shape) * sigma for _ in range(n)]
    return np.array([row for row in solve_all(solve, redraws) if row is not None])
