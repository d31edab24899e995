"""Fit health of the mixture fits, DDO and the AutoScale projection (`autoscale_ray.fits.health`
has the record schema and the shared checks): the design DDO read and why, perturbation factors
against the declared ones, the optimum against the metric's floor and the bound, the projection's
target against its sources.

`ddo_report` and `project_report` are the hooks `fits/ddo.py` and `fits/project.py` call; they
return the keys those fits add to their mixture's `extra` (`design_reason`, `extrapolation_factor`,
`warnings`).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from autoscale_ray.errors import BadInput
from autoscale_ray.fits.health import (EXTRAPOLATION_LIMIT, PROJECT_MAX_FACTOR, RESIDUAL_FLOOR,
                                       gross_values, outlier_findings, records, table_units)
from autoscale_ray.laws.ddo import B_MAX
from autoscale_ray.laws.health import Finding, extrapolation_findings, floor_findings
from autoscale_ray.laws.units import tokens_findings
from autoscale_ray.mixture import Mixture
from autoscale_ray.runs import LOSS_PREFIX, WEIGHT_PREFIX, RunsTable

PROJECTION_RMSE_LOG = 0.1  # sources more than ~10% off AutoScale's lines (in log quantity)


def check_ddo_columns(table: RunsTable, final: Any) -> None:
    """BadInput for a `w.<domain>` column that is zero in every run: the base run cannot train on
    that domain, so no run is a base (the design message would not name the column)."""
    w = table.weights(final)
    empty = [WEIGHT_PREFIX + d for d, zero in zip(table.domains, (w <= 0).all(axis=0)) if zero]
    if empty:
        raise BadInput(f"column(s) {', '.join(f'`{c}`' for c in empty)} are 0 in every run: DDO "
                       "needs every domain in its base run", table.source,
                       "drop the column(s), or give the runs that train on that domain")


def design_hint(table: RunsTable, final: Any) -> str:
    """What to look at when no DDO design was found: weights that do not sum to 1 per run."""
    off = [r for r in final["run_id"].astype(str)
           if abs(table.weight_sums.get(r, 1.0) - 1.0) > 1e-2]
    if not off:
        return ""
    return (f" (the weights of {len(off)} run(s), e.g. `{off[0]}` summing to "
            f"{table.weight_sums[off[0]]:.4g}, do not sum to 1 and were normalised: give each "
            "run's `w.<domain>` as shares of its own total, with `budget` that total)")


def ddo_health(*, kind: str, reason: str, objective_predicted: float, floor: float,
               n_domains: int, at_bound: Sequence[str], responses: Mapping[str, Mapping[str, float]],
               b_max: float, factor: float, residuals: Mapping[str, Any], dof: int) -> list[Finding]:
    """DDO: the predicted objective above the metric's floor, the optimum not decided by the
    bound, no response stuck at the cap of b, the optimum inside the sampled multipliers, and no
    far-off run (when the fit has residual degrees of freedom)."""
    out = floor_findings(objective_predicted, floor, what="the predicted objective",
                         fix="check the losses for a typo or a perplexity among losses; "
                             "replicate the base run")
    if n_domains >= 3 and len(at_bound) >= (n_domains + 1) // 2:
        out.append(Finding("optimum_at_bound", f"{len(at_bound)} of {n_domains} domains sit on the "
                                               f"lower bound ({', '.join(at_bound)}): the bound, "
                                               "not the runs, decides the optimum",
                           "check the objective for a typo; refine around the optimum or lower "
                           "--min-multiplier"))
    stuck = {d: r["b"] for d, r in responses.items() if r["b"] >= b_max * (1 - 1e-3)}
    if stuck:
        out.append(Finding("parameter_at_bound", "response(s) of " + ", ".join(
            f"{d} (b = {b:.3g})" for d, b in stuck.items()) + f" at the cap b = {b_max:g} ({kind} "
            f"design: {reason})", "check that the design was read as intended (--design, "
                                  "`budget` = each run's own total) and the factors per domain"))
    out += extrapolation_findings(factor, EXTRAPOLATION_LIMIT["ddo"] + 1e-9,
                                  what="the optimum's largest multiplier over the largest "
                                       "sampled one",
                                  fix="refine around the optimum (a run at larger multipliers)")
    if dof > 0:
        names = list(residuals)
        flat = [float(np.sqrt(np.sum(np.square(list(v.values()))))) if isinstance(v, Mapping)
                else float(v) for v in residuals.values()]
        out += outlier_findings(flat, names, "objective", what="the surrogate's residuals",
                                min_scale=RESIDUAL_FLOOR)
    return out


def design_reason(kind: str, base: str, totals: np.ndarray) -> str:
    """Why the design was read as `kind`: what the runs' totals show."""
    same = bool(np.allclose(totals, totals[0], rtol=1e-2))
    if kind == "fixed-total":
        return (f"every run has the same total tokens as base `{base}` and moves one domain's "
                "share, the others rescaled together")
    return (f"every run changes one domain's quantity of base `{base}` and holds the others"
            + ("" if same else ", so the totals differ"))


def factor_findings(kind: str, reason: str, factors: Sequence[float], declared: Sequence[float],
                    *, explicit: bool, source: str) -> list[Finding]:
    """Each declared factor (--down/--up) must be among the runs' perturbation factors (a design
    may have more): an error when they were given, a `design` warning for the defaults."""
    found = sorted({round(f, 4) for f in factors if abs(f - 1.0) > 1e-9})
    absent = [d for d in declared if not any(abs(f / d - 1.0) <= 1e-2 for f in found)]
    if not absent:
        return []
    what = (f"the {kind} design ({reason}) has perturbation factors "
            f"{', '.join(f'{f:g}' for f in found)}, without the declared "
            f"{', '.join(f'{d:g}' for d in absent)}")
    fix = ("give each run's own total tokens in `budget` (a run that holds the other domains "
           "fixed has a different total), or --design, or --down/--up as the runs were made")
    if explicit:
        raise BadInput(what, source, fix)
    return [Finding("design", what, fix)]


def ddo_extrapolation(x_opt: np.ndarray, multipliers: np.ndarray) -> float:
    """The optimum's largest multiplier over the largest one any run sampled (1 = inside)."""
    top = np.asarray(multipliers, dtype=float).max(axis=0)
    return float(max(1.0, np.max(np.asarray(x_opt, dtype=float) / top)))


def check_projection_target(target: float, source_tokens: Sequence[float], where: str) -> None:
    """BadInput for a target at or below the largest source, or more than PROJECT_MAX_FACTOR
    beyond it (the fix names token counts that look like billions)."""
    largest = max(source_tokens)
    factor = target / largest
    units = (" (the sources' `tokens` look like billions: write 3e8, not 0.3)"
             if tokens_findings(source_tokens) else "")
    if factor <= 1.0 + 1e-9:
        raise BadInput(f"target {target:.4g} tokens is not above the largest source "
                       f"({largest:.4g} tokens): nothing to project", where,
                       "give --target-tokens above every source's budget" + units)
    if factor > PROJECT_MAX_FACTOR:
        raise BadInput(f"target {target:.4g} tokens is {factor:.3g}x the largest source "
                       f"({largest:.4g}), beyond the {PROJECT_MAX_FACTOR:g}x the projection "
                       "accepts", where, "check the units of --target-tokens and the sources' "
                                         "`tokens`" + units)


def project_health(source_tokens: Sequence[float], factor: float, exponent: float,
                   floored: Sequence[str], at_bound: Sequence[str]) -> list[Finding]:
    """The projection: source token units, the extrapolation factor, and domains at a source's
    bound left unfloored."""
    out = tokens_findings(source_tokens, column="the sources' tokens")
    out += extrapolation_findings(factor, EXTRAPOLATION_LIMIT["project"],
                                  what="the target over the largest source",
                                  fix=f"add a DDO probe at a larger budget (latent scale s = "
                                      f"{exponent:.3g})")
    return out


def ddo_report(table: RunsTable, final: Any, design: Any, extra: Mapping[str, Any], *,
               at_bound: Sequence[str], x_opt: np.ndarray, floor: float | None,
               declared: Sequence[float], explicit: bool, n_design: int) -> dict[str, Any]:
    """The health keys of a DDO mixture: `design_reason` (which design was found and why),
    `extrapolation_factor` and `warnings`. BadInput when declared factors do not match. `floor`:
    the metric's (None for a metric column: 0 for one named loss* or ppl*)."""
    totals = table.quantities(final)[:n_design].sum(axis=1)
    base = str(final["run_id"].iloc[design.base])
    reason = design_reason(design.kind, base, totals)
    findings = factor_findings(design.kind, reason, design.factors, declared, explicit=explicit,
                               source=table.source)
    metric = extra["metric"]
    if floor is None:  # a metric column: a loss or a perplexity is never below 0, others unknown
        floor = 0.0 if metric.startswith(("loss", "ppl")) else -np.inf
    findings += table_units(table, final, metric=metric)
    findings += gross_values(final, [LOSS_PREFIX + d for d in table.loss_domains]
                             or (["loss"] if "loss" in final.columns else []))
    q = table.quantities(final)  # refinement runs (after the design's) count as sampled too
    factor = ddo_extrapolation(x_opt, q / q[design.base])
    findings += ddo_health(kind=design.kind, reason=reason,
                           objective_predicted=float(extra["objective_predicted"]), floor=floor,
                           n_domains=len(table.domains), at_bound=at_bound,
                           responses=extra["responses"], b_max=B_MAX, factor=factor,
                           residuals=extra["residuals"], dof=int(extra["dof"]))
    return {"design_reason": reason, "extrapolation_factor": factor,
            "warnings": records(findings, table.source)}


def project_report(source_tokens: Sequence[float], rmse_log: float, target: float,
                   exponent: float, floored: Sequence[str], at_bound: Sequence[str],
                   where: str) -> dict[str, Any]:
    """The health keys of a projection: `extrapolation_factor` and `warnings`; with >= 3 sources,
    `fit_quality` when they lie off the fitted lines log N_i = alpha_i + s beta_i by more than
    PROJECTION_RMSE_LOG (one source cannot be singled out: each has its own latent scale s)."""
    factor = target / max(source_tokens)
    findings = project_health(source_tokens, factor, exponent, floored, at_bound)
    if rmse_log > PROJECTION_RMSE_LOG:
        findings.append(Finding("fit_quality", f"the {len(source_tokens)} sources lie off the "
                                               f"projection's lines (RMSE of log quantities "
                                               f"{rmse_log:.3g}, above {PROJECTION_RMSE_LOG:g})",
                                "check each source's optimum (its DDO warnings); drop the one "
                                "that does not follow the others"))
    return {"extrapolation_factor": factor, "warnings": records(findings, where)}
