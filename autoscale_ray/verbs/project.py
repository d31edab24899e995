"""The `project` verb: arguments and human text over `autoscale_ray.fits.project`."""

from __future__ import annotations

import argparse
from typing import Any

from autoscale_ray.fits import project as fits_project
from autoscale_ray.fits.project import project
from autoscale_ray.laws.epochs import MAX_EPOCHS
from autoscale_ray.mixture import Mixture, read_available
from autoscale_ray.formatting import format_table, health_lines
from autoscale_ray.verbs.arguments import finite_number, parse_tokens, verb_parser


def human(mix: Mixture) -> str:
    e = mix.extra
    level = int(round(100 * e["interval_level"]))
    rows = [[d, w, f"[{e['intervals'][d][0]:.4g}, {e['intervals'][d][1]:.4g}]", e["ratios"][d],
             e["quantities"][d], "floored" if d in e["floored"] else ("yes" if d in mix.at_bound else ""),
             f"capped ({e['epochs'][d]:.3g} epochs)" if d in e["capped"] else
             (f"{e['epochs'][d]:.3g}" if d in e["epochs"] else "")]
            for d, w in mix.weights.items()]
    table = format_table(["domain", "weight", f"{level}% interval", "ratio r", "tokens", "at bound",
                          "epochs"], rows)
    srcs = ", ".join(f"{s['tokens']:.4g}" for s in e["sources"])
    fit = f"; log-fit RMSE {e['rmse_log']:.3g}" if len(e["sources"]) > 2 else ""
    floor = f"; floor {e['min_weight']:.3g} per weight" if e["min_weight"] else ""
    if e["bootstrap"]["draws"] == 0:
        floor += "; no interval: the sources carry no bootstrap draws"
    if not e["data_feasible"]:
        floor += f"; the data cannot fill the target within {e['max_epochs']:g} epochs"

    return (f"{table}\n\nprojected to {mix.tokens:.4g} tokens from optima at {srcs} tokens "
            f"(exponent s = {e['exponent']:.4f}{fit}{floor})"
            + health_lines(e["extrapolation_factor"], e["warnings"],
                           "the target over the largest source"))


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    available = read_available(args.available) if args.available else None
    mix = project(args.mixtures, args.target_tokens, min_weight=args.min_weight,
                  available=available, max_epochs=args.max_epochs)
    return mix.to_json(), human(mix)


def register(subparsers: Any) -> None:
    p = verb_parser(subparsers, "project", _run,
                    "AutoScale projection of optimal mixtures to a target budget",
                    fits_project)
    p.add_argument("mixtures", nargs="+", metavar="MIX.json", help="mixture files (two or more)")
    p.add_argument("--target-tokens", required=True, type=parse_tokens, metavar="T",
                   help="target budget in tokens (e.g. 2e11 or 200B)")
    p.add_argument("--min-weight", type=finite_number, default=0.0, metavar="W",
                   help="floor on every projected weight, the rest renormalised (default 0: none, "
                        "as `run`; domains at a source's DDO bound are named in a warning)")
    p.add_argument("--available", default=None, metavar="FILE",
                   help="tokens available per domain: JSON {domain: tokens}, or CSV/TSV with "
                        "columns domain,tokens; no domain is repeated over --max-epochs")
    p.add_argument("--max-epochs", type=finite_number, default=MAX_EPOCHS, metavar="E",
                   help=f"most epochs of any domain's data at the target (default {MAX_EPOCHS:g}, "
                        "Muennighoff et al. 2023)")
