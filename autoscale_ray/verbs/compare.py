"""`autoscale-ray compare OUT1 OUT2 ... [--seeds K] [--budget T] [--out DIR] [--config CONFIG.yaml]`:
train each finished search's recommendation and the uniform mixture at the target, K seeds each,
in one Tune experiment; per-arm losses with intervals, paired differences, each search's compute."""

from __future__ import annotations

import argparse
from typing import Any

from autoscale_ray.verbs.arguments import parse_tokens


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from autoscale_ray.comparison import compare, table

    budget = None if args.budget is None else int(args.budget)
    result = compare(args.outs, seeds=args.seeds, budget=budget, out=args.out, config=args.config,
                     address=args.address, dashboard=not args.no_dashboard)
    where = args.out or "results/compare"
    return result, table(result) + f"\n\ncomparison.json, comparison.md and comparison.png in {where}"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("compare", help="train searches' recommendations at the target and compare",
                              description="Each finished search's recommended mixture (and the uniform "
                                          "one) trained at the target budget with K seeds in one Tune "
                                          "experiment: losses with intervals, paired differences, and "
                                          "the compute each search spent.")
    p.add_argument("outs", nargs="+", metavar="OUT", help="finished search folders (the --out of `run`)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per arm (default 3)")
    p.add_argument("--budget", type=parse_tokens, default=None, metavar="T",
                   help="tokens of every target run (default: the searches' common target)")
    p.add_argument("--out", default=None, help="output folder (default results/compare)")
    p.add_argument("--config", default=None,
                   help="the training setup (corpus, model, resources) from this config file "
                        "(default: the first search's, from its folder)")
    p.add_argument("--address", default=None, help="the Ray cluster to join (as for `run`)")
    p.add_argument("--no-dashboard", action="store_true", help="a fresh local Ray starts without its dashboard")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)
