"""The `lr` verb: arguments and human text over `autoscale_ray.fits.lr`."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from autoscale_ray.fits import lr as fits_lr
from autoscale_ray.fits.lr import lr_law
from autoscale_ray.laws.lr_horizon import DEFAULT_WINDOW
from autoscale_ray.formatting import format_table, health_lines
from autoscale_ray.verbs.arguments import (add_average_duplicates, finite_number, parse_tokens,
                                           verb_parser)


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
            f"{obj['extrapolation_factor']:.3g}x the largest horizon)"
            + health_lines(obj["extrapolation_factor"], obj["warnings"],
                           "the target over the largest fitted horizon"))


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    obj = lr_law(args.runs, args.target_tokens, include_edge=args.include_edge, level=args.level,
                 window=None if args.window == 0 else args.window,
                 average_duplicates=args.average_duplicates)
    return obj, human(obj)


def register(subparsers: Any) -> None:
    p = verb_parser(subparsers, "lr", _run,
                    "per-horizon optimal LR and the LR*(D) = B D^-beta law",
                    fits_lr, runs="runs table (CSV/Parquet) with lr, loss, budget")
    p.add_argument("--target-tokens", required=True, type=parse_tokens, metavar="T",
                   help="target horizon in tokens (e.g. 2e11 or 200B)")
    p.add_argument("--include-edge", action="store_true",
                   help="use horizons whose optimum is not bracketed by the LR grid (extrapolated)")
    p.add_argument("--level", type=finite_number, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--window", type=int, default=DEFAULT_WINDOW,
                   help="grid LRs each side of the best one used in each quadratic; 0 = all "
                        f"(default {DEFAULT_WINDOW})")
    add_average_duplicates(p)
