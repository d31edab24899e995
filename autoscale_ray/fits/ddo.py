"""`autoscale-ray ddo RUNS`: the DDO optimum mixture from the perturbation runs of one budget.

Each run contributes its final evaluation; its per-domain token quantities are `w.<domain>` x
`budget`. The base run is found (or named with --base), the surrogate sum_i (x_i + a_i)^(-b_i) + c_i
is fitted to all runs and minimised at the base budget (AutoScale, Kang et al. 2024;
`autoscale_ray.laws.ddo`). With `surrogate="transfer"` each domain's own loss `loss.<domain>` is
fitted instead, in an effective token count every domain contributes to
(`autoscale_ray.laws.ddo_transfer`), and the objective is computed from the predicted losses.
The result is a mixture object that `project` reads.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from autoscale_ray.checks import check_bootstrap
from autoscale_ray.errors import BadInput
from autoscale_ray.fits.mixture_health import check_ddo_columns, ddo_report, design_hint
from autoscale_ray.laws.ddo import solve_ddo
from autoscale_ray.laws.ddo_transfer import OBJECTIVES, TransferResult, solve_ddo_transfer
from autoscale_ray.laws.evidence import contradictions
from autoscale_ray.laws.noise import DEFAULT_LEVEL, SolveAll, replicate_sd, solve_each
from autoscale_ray.fits.uncertainty import BOOTSTRAP, ddo_uncertainty, objective_noise
from autoscale_ray.mixture import Mixture
from autoscale_ray.runs import LOSS_PREFIX, RunsTable, read_runs, require_weight_columns

log = logging.getLogger("autoscale_ray")

AMBIGUITY_WARN = 0.005  # weight change above which equally good fits are worth a warning
SURROGATES = ("paper", "transfer")
# The floor of the base-normalised objective: a loss or a perplexity ratio is never below 0, so
# the surrogate's constant C (its value with unlimited data of every domain) may not be either.
FLOORS = {"mean-loss": 0.0, "mean-ppl": 0.0}


def ddo(runs: str | Path | RunsTable, *, base: str | None = None, metric: str = "mean-loss",
        down: float = 0.2, up: float = 3.0, design: str = "auto", min_multiplier: float = 0.2,
        average_duplicates: bool = False, surrogate: str = "paper",
        eval_weights: Mapping[str, float] | None = None,
        design_runs: Collection[str] | None = None, declared_factors: bool = False,
        level: float = DEFAULT_LEVEL, bootstrap: int = BOOTSTRAP, seed: int = 0,
        solve_all: SolveAll = solve_each) -> Mixture:
    """DDO on a runs table (path or `RunsTable`). Returns the optimum as a `Mixture` at the base
    run's budget; fit details (multipliers, per-domain responses, residuals) are in `extra`.
    `surrogate`: "paper" (additive, fitted to the objective) or "transfer" (per-domain losses with
    cross-domain transfer; `eval_weights` weight its mean-loss / mean-ppl, default uniform).
    `design_runs`: the run_ids of the perturbation design when the table also holds runs of
    refinement rounds (centred elsewhere); those enter the fit relative to the design's base.
    Runs that contradict the surrogate's decreasing response are named in `contradicted`.
    `declared_factors`: --down/--up were given, so factors the runs do not have are BadInput
    (else a `design` warning). Fit health: `design_reason`, `extrapolation_factor`, `warnings`.

    Uncertainty (fits/uncertainty.py): the base run's replicates (same mixture, other seeds)
    measure the noise; `snr` is each domain's largest effect on the objective against it, and
    `intervals` the `level` percentile intervals of the optimal weights over `bootstrap`
    parametric redraws of the runs (seeded by `seed`; `solve_all` refits them, laws/noise.py), widened
    to every equally good fit."""
    if surrogate not in SURROGATES:
        raise BadInput(f"unknown DDO surrogate `{surrogate}`", "--surrogate",
                       f"use one of: {', '.join(SURROGATES)}")
    check_bootstrap(bootstrap, BOOTSTRAP, "redraws")
    table_source = runs.source if isinstance(runs, RunsTable) else str(runs)
    if surrogate == "transfer" and metric not in OBJECTIVES:
        raise BadInput(f"the transfer surrogate cannot express metric `{metric}` from per-domain "
                       "losses", table_source, "use --metric mean-loss or mean-ppl, or --surrogate "
                       "paper to fit a custom metric column")
    needs_loss = metric in ("mean-loss", "mean-ppl") or surrogate == "transfer"
    table = runs if isinstance(runs, RunsTable) else read_runs(
        runs, require=["weights", "loss"] if needs_loss else ["weights"],
        average_duplicates=average_duplicates)
    source = table.source
    require_weight_columns(table.domains, source, columns=table.frame.columns)
    for name, value in (("--down", down), ("--up", up)):
        if not value > 0:
            raise BadInput(f"{name} {value} is not a positive factor", name, "give e.g. --down 0.2 --up 3")
    final = table.final()
    if design_runs is not None:  # the design first, then the refinement runs, each in table order
        inside = final["run_id"].astype(str).isin(set(design_runs))
        final = pd.concat([final[inside], final[~inside]], ignore_index=True)
        n_design = int(inside.sum())
    else:
        n_design = len(final)
    check_ddo_columns(table, final)
    health = dict(declared=(down, up), explicit=declared_factors, n_design=n_design)
    run_ids = final["run_id"].astype(str).tolist()
    base_index = None
    if base is not None:
        if base not in run_ids:
            raise BadInput(f"base run `{base}` not found", source,
                           f"use one of: {', '.join(run_ids[:10])}")
        base_index = run_ids.index(base)
    if surrogate == "transfer":
        return _ddo_transfer(table, final, run_ids, base_index, n_design, metric=metric, down=down,
                             up=up, design=design, min_multiplier=min_multiplier,
                             eval_weights=eval_weights, health=health,
                             uncertainty=dict(level=level, draws=bootstrap, seed=seed,
                                              solve_all=solve_all))
    objective = table.objective(metric, final)
    quantities = table.quantities(final)
    try:
        res = solve_ddo(quantities[:n_design], objective[:n_design], base=base_index, design=design,
                        factors=(down, up), lower=min_multiplier, names=run_ids[:n_design],
                        domains=table.domains, floor=FLOORS.get(metric, -math.inf),
                        extra_quantities=quantities[n_design:], extra_objective=objective[n_design:])
    except BadInput as exc:  # the law names the runs; add the file
        raise BadInput(str(exc) + design_hint(table, final), source) from None
    d, fit, opt = res.design, res.fit, res.optimum
    names = table.domains
    n_fit = len(fit.residuals)
    resid_sd = res.base_objective * fit.rmse * math.sqrt(n_fit / max(fit.dof, 1))
    sigma, measured = objective_noise(objective[:n_design], d.base_runs, resid_sd, fit.dof)
    # the redraws' sd: the replicates' noise, or the fit's residual sd where the surrogate misses
    # the runs by more than that (lack of fit, seen once refinement runs leave it residuals)
    redraw = max(sigma, resid_sd) if fit.dof > 0 and math.isfinite(resid_sd) else sigma

    def refit(y: np.ndarray) -> np.ndarray:
        return solve_ddo(quantities[:n_design], y[:n_design], base=d.base, design=d.kind,
                         factors=(down, up), lower=min_multiplier, floor=FLOORS.get(metric, -math.inf),
                         extra_quantities=quantities[n_design:],
                         extra_objective=y[n_design:], warm=fit).optimum.weights

    uncertainty = ddo_uncertainty(
        objective=objective[:n_design], base_runs=d.base_runs, perturbed=d.perturbed, names=names,
        sigma=sigma, measured_from=measured, redraw_sigma=redraw,
        fitted=objective + fit.residuals * res.base_objective, solve=refit, point=opt.weights,
        alternatives=res.alternative_weights, source=source,
        per_domain_sd=_loss_sd(table, final, d.base_runs), level=level, draws=bootstrap, seed=seed,
        solve_all=solve_all)
    if res.weight_spread > AMBIGUITY_WARN:
        log.warning("%s: %d other surrogate fit(s) explain the runs as well and move a weight by up "
                    "to %.3g; add more factors per domain (e.g. 0.5 and 2) or replicate seeds",
                    source, len(fit.alternatives), res.weight_spread)
    extra: dict[str, Any] = {
        **_common_extra("paper", d, run_ids, metric, min_multiplier, opt, fit, names),
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
        **_contradictions(objective[:n_design], d, names, source),
        **uncertainty,
        "source": source,
    }
    extra.update(ddo_report(table, final, d, extra, at_bound=[names[i] for i in opt.at_bound],
                            x_opt=opt.multipliers, floor=FLOORS.get(metric), **health))
    return Mixture(tokens=float(res.base_quantities.sum()),
                   weights=dict(zip(names, map(float, opt.weights))),
                   at_bound=tuple(names[i] for i in opt.at_bound), extra=extra)


def _per_domain_losses(table: RunsTable, final: Any, metric: str,
                       eval_weights: Mapping[str, float] | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The final `loss.<domain>` columns in the training domains' order, and the eval weights;
    BadInput when a training domain has no loss column, a loss column is of an untrained domain,
    or the table's `loss` is not the (eval-weighted) mean the transfer surrogate predicts."""
    fix = "add a `loss.<domain>` column for every training domain, or use --surrogate paper"
    missing = [d for d in table.domains if d not in table.loss_domains]
    if missing:
        raise BadInput("the transfer surrogate needs each domain's own validation loss: no "
                       f"column {', '.join(LOSS_PREFIX + d for d in missing)}", table.source, fix)
    untrained = [d for d in table.loss_domains if d not in table.domains]
    if untrained:
        raise BadInput("the transfer surrogate models the loss of training domains only: "
                       f"{', '.join(LOSS_PREFIX + d for d in untrained)} has no `w.` column",
                       table.source, "drop those loss columns, or use --surrogate paper")
    losses = final[[LOSS_PREFIX + d for d in table.domains]].to_numpy(dtype=float)
    e = None
    if eval_weights is not None:
        unknown = sorted(set(eval_weights) - set(table.domains))
        if unknown:
            raise BadInput(f"eval mixture names unknown domains: {', '.join(unknown)}", table.source,
                           f"use domains among: {', '.join(table.domains)}")
        e = np.array([float(eval_weights.get(d, 0.0)) for d in table.domains])
    if metric == "mean-loss" and "loss" in final.columns:
        # the objective the search minimises is `loss`; the surrogate predicts sum_j e_j L_j
        mean = losses @ (np.full(len(table.domains), 1 / len(table.domains)) if e is None
                         else e / e.sum())
        off = np.abs(final["loss"].to_numpy(dtype=float) - mean) > 1e-6 * np.abs(mean)
        if off.any():
            r = int(np.argmax(off))
            raise BadInput(f"run `{final['run_id'].iloc[r]}`: `loss` is not the "
                           f"{'eval-weighted ' if e is not None else ''}mean of the `loss.<domain>` "
                           "columns, which the transfer surrogate predicts", table.source,
                           "drop the `loss` column (it defaults to that mean), or use --surrogate paper")
    return losses, e


def _ddo_transfer(table: RunsTable, final: Any, run_ids: list[str], base_index: int | None,
                  n_design: int, *, metric: str, down: float, up: float, design: str,
                  min_multiplier: float, eval_weights: Mapping[str, float] | None,
                  health: Mapping[str, Any], uncertainty: Mapping[str, Any]) -> Mixture:
    losses, e = _per_domain_losses(table, final, metric, eval_weights)
    quantities = table.quantities(final)
    try:
        res: TransferResult = solve_ddo_transfer(
            quantities[:n_design], losses[:n_design], metric=metric, eval_weights=e, base=base_index,
            design=design, factors=(down, up), lower=min_multiplier, names=run_ids[:n_design],
            domains=table.domains, extra_quantities=quantities[n_design:],
            extra_losses=losses[n_design:])
    except BadInput as exc:  # the law names the runs; add the file
        raise BadInput(str(exc) + design_hint(table, final), table.source) from None
    d, fit, opt = res.design, res.fit, res.optimum
    names = table.domains
    objective = table.objective(metric, final)
    sigma, measured = objective_noise(objective[:n_design], d.base_runs, math.nan, 0)
    loss_sd = replicate_sd(losses[list(d.base_runs)])
    resid_sd = fit.rmse * fit.base_losses * math.sqrt(len(losses) / max(fit.dof, 1))
    redraw = loss_sd
    if fit.dof > 0:  # each domain's residual sd where it exceeds the replicates' (lack of fit)
        redraw = resid_sd if measured is None else np.maximum(loss_sd, resid_sd)
        measured = measured or "residuals"

    def refit(ell: np.ndarray) -> np.ndarray:
        return solve_ddo_transfer(
            quantities[:n_design], ell[:n_design], metric=metric, eval_weights=e, base=d.base,
            design=d.kind, factors=(down, up), lower=min_multiplier,
            extra_quantities=quantities[n_design:], extra_losses=ell[n_design:],
            warm=fit).optimum.weights

    unc = ddo_uncertainty(
        objective=objective[:n_design], base_runs=d.base_runs, perturbed=d.perturbed, names=names,
        sigma=sigma, measured_from=measured, redraw_sigma=redraw,
        fitted=losses + fit.residuals * fit.base_losses, solve=refit, point=opt.weights,
        alternatives=(), source=table.source, per_domain_sd=loss_sd, **uncertainty)
    extra: dict[str, Any] = {
        **_common_extra("transfer", d, run_ids, metric, min_multiplier, opt, fit, names),
        "eval_weights": dict(zip(names, map(float, fit.eval_weights))),
        # transfer[j][i]: tokens of training domain i counted toward validation domain j's law
        "transfer": {j: {i: float(fit.transfer[r, k]) for k, i in enumerate(names)}
                     for r, j in enumerate(names)},
        "base_losses": dict(zip(names, map(float, fit.base_losses))),
        "losses_predicted": dict(zip(names, map(float, opt.losses))),
        "objective_base": res.base_objective,
        "objective_predicted": opt.objective,
        "objective_predicted_ratio": opt.objective / res.base_objective,
        "rmse": float(np.sqrt(np.mean(fit.residuals ** 2))),
        "rmse_per_domain": dict(zip(names, map(float, fit.rmse))),
        "dof": fit.dof,
        "n_runs": len(run_ids),
        "residuals": {run: dict(zip(names, map(float, row)))
                      for run, row in zip(run_ids, fit.residuals)},
        "perturbations": {run_ids[r]: {"domain": names[i], "factor": f}
                          for r, (i, f) in enumerate(zip(d.perturbed, d.factors)) if i >= 0},
        "weight_spread": 0.0,  # one fit per domain is kept; its ties go to the earliest start
        **_contradictions(objective[:n_design], d, names, table.source),
        **unc,
        "source": table.source,
    }
    extra.update(ddo_report(table, final, d, extra, at_bound=[names[i] for i in opt.at_bound],
                            x_opt=opt.multipliers, floor=0.0, **health))
    return Mixture(tokens=float(res.base_quantities.sum()),
                   weights=dict(zip(names, map(float, opt.weights))),
                   at_bound=tuple(names[i] for i in opt.at_bound), extra=extra)


def _loss_sd(table: RunsTable, final: Any, base_runs: Sequence[int]) -> np.ndarray | None:
    """Each domain's loss sd over the base replicates (None without `loss.<domain>` columns)."""
    cols = [LOSS_PREFIX + d for d in table.domains]
    if not all(c in final.columns for c in cols):
        return None
    return replicate_sd(final[cols].to_numpy(dtype=float)[list(base_runs)])


def _common_extra(surrogate: str, d: Any, run_ids: Sequence[str], metric: str,
                  min_multiplier: float, opt: Any, fit: Any, names: Sequence[str]) -> dict[str, Any]:
    """The fit details both surrogates report: the design, the optimum's multipliers and each
    domain's response (a, b, c)."""
    return {
        "surrogate": surrogate,
        "base": run_ids[d.base],
        "base_replicates": [run_ids[r] for r in d.base_runs],
        "design": d.kind,
        "metric": metric,
        "min_multiplier": min_multiplier,
        "multipliers": dict(zip(names, map(float, opt.multipliers))),
        "responses": {n: {"a": float(a), "b": float(b), "c": float(c)}
                      for n, a, b, c in zip(names, fit.a, fit.b, fit.c)},
    }


def _contradictions(objective: np.ndarray, d: Any, names: Sequence[str], source: str) -> dict[str, Any]:
    """`contradicted` (domains) and `contradictions` (what their runs did), with a warning: runs
    the surrogate's decreasing response cannot pass through (laws/evidence.py)."""
    found = contradictions(objective, d.base_runs, d.perturbed, d.factors, d.kind)
    named = {names[i]: what for i, what in sorted(found.items())}
    if named:
        log.warning("%s: the runs of %s contradict DDO's surrogate (%s): their optimum is not "
                    "evidence of a trend and is not extrapolated", source, ", ".join(named),
                    "; ".join(f"{n}: {', '.join(w)}" for n, w in named.items()))
    return {"contradicted": list(named), "contradictions": named}
