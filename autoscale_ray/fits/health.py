"""Fit health over runs tables: the checks of `autoscale_ray.laws.health` and `laws.units` applied
to each table-level fit, as the `warnings` of its output.

A warning record is `{"check": name, "message": what is wrong (the run and column where there is
one), "fix": what to add or change}`. Each fit puts its list under `warnings` (the `ddo` and
`project` mixtures in `extra`), logs each record on the `autoscale_ray` logger, and reports
`extrapolation_factor` (how far its answer lies beyond what was fitted; 1 = inside). The command
line's `--strict` turns any warning into exit code 2.

`fit_health` is the generic entry point for a law this module does not know (the mixing law):
finite parameters inside plausible ranges, none at an optimiser bound, enough distinct values of
each axis, finite bootstrap intervals.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from autoscale_ray.laws.health import (Finding, at_bound_findings, distinct_findings,
                                       extrapolation_findings, interval_findings,
                                       parameter_findings, robust_outliers)
from autoscale_ray.laws.lr_horizon import local_window
from autoscale_ray.laws.units import (LOSS_MAX, loss_findings, lr_findings, ppl_findings,
                                      tokens_findings, weight_sum_findings)
from autoscale_ray.runs import LOSS_PREFIX, RunsTable

log = logging.getLogger("autoscale_ray")

# How far past the fitted range each verb extrapolates before it warns (the factor's meaning is
# the verb's: a target over the largest horizon or source, a held-out size over the largest
# fitted one, a multiplier or a weight over the largest a run had).
EXTRAPOLATION_LIMIT = {"lr": 100.0, "project": 100.0, "law": 10.0, "ddo": 1.0, "regress": 1.0}
PROJECT_MAX_FACTOR = 1e6   # a projection further than this is refused, not warned about
MIN_SIZES = 4              # L(N, D): A and alpha rest on the distinct model sizes
MIN_HORIZONS = 3           # LR*(D): two horizons leave the slope without a residual
# A residual is far off beyond 5 robust sd AND beyond 5 x 2% = 10% of the typical value (so the
# scatter of published runs, e.g. Chinchilla's SVG-digitised points at ~5%, is not flagged);
# a raw value beyond 5 x 25% of its column's median is a gross error (37 for 3.7, 1e30).
RESIDUAL_FLOOR = 0.02
GROSS = 0.25               # a value this far from its column's median (relative) may be an outlier
CV_SPEARMAN_MIN = 0.5
_HIGHER_IS_BETTER = re.compile(r"(?i)(acc|accuracy|score|f1|bleu|rouge|exact_match|win|reward)")

# L(N, D) = E + A / N^alpha + B / D^beta: plausible values (Chinchilla: alpha 0.35, beta 0.37;
# the Hitchhiker's Guide's families: exponents 0.05-1.5)
LAW_RANGES = {"E": (1e-3, LOSS_MAX), "A": (0.0, 1e15), "B": (0.0, 1e15),
              "alpha": (0.01, 3.0), "beta": (0.01, 3.0)}
LR_BETA_RANGE = (0.0, 1.5)


def records(findings: Iterable[Finding], source: str) -> list[dict[str, str]]:
    """The findings as JSON records, each logged as a warning naming `source`."""
    out = []
    for f in findings:
        log.warning("%s: %s [%s]; %s", source, f.message, f.check, f.fix)
        out.append(f.to_json())
    return out


def fit_health(what: str, params: Mapping[str, float | None],
               ranges: Mapping[str, tuple[float, float]], *, fix: str,
               bounds: Mapping[str, tuple[float, float]] | None = None,
               intervals: Mapping[str, Sequence[float] | None] | None = None,
               axes: Sequence[tuple[ArrayLike, int, str, str, str]] = ()) -> list[Finding]:
    """Health of any fitted law: `params` finite and inside `ranges`, none at its optimiser
    `bounds`, bootstrap `intervals` finite, and each axis (values, needed distinct, check name,
    what they are, fix) with enough distinct values."""
    out = parameter_findings(params, ranges, what=what, fix=fix)
    if bounds:
        out += at_bound_findings({k: float(v) for k, v in params.items() if k in bounds and v is not None},
                                 bounds, what=what, fix=fix)
    out += interval_findings(intervals, what=what, fix=fix)
    for values, need, check, noun, axis_fix in axes:
        out += distinct_findings(values, need, check=check, what=noun, fix=axis_fix)
    return out


def outlier_findings(values: ArrayLike, labels: Sequence[str], column: str, *, what: str,
                     min_scale: float = 0.0, relative: bool = False) -> list[Finding]:
    """`outlier`: the runs whose `values` (residuals, or with `relative` a column's raw values,
    screened against GROSS x their median) lie far off the rest by Hampel's identifier."""
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    if relative and finite.size:
        min_scale = max(min_scale, GROSS * float(np.median(np.abs(finite))))
    far = robust_outliers(v, min_scale=min_scale)
    if far.size == 0:
        return []
    med = float(np.median(finite)) if finite.size else 0.0
    far = far[np.argsort(-np.nan_to_num(np.abs(v[far] - med), nan=np.inf), kind="stable")]
    named = ", ".join(f"`{labels[i]}` ({v[i]:.4g})" for i in far[:4])
    more = f" and {far.size - 4} more" if far.size > 4 else ""
    return [Finding("outlier", f"{what} of run(s) {named}{more} (farthest first) in column "
                               f"`{column}` lie far from the others (more than 5 robust standard "
                               "deviations)",
                    "check those rows for a typo or a failed run; drop them or mark them "
                    "`status: failed`")]


def table_units(table: RunsTable, frame: Any, *, metric: str | None = "loss",
                lr: bool = False) -> list[Finding]:
    """Unit checks of the rows a fit uses: tokens (and budgets), the loss columns (or a
    perplexity metric), the raw weight sums, and peak LRs."""
    labels = frame["run_id"].astype(str).tolist()
    if len(set(labels)) < len(labels):  # checkpoints: name the evaluation, run@tokens
        labels = [f"{r}@{t:g}" for r, t in zip(labels, frame["tokens"])]
    out = tokens_findings(frame["tokens"].to_numpy(float))
    if "budget" in frame.columns and not out:
        out += tokens_findings(frame["budget"].to_numpy(float), column="budget")
    loss_columns = (["loss"] if "loss" in frame.columns else []) + \
        [LOSS_PREFIX + d for d in table.loss_domains]
    if metric in ("loss", "mean-loss", "mean-ppl"):
        for col in loss_columns:
            out += loss_findings(frame[col].to_numpy(float), labels, column=col)
    elif metric is not None and metric in frame.columns:
        values = frame[metric].to_numpy(float)
        if re.search(r"(?i)ppl|perplexity", metric):
            out += ppl_findings(values, labels, column=metric)
        elif metric.startswith(("loss", LOSS_PREFIX)):
            out += loss_findings(values, labels, column=metric)
    if table.weight_sums:
        runs = list(dict.fromkeys(frame["run_id"].astype(str)))
        out += weight_sum_findings([table.weight_sums.get(r, 1.0) for r in runs], runs)
    if lr and "lr" in frame.columns:
        out += lr_findings(frame["lr"].to_numpy(float), labels)
    return out


def gross_values(frame: Any, columns: Sequence[str]) -> list[Finding]:
    """`outlier` for values of each column far from its median (a typo among the others)."""
    labels = frame["run_id"].astype(str).tolist()
    return [f for col in columns for f in gross_values_array(frame[col].to_numpy(float), labels, col)]


# ---- the fits ---------------------------------------------------------------------------
def law_health(params: Mapping[str, float | None], intervals: Mapping[str, Any] | None, *,
               loss: np.ndarray, tokens: np.ndarray, sizes: np.ndarray | None,
               predicted: np.ndarray, labels: Sequence[str]) -> list[Finding]:
    """L(N, D) / L(D): parameters finite and plausible, E below the lowest loss, enough model
    sizes (L(N, D)) or token counts (L(D)), finite bootstrap intervals, no far-off checkpoint."""
    fix = ("add model sizes (>= 4) and checkpoints, or drop the early checkpoints "
           "(--min-tokens); check the units of `loss` (nats/token) and `tokens` (counts)")
    axes = [(sizes, MIN_SIZES, "enough_sizes", "model sizes", "add runs of more model sizes "
             f"(>= {MIN_SIZES}) to fit A and alpha")] if sizes is not None else \
        [(tokens, 4, "enough_tokens", "token counts", "add checkpoints at more token counts")]
    out = fit_health("the fitted law", params, LAW_RANGES, fix=fix, intervals=intervals, axes=axes)
    E = params.get("E")
    if E is not None and math.isfinite(E) and E > 1.01 * float(loss.min()):
        out.append(Finding("parameter_range", f"the fitted law: E = {E:.4g} is above the lowest "
                                              f"observed loss {float(loss.min()):.4g}", fix))
    resid = np.log(loss) - np.log(np.where(predicted > 0, predicted, np.nan))
    out += outlier_findings(resid, labels, "loss", what="the log-loss residuals",
                            min_scale=RESIDUAL_FLOOR)
    return out


def _deleted_residuals(x: np.ndarray, resid: np.ndarray) -> np.ndarray:
    """Leave-one-out residuals r_i / (1 - h_ii) of a quadratic in x (h: the hat matrix's
    diagonal), so one wild point does not spread its error over its neighbours."""
    design = np.column_stack([np.ones_like(x), x, x * x])
    h = np.einsum("ij,jk,ik->i", design, np.linalg.pinv(design.T @ design), design)
    return resid / np.maximum(1.0 - h, 1e-9)


def lr_health(law: Any, final: Any, *, target: float, factor: float,
              window: int | None) -> list[Finding]:
    """LR*(D): beta plausible, >= 3 horizons, horizons bracketed by their grid, a finite interval
    at the target, the extrapolation factor, and no far-off run in a horizon's quadratic."""
    fix = "add LR sweeps at more horizons, or LRs past the grid's edge"
    out = parameter_findings({"beta": law.beta}, {"beta": LR_BETA_RANGE}, what="LR*(D)", fix=fix)
    out += parameter_findings({"LR* at the target": float(law.predict(target))},
                              {"LR* at the target": (1e-7, 1.0)}, what="LR*(D)", fix=fix)
    if law.n_used < MIN_HORIZONS:
        out.append(Finding("enough_horizons", f"{law.n_used} horizon(s) fitted: the slope beta has "
                                              "no residual to check it", "add an LR sweep at a "
                                              f"third horizon (>= {MIN_HORIZONS})"))
    edge = [h for h in law.horizons if h.at_edge]
    if edge:
        out.append(Finding("lr_grid_edge", "the best LR of horizon(s) "
                           + ", ".join(f"{h.tokens:.4g}" for h in edge) + " sits at the edge of "
                           "its grid (not bracketed)", "add LRs past that edge"))
    lo, hi = law.interval(target)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        out.append(Finding("interval_finite", "no finite interval for LR* at the target",
                           "add LRs per horizon (>= 4) or a third horizon"))
    out += extrapolation_findings(factor, EXTRAPOLATION_LIMIT["lr"],
                                  what="the target over the largest fitted horizon",
                                  fix="add a sweep at a longer horizon, or check the units of "
                                      "--target-tokens and `budget`")
    resid, labels = [], []
    budget, lr, loss = (final[c].to_numpy(float) for c in ("budget", "lr", "loss"))
    for h in law.horizons:
        rows = np.flatnonzero(np.isclose(budget, h.tokens, rtol=1e-9))
        if h.dof > 0 and h.convex:
            rows = rows[local_window(lr[rows], loss[rows], window)]
            resid += list(_deleted_residuals(np.log(lr[rows]) - h.center,
                                             loss[rows] - h.predict(lr[rows])))
            labels += final["run_id"].iloc[rows].astype(str).tolist()
    if resid:
        out += outlier_findings(resid, labels, "loss", what="the leave-one-out residuals of the "
                                "per-horizon quadratics",
                                min_scale=RESIDUAL_FLOOR * float(np.median(loss)))
    return out


def regress_health(target: str, y: np.ndarray, residuals: np.ndarray, labels: Sequence[str], *,
                   maximize: bool, budgets: np.ndarray, budget_given: bool,
                   cv_spearman: float | None, factor: float,
                   outside_rows: Sequence[int] = ()) -> list[Finding]:
    """The regression: the target's direction, mixed budgets, a held-out rank correlation that
    says little, far-off runs, and mixtures beyond the runs' weights."""
    out: list[Finding] = []
    if _HIGHER_IS_BETTER.search(target) and not maximize:
        out.append(Finding("target_direction", f"target `{target}` looks higher-is-better but the "
                                               "search minimises it", "pass --maximize"))
    if not budget_given and budgets.size and not np.allclose(budgets, budgets[0], rtol=1e-2):
        listed = ", ".join(f"{b:.4g}" for b in np.unique(budgets)[:5])
        out.append(Finding("budgets_mixed", f"the runs have different budgets ({listed}): one "
                                            "regression over them mixes scales",
                           "keep one budget with --budget B"))
    if cv_spearman is not None and not cv_spearman >= CV_SPEARMAN_MIN:
        out.append(Finding("fit_quality", f"5-fold CV Spearman {cv_spearman:.3g} is below "
                                          f"{CV_SPEARMAN_MIN}: the fit ranks held-out runs poorly",
                           "look for outliers and mixed budgets; add runs"))
    gross = gross_values_array(y, labels, target)
    scale = RESIDUAL_FLOOR * float(np.median(np.abs(y))) if y.size else 0.0
    out += gross or outlier_findings(residuals, labels, target, what="the regression residuals",
                                     min_scale=scale)
    rows = ", ".join(map(str, outside_rows[:10])) + (", ..." if len(outside_rows) > 10 else "")
    out += extrapolation_findings(factor, EXTRAPOLATION_LIMIT["regress"] + 1e-9,
                                  what=f"a mixture's weight over the runs' largest (MIXES rows "
                                       f"{rows})",
                                  fix="predict mixtures inside the runs' weights, or add runs there")
    return out


def gross_values_array(values: np.ndarray, labels: Sequence[str], column: str) -> list[Finding]:
    """`gross_values` on one array (a target computed from the table)."""
    return outlier_findings(values, labels, column, what="the values", relative=True)
