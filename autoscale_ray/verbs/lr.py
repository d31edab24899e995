"""`autoscale-ray lr RUNS --target-tokens T`: per-horizon optimal LR and the LR*(D) law.

Each run contributes its final evaluation: (peak `lr`, final `loss`, horizon = its `budget`).
Per horizon a quadratic in log(LR) gives LR*(D); LR*(D) = B * D^(-beta) is fitted over the
horizons and extrapolated to the target (Bjorck et al. 2024; `autoscale_ray.laws.lr_horizon`).
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.lr_horizon import DEFAULT_WINDOW, fit_lr_horizon
from autoscale_ray.runs import RunsTable, read_runs
from autoscale_ray.verbs.output import finite_number, format_table, parse_tokens

log = logging.getLogger("autoscale_ray")

def lr_law(runs: str | Path | RunsTable, target_tokens: float, *, include_edge: bool = False,
           level: float = 0.95, window: int | None = DEFAULT_WINDOW) -> dict[str, Any]:
    """Fit the LR-horizon law on a runs table (path or `RunsTable`) and predict LR* at
    `target_tokens`. Returns the `lr` verb's JSON object."""
    table = runs if isinstance(runs, RunsTable) else read_runs(runs, require=["lr", "loss"])
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
    return {
        "B": law.B, "beta": law.beta, "beta_se": law.beta_se,
        "lr_at_target": float(law.predict(target_tokens)), "lr_interval": [lo, hi],
        "level": level, "interval_method": law.method, "target_tokens": target_tokens,
        "extrapolation_factor": target_tokens / max(used_tokens),
        "n_horizons_used": law.n_used, "include_edge": include_edge,
        "per_horizon": [h.to_json() for h in law.horizons],
    }


def human(obj: dict[str, Any]) -> str:
    rows = [[h["tokens"], h["lr_star"], h["n_lrs"], "yes" if h["at_edge"] else "no",
             "yes" if h["used"] else "no", h["reason"]] for h in obj["per_horizon"]]
    table = format_table(["horizon (tokens)", "LR*", "LRs", "at edge", "used", "note"], rows)
    lo, hi = obj["lr_interval"]
    interval = "no interval" if not np.isfinite([lo, hi]).all() else \
        f"{obj['level']:.0%} interval [{lo:.3g}, {hi:.3g}]"
    return (f"{table}\n\nLR*(D) = {obj['B']:.4g} * D^(-{obj['beta']:.4f})  "
            f"(beta s.e. {obj['beta_se']:.3g}, {obj['n_horizons_used']} horizons)\n"
            f"LR* at {obj['target_tokens']:.4g} tokens: {obj['lr_at_target']:.4g}  ({interval}, "
            f"{obj['extrapolation_factor']:.3g}x the largest horizon)")


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    obj = lr_law(args.runs, args.target_tokens, include_edge=args.include_edge, level=args.level,
                 window=None if args.window == 0 else args.window)
    return obj, human(obj)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "lr", help="per-horizon optimal LR and the LR*(D) = B D^-beta law",
        description="Fit final loss vs log(LR) with a quadratic at each horizon (a run's budget), "
                    "then LR*(D) = B * D^(-beta) across horizons (Bjorck et al. 2024), and predict "
                    "LR* at the target horizon with an interval. Horizons whose best LR sits at the "
                    "edge of the LR grid are reported and left out unless --include-edge.")
    p.add_argument("runs", metavar="RUNS", help="runs table (CSV/Parquet) with lr, loss, budget")
    p.add_argument("--target-tokens", required=True, type=parse_tokens, metavar="T",
                   help="target horizon in tokens (e.g. 2e11 or 200B)")
    p.add_argument("--include-edge", action="store_true",
                   help="use horizons whose optimum is not bracketed by the LR grid (extrapolated)")
    p.add_argument("--level", type=finite_number, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                   help="grid LRs each side of the best one used in each quadratic; 0 = all "
                        f"(default {DEFAULT_WINDOW})")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=_run)
