"""`autoscale-ray law RUNS`: fit L(N, D) = E + A / N^alpha + B / D^beta (or L(D) = E + B / D^beta)
to every checkpoint of a runs table, optionally judged by its error on the held-out largest model.

Every row (run at one checkpoint) with tokens > 0 is a data point. L(N, D) is fitted when the
`params` column has >= 2 distinct model sizes, else L(D). `--min-tokens X` drops early checkpoints:
X >= 1 is an absolute token count (rows with tokens < X go), X < 1 a fraction of each run's budget
(rows with tokens < X x budget go). `--holdout-largest` fits on all but the largest model and
reports ARE = mean |L - L_hat| / L on its checkpoints in the last 30% of its training.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from autoscale_ray.checks import check_bootstrap
from autoscale_ray.errors import BadInput
from autoscale_ray.fits.health import EXTRAPOLATION_LIMIT, law_health, records, table_units
from autoscale_ray.laws.health import extrapolation_findings
from autoscale_ray.laws.loss_law import (LossLaw, absolute_relative_error,
                                         bootstrap_loss_law, fit_loss_law, largest_model_holdout,
                                         min_tokens_mask)
from autoscale_ray.runs import read_runs

log = logging.getLogger("autoscale_ray")

NAMES = ("E", "A", "B", "alpha", "beta")


def law(runs: str | Path, *, min_tokens: float | None = None, holdout_largest: bool = False,
        bootstrap: int = 100, seed: int = 0, average_duplicates: bool = False) -> dict[str, Any]:
    """Fit the loss law to a runs table (CSV or Parquet); returns the JSON object of the verb:
    E, A, B, alpha, beta (A, alpha None for L(D)), form, n_points, objective, stderr and interval
    (bootstrap; None values without it), and `are` (a fraction) with `holdout_largest`."""
    check_bootstrap(bootstrap, 200)
    table = read_runs(runs, require=("loss",), average_duplicates=average_duplicates)
    frame = table.frame
    if "params" in frame.columns and frame["params"].isna().any():
        row = frame.loc[frame["params"].isna()].iloc[0]
        raise BadInput(f"missing `params` for run `{row['run_id']}` at tokens={row['tokens']:g}",
                       table.source, "give every row its model size, or drop the `params` column")
    keep = np.array(frame["tokens"] > 0, dtype=bool)  # writable (pandas may return read-only views)
    if not keep.all():
        log.info("%s: leaving out %d evaluation(s) at tokens=0 (log D undefined)",
                 table.source, int((~keep).sum()))
    if (frame["loss"] <= 0).any():
        row = frame.loc[frame["loss"] <= 0].iloc[0]
        raise BadInput(f"loss {row['loss']:g} <= 0 for run `{row['run_id']}` at tokens="
                       f"{row['tokens']:g}", table.source, "losses are cross-entropies, > 0")
    if min_tokens is not None:
        keep &= min_tokens_mask(frame["tokens"], frame["budget"], min_tokens)
        if not keep.any():
            raise BadInput(f"no evaluation left after --min-tokens {min_tokens:g}", table.source,
                           "lower --min-tokens")
    loss = frame["loss"].to_numpy(dtype=float)
    tokens = frame["tokens"].to_numpy(dtype=float)
    sizes = frame["params"].to_numpy(dtype=float) if "params" in frame.columns else None

    held: dict[str, Any] | None = None
    if holdout_largest:
        if sizes is None or np.unique(sizes).size < 3:
            n = 0 if sizes is None else np.unique(sizes).size
            raise BadInput(f"--holdout-largest needs >= 3 model sizes (2 to fit L(N, D) on, the "
                           f"largest to judge it), found {n}", table.source,
                           "add runs of other sizes (a `params` column) or drop --holdout-largest")
        train, late = largest_model_holdout(sizes, frame["run_id"], tokens)
        keep &= train
        late &= tokens > 0
        held = {"params": float(sizes.max()), "n_points": int(late.sum()),
                "runs": sorted(set(frame.loc[late, "run_id"]))}
    if not keep.any():
        raise BadInput("no evaluation left to fit", table.source, "give more checkpoints")
    if holdout_largest and np.unique(sizes[keep]).size < 2:
        raise BadInput("after --min-tokens, fewer than 2 model sizes are left to fit besides the "
                       "largest", table.source, "lower --min-tokens")

    fit_sizes = None
    if sizes is not None and np.unique(sizes[keep]).size >= 2:
        fit_sizes = sizes[keep]
    elif sizes is not None:
        log.info("%s: one model size in the fitted rows: fitting L(D)", table.source)
    try:
        fitted: LossLaw = fit_loss_law(loss[keep], tokens[keep], fit_sizes)
        if bootstrap:
            fitted = bootstrap_loss_law(fitted, loss[keep], tokens[keep], fit_sizes,
                                        replicates=bootstrap, seed=seed)
    except BadInput as exc:  # the law names its arguments; name the file too
        raise BadInput(str(exc), table.source) from None
    out: dict[str, Any] = {"form": fitted.form, **fitted.params(), "n_points": fitted.n_points,
                           "objective": fitted.objective,
                           "stderr": {k: (fitted.stderr or {}).get(k) for k in NAMES},
                           "interval": {k: (list(fitted.interval[k]) if fitted.interval and
                                            k in fitted.interval else None) for k in NAMES},
                           "level": fitted.level, "n_bootstrap": fitted.n_bootstrap,
                           "min_tokens": min_tokens}
    out["extrapolation_factor"] = 1.0
    fitted_rows = frame.loc[keep]
    findings = table_units(table, fitted_rows)
    findings += law_health(fitted.params(), out["interval"] if bootstrap else None,
                           loss=loss[keep], tokens=tokens[keep], sizes=fit_sizes,
                           predicted=fitted.predict(fit_sizes, tokens[keep]),
                           labels=[f"{r}@{t:g}" for r, t in zip(fitted_rows["run_id"], tokens[keep])])
    if held is not None:
        out["are"] = absolute_relative_error(fitted, loss[late], tokens[late], sizes[late])
        out["held_out"] = held
        # how far the judged prediction reaches: the held-out size over the largest fitted one
        out["extrapolation_factor"] = held["params"] / float(sizes[keep].max())
        findings += extrapolation_findings(out["extrapolation_factor"], EXTRAPOLATION_LIMIT["law"],
                                           what="the held-out size over the largest fitted one",
                                           fix="add runs of sizes between them")
    out["warnings"] = records(findings, table.source)
    return out
