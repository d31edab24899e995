"""`autoscale-ray regress RUNS --target COL --predict MIXES`: the RegMix-style regression baseline.

Fits ridge regression of the target on the mixture weights of the runs (each run's final
evaluation; `autoscale_ray.laws.regression`), predicts the target for every mixture of MIXES (in
its row order), and with `--search K` returns RegMix's mixture: the mean of the top-128 of K
Dirichlet samples around the runs' mean mixture (the lowest predicted target, or with `--maximize`
the highest). `tokens` is optional (one row per run is then its final evaluation); `--budget B`
keeps the runs of one budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autoscale_ray.errors import BadInput
from autoscale_ray.fits.health import records, regress_health, table_units
from autoscale_ray.laws.checks import not_a_weight, simplex_rows
from autoscale_ray.laws.regression import cross_validate, fit_ridge_mixture, search_mixture
from autoscale_ray.mixture import Mixture
from autoscale_ray.runs import WEIGHT_PREFIX, RunsTable, read_runs, read_table, require_weight_columns

CV_FOLDS = 5
CV_MIN_RUNS = 20  # below this a 5-fold rank correlation says little


def read_mixtures(path: str | Path, domains: tuple[str, ...], runs_source: str, *,
                  sum_tolerance: float | None = None) -> np.ndarray:
    """Read a table of mixtures (CSV/Parquet, one `w.<domain>` column per domain of the runs) as
    rows x domains in the runs' domain order, each row normalised to sum 1 (with `sum_tolerance`,
    a row whose weights do not sum to 1 within it is refused instead)."""
    path = Path(path)
    frame = read_table(path)
    have = [str(c)[len(WEIGHT_PREFIX):] for c in frame.columns if str(c).startswith(WEIGHT_PREFIX)]
    require_weight_columns(have, str(path), f"add columns {', '.join(WEIGHT_PREFIX + d for d in domains)}")
    missing = [d for d in domains if d not in have]
    if missing:
        raise BadInput(f"no column `{WEIGHT_PREFIX}{missing[0]}`, a domain of the runs table "
                       f"{runs_source}", str(path),
                       f"add the column(s) {', '.join(WEIGHT_PREFIX + d for d in missing)}")
    extra = [d for d in have if d not in domains]
    if extra:
        raise BadInput(f"column `{WEIGHT_PREFIX}{extra[0]}` names a domain absent from the runs "
                       f"table {runs_source}", f"{path}, column `{WEIGHT_PREFIX}{extra[0]}`",
                       f"use the runs' domains: {', '.join(domains)}")
    if frame.empty:
        raise BadInput("the table has no rows", str(path), "give at least one mixture")
    cols = [WEIGHT_PREFIX + d for d in domains]
    w = frame[cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)

    def bad_cell(r: int, c: int, _: float) -> BadInput:  # quote the cell as written, not as parsed
        return BadInput(f"weight `{frame[cols[c]].iloc[r]}` is not a finite number >= 0",
                        f"{path}, row {r + 1}, column `{cols[c]}`", "give a weight >= 0")

    if sum_tolerance is not None:
        sums = w.sum(axis=1)
        off = np.flatnonzero(np.isfinite(sums) & (np.abs(sums - 1.0) > sum_tolerance))
        if off.size:
            r = int(off[0])
            raise BadInput(f"the weights sum to {sums[r]:.6g}, not 1", f"{path}, row {r + 1}",
                           "give mixtures on the simplex (each row summing to 1)")
    return simplex_rows(w, [(not_a_weight, bad_cell)], lambda r: BadInput(
        "all mixture weights are zero", f"{path}, row {r + 1}", "give at least one domain a positive weight"))


def regress(runs: str | Path | RunsTable, target: str, predict: str | Path | None = None, *,
            search: int = 0, top_k: int = 128, seed: int = 0, cv: bool = True,
            maximize: bool = False, budget: float | None = None,
            average_duplicates: bool = False) -> dict[str, Any]:
    """Fit the regression baseline on `runs` for column `target` (`loss`, `loss.<domain>` or any
    numeric column), predict the mixtures of the table `predict`, and with `search` > 0 run
    RegMix's search over that many Dirichlet samples (for the lowest target, or the highest with
    `maximize`). `budget` keeps the runs of that budget. Returns the `regress` verb's JSON object."""
    if isinstance(runs, RunsTable):
        table = runs
    else:
        table = read_runs(runs, require=["weights", "loss"] if target == "loss" else ["weights"],
                          average_duplicates=average_duplicates, tokens_required=False)
    require_weight_columns(table.domains, table.source, columns=table.frame.columns)
    final = table.final()
    if budget is not None:
        final = _one_budget(final, budget, table.source)
    y = table.objective(target, frame=final)
    w = table.weights(final)
    sign = -1.0 if maximize else 1.0  # ridge is linear in y: fit -y, search its minimum
    fit = fit_ridge_mixture(w, sign * y)
    obj: dict[str, Any] = {"target": target, "n_runs": len(final), "domains": list(table.domains),
                           "model": "ridge on [w, log(w + eps)]", "alpha": fit.alpha,
                           "eps": fit.eps, "loo_rmse": fit.loo_rmse, "maximize": maximize,
                           "budget": budget}
    if cv and len(final) >= CV_MIN_RUNS:
        result = cross_validate(w, sign * y, folds=CV_FOLDS, seed=seed)
        obj["cv_spearman"], obj["cv_rmse"] = result.spearman, result.rmse
    factor, outside = 1.0, []
    if predict is not None:
        mixes = read_mixtures(predict, table.domains, table.source)
        reach = (mixes / np.maximum(fit.w_max, 1e-12)).max(axis=1)
        factor, outside = max(factor, float(reach.max())), list(np.flatnonzero(reach > 1 + 1e-9) + 1)
        obj["predictions"] = (sign * fit.predict(mixes)).tolist()
    if search < 0:
        raise BadInput(f"--search {search} is negative", "--search",
                       "give a number of samples (RegMix uses 100000) or 0 for no search")
    if search > 0:
        found = search_mixture(fit, n_samples=search, top_k=top_k, seed=seed)
        tokens = float(np.median(final["budget"].to_numpy(float)))
        mix = Mixture(tokens if tokens > 0 else float("nan"),  # no `tokens` column: unknown
                      dict(zip(table.domains, map(float, found.weights))), (),
                      {"predicted": sign * found.predicted, "n_samples": found.n_samples,
                       "n_in_support": found.n_in_support, "top_k": found.top_k})
        obj["best_mixture"] = mix.to_json()
    obj["extrapolation_factor"] = factor
    labels = final["run_id"].astype(str).tolist()
    findings = table_units(table, final, metric=target)
    findings += regress_health(target, y, sign * (sign * y - fit.predict(w)), labels,
                               maximize=maximize, budgets=final["budget"].to_numpy(float),
                               budget_given=budget is not None,
                               cv_spearman=obj.get("cv_spearman"), factor=factor,
                               outside_rows=outside)
    obj["warnings"] = records(findings, table.source)
    return obj


def _one_budget(final: pd.DataFrame, budget: float, source: str) -> pd.DataFrame:
    """The runs whose budget is `budget` (within 1%); BadInput naming the budgets there are."""
    keep = np.isclose(final["budget"].to_numpy(float), budget, rtol=1e-2, atol=0.0)
    if not keep.any():
        there = ", ".join(f"{b:.4g}" for b in np.unique(final["budget"].to_numpy(float))[:8])
        raise BadInput(f"no run has budget {budget:.4g}", source, f"use one of: {there}")
    return final.loc[keep].reset_index(drop=True)
