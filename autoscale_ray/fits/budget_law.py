"""A second extrapolation to the target, as model uncertainty of the projected mixture.

AutoScale's projection carries the DDO optima of the probe budgets to the target by a rule about
the optima (fits/project.py); two probes cannot test that rule, and where domains transfer to each
other it misses (benchmarks/RESULTS.md, calibration). The budget transfer law
(laws/budget_transfer.py) models the runs instead: every DDO run of every probe budget, each
domain's final loss in the effective tokens all domains give it. Where that law reproduces the runs
to within AGREE noise sd per domain (the noise the base replicates measure), the data cannot rule
it out, so its optimum at the target, with a parametric bootstrap of the law, joins the projected
weights' intervals: the interval becomes the envelope of both models' intervals. Otherwise it is
left out and the reason recorded.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.budget_transfer import OBJECTIVES, budget_transfer_optimum, fit_budget_transfer
from autoscale_ray.laws.mixture_optimum import epoch_caps
from autoscale_ray.laws.noise import DEFAULT_LEVEL, SolveAll, parametric_draws, percentile_interval, solve_each
from autoscale_ray.runs import LOSS_PREFIX, RunsTable

AGREE = 2.0      # the law must reproduce each domain's losses within 2 noise sd (RMS)
DRAWS = 100      # parametric redraws of the law for its interval
NAME = "budget-transfer-law"


def budget_law_alternative(table: RunsTable, domains: Sequence[str], target: float, *,
                           noise_sd: Mapping[str, float | None], metric: str = "mean-loss",
                           available: Mapping[str, float] | None = None, max_epochs: float = 4.0,
                           level: float = DEFAULT_LEVEL, draws: int = DRAWS, seed: int = 0,
                           starts: Sequence[np.ndarray] = (), solve_all: SolveAll = solve_each) -> dict[str, Any]:
    """The law fitted to `table`'s runs (final evaluations, several budgets), its optimum at
    `target` under the epoch caps, and whether it is an equally good model of the runs
    (`used`, `reason`). `noise_sd`: each domain's loss sd between replicate seeds; `solve_all`
    solves the bootstrap's redraws (laws/noise.py: in order here, or in parallel)."""
    out: dict[str, Any] = {"name": NAME, "used": False}
    if metric not in OBJECTIVES:
        return {**out, "reason": f"not fitted: it predicts per-domain losses, not `{metric}`"}
    sd = np.array([np.nan if noise_sd.get(d) is None else float(noise_sd[d]) for d in domains])
    if not (np.isfinite(sd).all() and (sd > 0).all()):
        return {**out, "reason": "not compared: the per-domain noise is not measured"}
    final = table.final()
    cols = [LOSS_PREFIX + d for d in domains]
    if any(c not in final.columns for c in cols):
        return {**out, "reason": "not fitted: the runs have no per-domain losses"}
    final = final[final["budget"] > 0].reset_index(drop=True)
    q = table.weights(final) * final["budget"].to_numpy(float)[:, None]
    losses = final[cols].to_numpy(float)
    try:
        law = fit_budget_transfer(q, losses, domains=domains, solve_all=solve_all)  # domains in parallel
    except BadInput as exc:
        return {**out, "reason": f"not fitted: {exc}"}
    budgets = sorted(float(b) for b in pd.unique(final["budget"]))
    out.update({"runs": int(len(final)), "budgets": [budgets[0], budgets[-1]],
                "rmse": dict(zip(domains, map(float, law.rmse))),
                "noise_sd": dict(zip(domains, map(float, sd))),
                "transfer": {d: dict(zip(domains, map(float, row))) for d, row in zip(domains, law.transfer)},
                "exponents": dict(zip(domains, map(float, law.b)))})
    units = np.array([float((available or {}).get(d, np.inf)) for d in domains])
    caps = epoch_caps(target, units, max_epochs) if available else None
    point = budget_transfer_optimum(law, target, metric=metric, caps=caps, starts=starts)
    out["weights"] = dict(zip(domains, map(float, point)))
    worst = float(np.max(law.rmse / sd))
    if not worst <= AGREE:
        return {**out, "reason": f"misses the runs by up to {worst:.2g} noise sd (RMS): not an "
                                 "equally good model"}
    def refit(redrawn: np.ndarray) -> np.ndarray:
        if (redrawn <= 0).any():
            raise ValueError("a redrawn loss is not positive")  # skipped: the law needs L > 0
        law_star = fit_budget_transfer(q, redrawn, ref=law.ref, warm=law, domains=domains)
        return budget_transfer_optimum(law_star, target, metric=metric, caps=caps, starts=[point])

    rows = parametric_draws(refit, losses + law.residuals, np.maximum(sd, law.rmse), draws, seed,
                            solve_all)
    lo, hi = percentile_interval(rows.reshape(-1, len(domains)), level, point) if len(rows) \
        else (point, point)
    return {**out, "used": True, "worst_rmse_in_noise_sd": worst,
            "reason": f"reproduces the runs within {worst:.2g} noise sd (RMS)",
            "intervals": {d: [float(a), float(b)] for d, a, b in zip(domains, lo, hi)},
            "draws": len(rows)}


def widen(intervals: Mapping[str, Sequence[float]], alternative: Mapping[str, Any]) -> dict[str, list[float]]:
    """The envelope of `intervals` and the alternative's intervals, when it is used."""
    if not alternative.get("used"):
        return {d: [float(lo), float(hi)] for d, (lo, hi) in intervals.items()}
    other = alternative["intervals"]
    return {d: [min(float(lo), other[d][0]), max(float(hi), other[d][1])]
            for d, (lo, hi) in intervals.items()}


def pooled_noise_sd(optima: Sequence[Mapping[str, Any]], domains: Sequence[str]) -> dict[str, float | None]:
    """Each domain's loss noise sd, the RMS over the probes that measured it (DDO fits' `noise`)."""
    out: dict[str, float | None] = {}
    for d in domains:
        vals = [((o.get("noise") or {}).get("per_domain_sd") or {}).get(d) for o in optima]
        vals = [float(v) for v in vals if v is not None and math.isfinite(float(v))]
        out[d] = float(np.sqrt(np.mean(np.square(vals)))) if vals else None
    return out
