"""The `law` verb: arguments and human text over `autoscale_ray.fits.law`."""

from __future__ import annotations

import argparse
from typing import Any

from autoscale_ray.fits import law as fits_law
from autoscale_ray.fits.law import NAMES, law
from autoscale_ray.laws.loss_law import FORM_ND
from autoscale_ray.formatting import format_table, health_lines
from autoscale_ray.verbs.arguments import add_average_duplicates, add_min_tokens, verb_parser


def _text(obj: dict[str, Any]) -> str:
    rows = []
    for k in NAMES:
        if obj[k] is None:
            continue
        lo_hi = obj["interval"][k]
        rows.append([k, float(obj[k]), obj["stderr"][k],
                     "" if lo_hi is None else f"[{lo_hi[0]:.4g}, {lo_hi[1]:.4g}]"])
    level = f"{100 * obj['level']:g}% interval" if obj["level"] else "interval"
    lines = [f"{obj['form']} = E + " + ("A / N^alpha + " if obj["form"] == FORM_ND else "")
             + "B / D^beta",
             format_table(["param", "estimate", "bootstrap SE", level], rows),
             f"points: {obj['n_points']}   Huber objective (sum): {obj['objective']:.6g}"
             + (f"   bootstrap replicates: {obj['n_bootstrap']}" if obj["n_bootstrap"] else "")]
    if "are" in obj:
        h = obj["held_out"]
        lines.append(f"ARE on the held-out largest model (N={h['params']:.4g}, {h['n_points']} late "
                     f"checkpoints): {100 * obj['are']:.3g}%")
    reach = ("the held-out size over the largest fitted one" if "are" in obj
             else "no prediction beyond the fitted runs")
    return "\n".join(lines) + health_lines(obj["extrapolation_factor"], obj["warnings"], reach)


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    obj = law(args.runs, min_tokens=args.min_tokens, holdout_largest=args.holdout_largest,
              bootstrap=args.bootstrap, seed=args.seed, average_duplicates=args.average_duplicates)
    return obj, _text(obj)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = verb_parser(subparsers, "law", _run,
                    "fit L(N, D) (or L(D)) to all checkpoints; ARE on the largest model",
                    fits_law, runs="runs table (.csv or .parquet)")
    add_min_tokens(p)
    p.add_argument("--holdout-largest", action="store_true",
                   help="fit without the largest model and report the ARE on its last 30%% of "
                        "checkpoints")
    p.add_argument("--bootstrap", type=int, default=100, metavar="K",
                   help="bootstrap replicates for standard errors and intervals (0: off; "
                        "default 100)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    add_average_duplicates(p)
