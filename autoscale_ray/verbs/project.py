"""The `project` verb: arguments and human text over `autoscale_ray.fits.project`."""

from __future__ import annotations

import argparse
from typing import Any

from autoscale_ray.fits import project as fits_project
from autoscale_ray.fits.project import project
from autoscale_ray.mixture import Mixture
from autoscale_ray.formatting import format_table, health_lines
from autoscale_ray.verbs.arguments import finite_number, parse_tokens, verb_parser


def human(mix: Mixture) -> str:
    e = mix.extra
    rows = [[d, w, e["ratios"][d], e["quantities"][d],
             "floored" if d in e["floored"] else ("yes" if d in mix.at_bound else "")]
            for d, w in mix.weights.items()]
    table = format_table(["domain", "weight", "ratio r", "tokens", "at bound"], rows)
    srcs = ", ".join(f"{s['tokens']:.4g}" for s in e["sources"])
    fit = f"; log-fit RMSE {e['rmse_log']:.3g}" if len(e["sources"]) > 2 else ""
    floor = f"; floor {e['min_weight']:.3g} per weight" if e["min_weight"] else ""
    return (f"{table}\n\nprojected to {mix.tokens:.4g} tokens from optima at {srcs} tokens "
            f"(exponent s = {e['exponent']:.4f}{fit}{floor})"
            + health_lines(e["extrapolation_factor"], e["warnings"],
                           "the target over the largest source"))


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    mix = project(args.mixtures, args.target_tokens, min_weight=args.min_weight)
    return mix.to_json(), human(mix)


def register(subparsers: Any) -> None:
    p = verb_parser(subparsers, "project", _run,
                    "AutoScale projection of optimal mixtures to a target budget",
                    fits_project)
    p.add_argument("mixtures", nargs="+", metavar="MIX.json", help="mixture files (two or more)")
    p.add_argument("--target-tokens", required=True, type=parse_tokens, metavar="T",
                   help="target budget in tokens (e.g. 2e11 or 200B)")
    p.add_argument("--min-weight", type=finite_number, default=None, metavar="W",
                   help="floor on every projected weight, the rest renormalised (default: the "
                        "sources' DDO bound, min_multiplier x the smallest base weight; 0: none)")
