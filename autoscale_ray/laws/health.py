"""Fit health: whether a fitted law is identified and sane, as named findings (never an exception).

A fit can converge and still be nonsense: a parameter at infinity or stuck at the optimiser's
bound, an exponent of 50, a bootstrap interval with a NaN end, a predicted loss below zero, or a
law with as many free parameters as distinct model sizes. Each check here returns `Finding`s
(check name, what is wrong, what to add or change); the table-level fits turn them into the
`warnings` of their output, and `--strict` into exit code 2.

Outliers are screened robustly (Hampel's identifier; Hampel 1974, "The influence curve and its
role in robust estimation"; Rousseeuw & Croux 1993 for the MAD's consistency constant 1.4826):
a residual is far off when |r_i - median(r)| > k x 1.4826 x MAD(r), the MAD being
median_i |r_i - median(r)|, so one wild point cannot hide itself by inflating a standard deviation.

Pure numpy; no printing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

MAD_SCALE = 1.4826   # MAD x 1.4826 estimates the standard deviation of normal data
OUTLIER_K = 5.0      # Hampel's identifier threshold, in robust standard deviations


@dataclass(frozen=True)
class Finding:
    """One failed health check: `check` is a stable snake_case name, `message` says what is
    wrong (naming the run and column where there is one), `fix` what to add or change."""

    check: str
    message: str
    fix: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "message": self.message, "fix": self.fix}


def parameter_findings(params: Mapping[str, float | None],
                       ranges: Mapping[str, tuple[float, float]], *, what: str,
                       fix: str) -> list[Finding]:
    """`parameters_finite` for a parameter that is NaN or infinite, `parameter_range` for one
    outside its plausible range [lo, hi] (a parameter not in `ranges` is checked for finiteness
    only; None means "not part of this form")."""
    out: list[Finding] = []
    for name, value in params.items():
        if value is None:
            continue
        v = float(value)
        if not math.isfinite(v):
            out.append(Finding("parameters_finite", f"{what}: {name} = {v:g}", fix))
            continue
        lo, hi = ranges.get(name, (-math.inf, math.inf))
        if not lo <= v <= hi:
            out.append(Finding("parameter_range",
                               f"{what}: {name} = {v:.4g} is outside its plausible range "
                               f"[{lo:g}, {hi:g}]", fix))
    return out


def at_bound_findings(values: Mapping[str, float], bounds: Mapping[str, tuple[float, float]], *,
                      what: str, fix: str, rtol: float = 1e-3) -> list[Finding]:
    """`parameter_at_bound` for each parameter within `rtol` (relative) of an optimiser bound:
    the data did not determine it, the bound did."""
    stuck = []
    for name, v in values.items():
        lo, hi = bounds[name]
        for b in (lo, hi):
            if math.isfinite(b) and math.isfinite(v) and abs(v - b) <= rtol * max(abs(b), 1e-12):
                stuck.append(f"{name} = {v:.4g}")
                break
    if not stuck:
        return []
    return [Finding("parameter_at_bound", f"{what}: {', '.join(stuck[:6])}"
                    + (f" and {len(stuck) - 6} more" if len(stuck) > 6 else "")
                    + " at the fit's bound", fix)]


def interval_findings(intervals: Mapping[str, Sequence[float] | None] | None, *, what: str,
                      fix: str, max_ratio: float = 1e6) -> list[Finding]:
    """`interval_finite`: a bootstrap interval with a NaN or infinite end, or one spanning more
    than `max_ratio` (hi / lo for positive parameters): the replicates did not agree on a value."""
    bad = []
    for name, iv in (intervals or {}).items():
        if iv is None:
            continue
        lo, hi = (float(v) for v in iv)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            bad.append(f"{name} [{lo:.3g}, {hi:.3g}]")
        elif lo > 0 and hi / lo > max_ratio:
            bad.append(f"{name} [{lo:.3g}, {hi:.3g}] spans {hi / lo:.2g}x")
    if not bad:
        return []
    return [Finding("interval_finite", f"{what}: bootstrap interval(s) {'; '.join(bad)}", fix)]


def distinct_findings(values: ArrayLike, need: int, *, check: str, what: str,
                      fix: str) -> list[Finding]:
    """`check` when `values` hold fewer than `need` distinct values (model sizes, horizons,
    runs): the parameters that depend on them are not identified."""
    n = int(np.unique(np.asarray(values, dtype=float)).size)
    if n >= need:
        return []
    return [Finding(check, f"{n} distinct {what}, fewer than the {need} this fit needs to be "
                           "identified", fix)]


def floor_findings(predicted: float, floor: float, *, what: str, fix: str) -> list[Finding]:
    """`objective_floor`: a predicted objective on the wrong side of the metric's floor (a loss
    or a perplexity ratio below 0), or not finite."""
    if math.isfinite(predicted) and predicted >= floor:
        return []
    return [Finding("objective_floor", f"{what} is {predicted:.5g}, below the metric's floor "
                                       f"{floor:g}", fix)]


def extrapolation_findings(factor: float, limit: float, *, what: str, fix: str) -> list[Finding]:
    """`extrapolation` when `factor` (target over the largest fitted value) exceeds `limit`."""
    if math.isfinite(factor) and factor <= limit:
        return []
    return [Finding("extrapolation", f"{what} is {factor:.3g}x, beyond the limit of {limit:g}x",
                    fix)]


def robust_outliers(residuals: ArrayLike, *, k: float = OUTLIER_K, min_scale: float = 0.0
                    ) -> np.ndarray:
    """Indices of residuals with |r_i - median(r)| > k x max(1.4826 MAD(r), min_scale) (Hampel's
    identifier). `min_scale` keeps an exact fit (MAD 0) from flagging rounding noise; a NaN or
    infinite residual is always flagged."""
    r = np.asarray(residuals, dtype=float)
    finite = np.isfinite(r)
    if finite.sum() < 3:
        return np.flatnonzero(~finite)
    med = float(np.median(r[finite]))
    scale = max(MAD_SCALE * float(np.median(np.abs(r[finite] - med))), float(min_scale))
    far = np.zeros(r.size, dtype=bool)
    far[finite] = np.abs(r[finite] - med) > k * scale if scale > 0 else False
    return np.flatnonzero(far | ~finite)
