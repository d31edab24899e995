"""`autoscale-ray ddo RUNS`: the DDO optimum mixture from the perturbation runs of one budget.

Each run contributes its final evaluation; its per-domain token quantities are `w.<domain>` x
`budget`. The base run is found (or named with --base), the surrogate sum_i (x_i + a_i)^(-b_i) + c_i
is fitted to all runs and minimised at the base budget (AutoScale, Kang et al. 2024;
`autoscale_ray.laws.ddo`). The result is a mixture object that `project` reads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.ddo import solve_ddo
from autoscale_ray.mixture import Mixture
from autoscale_ray.runs import RunsTable, read_runs, require_weight_columns

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
    require_weight_columns(table.domains, table.source)
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
