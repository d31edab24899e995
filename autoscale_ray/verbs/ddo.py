"""`autoscale-ray ddo RUNS`: the DDO optimum mixture from the perturbation runs of one budget.

Each run contributes its final evaluation; its per-domain token quantities are `w.<domain>` x
`budget`. The base run is found (or named with --base), the surrogate sum_i (x_i + a_i)^(-b_i) + c_i
is fitted to all runs and minimised at the base budget (AutoScale, Kang et al. 2024;
`autoscale_ray.laws.ddo`). The result is a mixture object that `project` reads.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.ddo import solve_ddo
from autoscale_ray.mixture import Mixture
from autoscale_ray.runs import RunsTable, read_runs
from autoscale_ray.verbs.output import finite_number, format_table

log = logging.getLogger("autoscale_ray")

AMBIGUITY_WARN = 0.005  # weight change above which equally good fits are worth a warning


def ddo(runs: str | Path | RunsTable, *, base: str | None = None, metric: str = "mean-loss",
        down: float = 0.2, up: float = 3.0, design: str = "auto", min_multiplier: float = 0.2,
        average_duplicates: bool = False) -> Mixture:
    """DDO on a runs table (path or `RunsTable`). Returns the optimum as a `Mixture` at the base
    run's budget; fit details (multipliers, per-domain responses, residuals) are in `extra`."""
    table = runs if isinstance(runs, RunsTable) else read_runs(
        runs, require=["weights", "loss"] if metric in ("mean-loss", "mean-ppl") else ["weights"],
        average_duplicates=average_duplicates)
    if not table.domains:
        raise BadInput("no mixture-weight columns `w.<domain>`", table.source,
                       "add one `w.<domain>` column per training domain")
    for name, value in (("--down", down), ("--up", up)):
        if not value > 0:
            raise BadInput(f"{name} {value} is not a positive factor", name, "give e.g. --down 0.2 --up 3")
    final = table.final()
    run_ids = final["run_id"].astype(str).tolist()
    base_index = None
    if base is not None:
        if base not in run_ids:
            raise BadInput(f"base run `{base}` not found", table.source,
                           f"use one of: {', '.join(run_ids[:10])}")
        base_index = run_ids.index(base)
    objective = table.objective(metric, final)
    try:
        res = solve_ddo(table.quantities(final), objective, base=base_index, design=design,
                        factors=(down, up), lower=min_multiplier, names=run_ids,
                        domains=table.domains)
    except BadInput as exc:  # the law names the runs; add the file
        raise BadInput(str(exc), table.source) from None
    d, fit, opt = res.design, res.fit, res.optimum
    names = table.domains
    if res.weight_spread > AMBIGUITY_WARN:
        log.warning("%s: %d other surrogate fit(s) explain the runs as well and move a weight by up "
                    "to %.3g; add more factors per domain (e.g. 0.5 and 2) or replicate seeds",
                    table.source, len(fit.alternatives), res.weight_spread)
    extra: dict[str, Any] = {
        "base": run_ids[d.base],
        "base_replicates": [run_ids[r] for r in d.base_runs],
        "design": d.kind,
        "metric": metric,
        "min_multiplier": min_multiplier,
        "multipliers": dict(zip(names, map(float, opt.multipliers))),
        "responses": {n: {"a": float(a), "b": float(b), "c": float(c)}
                      for n, a, b, c in zip(names, fit.a, fit.b, fit.c)},
        "constant": fit.constant,  # sum of the c_i: only the total is identified
        "objective_base": res.base_objective,
        "objective_predicted": opt.objective * res.base_objective,
        "objective_predicted_ratio": opt.objective,
        "rmse": fit.rmse,
        "dof": fit.dof,
        "n_runs": len(run_ids),
        "residuals": dict(zip(run_ids, map(float, fit.residuals))),
        "perturbations": {run_ids[r]: {"domain": names[i], "factor": f}
                          for r, (i, f) in enumerate(zip(d.perturbed, d.factors)) if i >= 0},
        "weight_spread": res.weight_spread,
        "source": table.source,
    }
    return Mixture(tokens=float(res.base_quantities.sum()),
                   weights=dict(zip(names, map(float, opt.weights))),
                   at_bound=tuple(names[i] for i in opt.at_bound), extra=extra)


def human(mix: Mixture) -> str:
    e = mix.extra
    rows = [[d, e["multipliers"][d], w, e["responses"][d]["a"], e["responses"][d]["b"],
             "yes" if d in mix.at_bound else ""] for d, w in mix.weights.items()]
    table = format_table(["domain", "multiplier", "weight", "a", "b", "at bound"], rows)
    spread = (f"; equally good fits move a weight by up to {e['weight_spread']:.3g}"
              if e["weight_spread"] > AMBIGUITY_WARN else "")
    return (f"{table}\n\nDDO at {mix.tokens:.4g} tokens, base `{e['base']}`, design {e['design']}, "
            f"{e['n_runs']} runs, metric {e['metric']}\n"
            f"predicted objective {e['objective_predicted']:.5g} (base {e['objective_base']:.5g}, "
            f"ratio {e['objective_predicted_ratio']:.4f}); fit RMSE {e['rmse']:.3g} with "
            f"{e['dof']} residual dof{spread}")


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    mix = ddo(args.runs, base=args.base, metric=args.metric, down=args.down, up=args.up,
              design=args.design, min_multiplier=args.min_multiplier,
              average_duplicates=args.average_duplicates)
    return mix.to_json(), human(mix)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "ddo", help="DDO optimum mixture from the perturbation runs of one budget",
        description="Direct Data Optimization (AutoScale, Kang et al. 2024): from a base run and, "
                    "per domain, runs with its token quantity scaled down and up, fit "
                    "y = sum_i (x_i + a_i)^(-b_i) + c_i to the normalised objective and minimise it "
                    "at the base budget. Prints a mixture object that `project` reads.")
    p.add_argument("runs", metavar="RUNS", help="runs table (CSV/Parquet) with w.<domain> columns")
    p.add_argument("--base", metavar="ID", help="run_id of the base run (default: found)")
    p.add_argument("--metric", default="mean-loss",
                   help="objective: mean-loss (default), mean-ppl (the paper's) or a column name")
    p.add_argument("--down", type=finite_number, default=0.2, help="declared down factor (default 0.2)")
    p.add_argument("--up", type=finite_number, default=3.0, help="declared up factor (default 3)")
    p.add_argument("--design", choices=["auto", "fixed-others", "fixed-total"], default="auto",
                   help="perturbation design (default: detected)")
    p.add_argument("--min-multiplier", type=finite_number, default=0.2, metavar="X",
                   help="lower bound on each domain's multiple of its base quantity (default 0.2)")
    p.add_argument("--average-duplicates", action="store_true",
                   help="average repeated evaluations of a run at the same tokens")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=_run)
