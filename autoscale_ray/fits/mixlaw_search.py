"""The mixing-law projector of a search: the mixture x scale law (fits/mixlaw.py, Ye et al. 2024)
fitted on the search's runs at >= 3 probe models, its mixture at (target_params, target_budget).

`mixlaw_answer` returns the recommendation's mixture part: the optimal mixture under the data cap
(w_i <= max_epochs x available_i / D), its interval (the law's bootstrap, each replicate
re-optimised), the expected per-domain losses with their intervals, the chosen form and its
held-out error (fitted without the largest probe model, judged on it), and the replicate noise of
each probe model's base run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from autoscale_ray.errors import BadInput
from autoscale_ray.fits.mixlaw import MixlawFit, bootstrap_laws, fit_mixlaw
from autoscale_ray.laws.epochs import cap_epochs
from autoscale_ray.laws.mixture_optimum import epoch_caps, optimal_mixture
from autoscale_ray.laws.noise import SolveAll, percentile_interval, replicate_sd, solve_each
from autoscale_ray.runs import RunsTable

BOOTSTRAP = 20  # law replicates for the intervals
PREFIX = "mixlaw_"  # run ids of the plan's trials (searchers/mixlaw_plan.py keys, "/" -> "_")


@dataclass(frozen=True)
class MixlawAnswer:
    weights: dict[str, float]
    interval: dict[str, list[float]]
    expected: dict[str, float]
    expected_interval: dict[str, list[float]]
    objective: float
    objective_interval: list[float]
    capped: list[str]
    epochs: dict[str, float]
    at_zero: list[str]
    fit: dict[str, Any]
    noise: dict[str, Any]


def mixlaw_answer(table: RunsTable, *, params: float, tokens: float,
                  available: Mapping[str, float] | None, max_epochs: float, level: float,
                  seed: int = 0, bootstrap: int = BOOTSTRAP, solve_all: SolveAll = solve_each) -> MixlawAnswer:
    """The law fitted on `table` (every row at tokens > 0), the mean loss over the validation
    domains minimised at (params, tokens). Raises BadInput when the runs cannot fit it. `solve_all`
    runs the law's independent fits (in order, or in parallel with the same answer)."""
    fit = fit_mixlaw(table, solve_all=solve_all)
    data = fit.data
    domains, valid = data.domains, data.valid_domains
    e = np.full(len(valid), 1.0 / len(valid))
    avail = np.array([float((available or {}).get(d, np.inf)) for d in domains])
    upper = epoch_caps(tokens, avail, max_epochs) if available else None
    best = fit.optimize(params, tokens, e, upper, seed)
    boots = bootstrap_laws(fit, bootstrap, seed, solve_all) if bootstrap >= 2 else []
    w = np.asarray(best.weights, dtype=float)
    interval: dict[str, list[float]] = {}
    expected_interval: dict[str, list[float]] = {}
    objective_interval = [float(best.objective)] * 2
    draws = [d for d in (_draw(b, w, params, tokens, e, upper, seed) for b in boots) if d is not None]
    if len(draws) >= 2:
        opt = np.array([d[0] for d in draws])
        lo, hi = percentile_interval(opt, level, w[None, :])
        interval = {d: [float(a), float(b)] for d, a, b in zip(domains, lo, hi)}
        at_best = np.stack([d[1] for d in draws])
        lo, hi = percentile_interval(at_best, level, np.asarray(best.losses, dtype=float)[None, :])
        expected_interval = {d: [float(a), float(b)] for d, a, b in zip(valid, lo, hi)}
        olo, ohi = percentile_interval((at_best @ e)[:, None], level, np.array([[best.objective]]))
        objective_interval = [float(olo[0]), float(ohi[0])]
    cap = cap_epochs(w, tokens, avail, max_epochs)
    capped = [domains[i] for i in best.at_cap] if available else []
    return MixlawAnswer(
        weights={d: float(v) for d, v in zip(domains, w)}, interval=interval,
        expected={d: float(v) for d, v in zip(valid, best.losses)},
        expected_interval=expected_interval, objective=float(best.objective),
        objective_interval=objective_interval, capped=capped,
        epochs={d: float(x) for d, x in zip(domains, cap.epochs) if d in (available or {})},
        at_zero=[domains[i] for i in best.at_zero],
        fit={**fit_summary(fit, params, tokens), "bootstrap": len(draws), "bootstrap_drawn": len(boots)},
        noise=replicate_noise(table))


def _draw(law: Any, w: np.ndarray, params: float, tokens: float, e: np.ndarray,
          upper: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """One bootstrap replicate's optimum and its losses at the point's mixture; None when the
    replicate cannot be fitted (a resample of too few distinct mixtures for the mixing law) or
    predicts no finite loss there (an exponent run away on a resample)."""
    try:
        at = law.at(params, tokens)
    except BadInput:
        return None
    losses = at.predict(w)[0]
    if not np.isfinite(losses).all():
        return None
    return optimal_mixture(at, e, upper, seed=seed).weights, losses


def fit_summary(fit: MixlawFit, params: float, tokens: float) -> dict[str, Any]:
    """What the recommendation says of the law: form, held-out errors, the data, extrapolation."""
    data = fit.data
    sizes = sorted(set(data.params.tolist()))
    return {"form": fit.form, "held_out_error": dict(fit.held_out),
            "held_out_params": fit.held_out_params, "sizes": sizes,
            "n_runs": int(np.unique(data.run).size), "n_points": int(data.params.size),
            "params_factor": float(params / max(sizes)), "tokens_factor": float(tokens / data.tokens.max())}


def replicate_noise(table: RunsTable) -> dict[str, Any]:
    """Per probe model and budget ("params/budget"): the sd of the final mean loss over the base
    mixture's seeds, and the spread (max - min) of the final mean loss over the design's runs."""
    final = table.final()
    out: dict[str, Any] = {}
    if "run_id" not in final.columns:
        return out
    final = final[final["run_id"].astype(str).str.startswith(PREFIX)]
    probe = final["run_id"].astype(str).str.rsplit("_", n=1).str[0]  # mixlaw_<model>_<probe>
    for _, runs in final.groupby(probe, sort=True):
        base = runs[runs["run_id"].astype(str).str.contains(r"_base(?:-seed\d+)?$")]
        if base.empty:
            continue
        n, budget = float(base["params"].iloc[0]), int(base["budget"].iloc[0])
        sd = float(replicate_sd(base["loss"].to_numpy(float)[:, None])[0])
        out[f"{n:.6g}/{budget}"] = {"params": n, "budget": budget,
                                    "objective_sd": sd if np.isfinite(sd) else None,
                                    "replicates": int(len(base)),
                                    "spread": float(runs["loss"].max() - runs["loss"].min())}
    return out


def held_out_line(fit: Mapping[str, Any]) -> str:
    """One line naming the law and its held-out error (the recommendation's notes and report)."""
    err = fit["held_out_error"].get(fit["form"])
    held = fit.get("held_out_params")
    return (f"mixing law ({fit['form']} form) fitted on {len(fit['sizes'])} probe model sizes; held-out "
            f"error {100 * err:.2f}% (fitted without the largest, {held:.3g} parameters, judged on it)"
            if err is not None and held is not None else
            f"mixing law ({fit['form']} form) fitted on {len(fit['sizes'])} probe model sizes; no held-out error")
