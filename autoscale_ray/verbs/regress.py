"""The `regress` verb: arguments and human text over `autoscale_ray.fits.regress`."""

from __future__ import annotations

import argparse
from typing import Any

from autoscale_ray.fits import regress as fits_regress
from autoscale_ray.fits.regress import CV_FOLDS, regress
from autoscale_ray.formatting import format_table, health_lines
from autoscale_ray.verbs.arguments import add_average_duplicates, parse_tokens, verb_parser


def human(obj: dict[str, Any]) -> str:
    budget = f" of budget {obj['budget']:.4g}" if obj["budget"] is not None else ""
    lines = [f"ridge regression of `{obj['target']}` on {len(obj['domains'])} domain weights from "
             f"{obj['n_runs']} runs{budget} (alpha {obj['alpha']:.3g}, eps {obj['eps']:.3g}, "
             f"leave-one-out RMSE {obj['loo_rmse']:.4g})"]
    if "cv_spearman" in obj:
        lines.append(f"{CV_FOLDS}-fold CV: Spearman {obj['cv_spearman']:.4f}, "
                     f"RMSE {obj['cv_rmse']:.4g}")
    if "predictions" in obj:
        lines += ["", format_table(["row", "predicted"],
                                   [[i + 1, p] for i, p in enumerate(obj["predictions"])])]
    if "best_mixture" in obj:
        best = obj["best_mixture"]
        lines += ["", f"best mixture ({'highest' if obj['maximize'] else 'lowest'} predicted; "
                      f"mean of the top {best['top_k']} of {best['n_samples']} "
                      f"samples, {best['n_in_support']} within the runs' range), predicted "
                      f"{best['predicted']:.4g}:",
                  format_table(["domain", "weight"], sorted(best["weights"].items(),
                                                            key=lambda kv: -kv[1]))]
    return "\n".join(lines) + health_lines(obj["extrapolation_factor"], obj["warnings"],
                                           "a mixture's weight over the runs' largest")


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    obj = regress(args.runs, args.target, args.predict, search=args.search, top_k=args.top_k,
                  seed=args.seed, maximize=args.maximize, budget=args.budget,
                  average_duplicates=args.average_duplicates)
    return obj, human(obj)


def register(subparsers: Any) -> None:
    p = verb_parser(subparsers, "regress", _run,
                    "regression baseline (RegMix-style): predict a target from mixture weights",
                    fits_regress, runs="runs table (CSV/Parquet) with w.<domain> columns")
    p.add_argument("--target", required=True, metavar="COL",
                   help="column to predict: loss, loss.<domain>, or any numeric column")
    p.add_argument("--predict", metavar="MIXES",
                   help="table (CSV/Parquet) of mixtures with the runs' w.<domain> columns")
    p.add_argument("--search", type=int, default=0, metavar="K",
                   help="Dirichlet samples for RegMix's mixture search (RegMix: 100000; 0: none)")
    p.add_argument("--top-k", type=int, default=128, help="samples averaged by the search")
    p.add_argument("--seed", type=int, default=0, help="seed of the CV folds and the search")
    p.add_argument("--maximize", action="store_true",
                   help="the target is higher-is-better (an accuracy): search its maximum")
    p.add_argument("--budget", type=parse_tokens, default=None, metavar="B",
                   help="keep only the runs of this budget (e.g. 1e9 or 1B)")
    add_average_duplicates(p)
