"""The `ddo` verb: arguments and human text over `autoscale_ray.fits.ddo`."""

from __future__ import annotations

import argparse
from typing import Any

from autoscale_ray.fits import ddo as fits_ddo
from autoscale_ray.fits.ddo import AMBIGUITY_WARN, SURROGATES, ddo
from autoscale_ray.fits.uncertainty import BOOTSTRAP
from autoscale_ray.mixture import Mixture
from autoscale_ray.formatting import format_table, health_lines
from autoscale_ray.verbs.arguments import add_average_duplicates, finite_number, verb_parser


def human(mix: Mixture) -> str:
    e = mix.extra
    level = int(round(100 * e["interval_level"]))
    rows = [[d, e["multipliers"][d], w, f"[{e['intervals'][d][0]:.4g}, {e['intervals'][d][1]:.4g}]",
             "-" if e["snr"][d] is None else e["snr"][d], e["responses"][d]["a"],
             e["responses"][d]["b"], "yes" if d in mix.at_bound else ""]
            for d, w in mix.weights.items()]
    table = format_table(["domain", "multiplier", "weight", f"{level}% interval", "signal/noise",
                          "a", "b", "at bound"], rows)
    noise = e["noise"]
    if noise["measured_from"] is None:
        table += ("\n\nnoise: not measured (one base run): the intervals hold the equally good fits "
                  "only; replicate seeds of the base run measure it")
    else:
        redraws = (f"{e['bootstrap']['used']} parametric redraws" if e["bootstrap"]["draws"]
                   else "the equally good fits only (--bootstrap 0)")
        table += (f"\n\nnoise: objective sd {noise['objective_sd'] or float('nan'):.3g} from "
                  f"{noise['replicates']} base {noise['measured_from']}; intervals from {redraws}"
                  + (f"; within noise: {', '.join(e['within_noise'])}" if e["within_noise"] else ""))
    spread = (f"; equally good fits move a weight by up to {e['weight_spread']:.3g}"
              if e["weight_spread"] > AMBIGUITY_WARN else "")
    surrogate = e.get("surrogate", "paper")
    if surrogate == "transfer":
        names = list(mix.weights)
        matrix = format_table(["loss of", *names],
                              [[j, *[e["transfer"][j][i] for i in names]] for j in names])
        table += (f"\n\ntransfer t_ji: tokens of column i counted toward row j's loss (1 on the "
                  f"diagonal: a domain's own tokens)\n{matrix}")
    return (f"{table}\n\nDDO at {mix.tokens:.4g} tokens, base `{e['base']}`, design {e['design']} "
            f"({e['design_reason']}), {e['n_runs']} runs, metric {e['metric']}, surrogate {surrogate}\n"
            f"predicted objective {e['objective_predicted']:.5g} (base {e['objective_base']:.5g}, "
            f"ratio {e['objective_predicted_ratio']:.4f}); fit RMSE {e['rmse']:.3g} with "
            f"{e['dof']} residual dof{spread}"
            + health_lines(e["extrapolation_factor"], e["warnings"],
                           "the optimum's largest multiplier over the largest sampled one"))


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    declared = args.down is not None or args.up is not None
    mix = ddo(args.runs, base=args.base, metric=args.metric,
              down=0.2 if args.down is None else args.down, up=3.0 if args.up is None else args.up,
              design=args.design, min_multiplier=args.min_multiplier,
              average_duplicates=args.average_duplicates, surrogate=args.surrogate,
              declared_factors=declared, bootstrap=args.bootstrap, seed=args.seed)
    return mix.to_json(), human(mix)


def register(subparsers: Any) -> None:
    p = verb_parser(subparsers, "ddo", _run,
                    "DDO optimum mixture from the perturbation runs of one budget",
                    fits_ddo, runs="runs table (CSV/Parquet) with w.<domain> columns")
    p.add_argument("--base", metavar="ID", help="run_id of the base run (default: found)")
    p.add_argument("--metric", default="mean-loss",
                   help="objective: mean-loss (default), mean-ppl (the paper's) or a column name")
    p.add_argument("--down", type=finite_number, default=None,
                   help="declared down factor (default 0.2); given, the runs must have it")
    p.add_argument("--up", type=finite_number, default=None,
                   help="declared up factor (default 3); given, the runs must have it")
    p.add_argument("--design", choices=["auto", "fixed-others", "fixed-total"], default="auto",
                   help="perturbation design (default: detected)")
    p.add_argument("--min-multiplier", type=finite_number, default=0.2, metavar="X",
                   help="lower bound on each domain's multiple of its base quantity (default 0.2)")
    p.add_argument("--surrogate", choices=list(SURROGATES), default="paper",
                   help="paper: the additive surrogate fitted to the objective (default); transfer: "
                        "per-domain losses (loss.<domain>) with cross-domain transfer")
    p.add_argument("--bootstrap", type=int, default=BOOTSTRAP, metavar="K",
                   help=f"parametric redraws of the runs for the weights' intervals (0: off, the "
                        f"intervals then hold the equally good fits only; default {BOOTSTRAP})")
    p.add_argument("--seed", type=int, default=0, help="redraws' seed (default 0)")
    add_average_duplicates(p)
