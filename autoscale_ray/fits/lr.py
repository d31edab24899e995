"""`autoscale-ray lr RUNS --target-tokens T`: per-horizon optimal LR and the LR*(D) law.

Each run contributes its final evaluation: (peak `lr`, final `loss`, horizon = its `budget`).
Per horizon a quadratic in log(LR) gives LR*(D); LR*(D) = B * D^(-beta) is fitted over the
horizons and extrapolated to the target (Bjorck et al. 2024; `autoscale_ray.laws.lr_horizon`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any


from autoscale_ray.errors import BadInput
from autoscale_ray.fits.health import lr_health, records, table_units
from autoscale_ray.laws.lr_horizon import DEFAULT_WINDOW, fit_lr_horizon
from autoscale_ray.runs import RunsTable, read_runs

log = logging.getLogger("autoscale_ray")

def lr_law(runs: str | Path | RunsTable, target_tokens: float, *, include_edge: bool = False,
           level: float = 0.95, window: int | None = DEFAULT_WINDOW,
           average_duplicates: bool = False) -> dict[str, Any]:
    """Fit the LR-horizon law on a runs table (path or `RunsTable`) and predict LR* at
    `target_tokens`. Returns the `lr` verb's JSON object."""
    table = runs if isinstance(runs, RunsTable) else read_runs(
        runs, require=["lr", "loss"], average_duplicates=average_duplicates)
    for col in ("lr", "loss"):
        if col not in table.frame.columns:
            raise BadInput(f"missing column `{col}`", table.source, f"add a `{col}` column")
    if not (math.isfinite(target_tokens) and target_tokens > 0):
        raise BadInput(f"target tokens {target_tokens} is not a positive number", "--target-tokens")
    final = table.final()
    short = final.loc[final["tokens"] < final["budget"], "run_id"].tolist()
    if short:
        log.warning("%s: %d run(s) end before their budget, their last loss is not a final loss: "
                    "%s", table.source, len(short), ", ".join(map(str, short[:10])))
    try:
        law = fit_lr_horizon(final["lr"].to_numpy(float), final["loss"].to_numpy(float),
                             final["budget"].to_numpy(float), include_edge=include_edge,
                             level=level, window=window)
    except BadInput as exc:  # the law names its arguments; name the file too
        raise BadInput(str(exc), table.source) from None
    lo, hi = law.interval(target_tokens)
    used_tokens = [h.tokens for h in law.horizons if h.used]
    factor = target_tokens / max(used_tokens)
    findings = table_units(table, final, lr=True)
    findings += lr_health(law, final, target=target_tokens, factor=factor, window=window)
    return {
        "B": law.B, "beta": law.beta, "beta_se": law.beta_se,
        "lr_at_target": float(law.predict(target_tokens)), "lr_interval": [lo, hi],
        "level": level, "interval_method": law.method, "target_tokens": target_tokens,
        "extrapolation_factor": factor,
        "n_horizons_used": law.n_used, "include_edge": include_edge,
        "per_horizon": [h.to_json() for h in law.horizons],
        "warnings": records(findings, table.source),
    }
