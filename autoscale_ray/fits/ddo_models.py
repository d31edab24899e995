"""Model uncertainty of a DDO optimum: the other surrogate as an equally good explanation.

DDO's two surrogates (the paper's additive one, and per-domain losses with transfer between
domains) are different models of the same runs. Where both explain the design runs to within
the measured noise, the data cannot tell them apart, and the gap between their optima is model
uncertainty the bootstrap of one model cannot show (it is how the paper's surrogate misses
transfer between real domains). The other surrogate's optimum is then kept in
`model_alternatives` and the weights' intervals are widened to contain it; the projection
carries it to the target the same way.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autoscale_ray.errors import BadInput
from autoscale_ray.fits.ddo import SURROGATES, ddo
from autoscale_ray.mixture import Mixture
from autoscale_ray.runs import RunsTable

AGREE = 2.0  # the other model must reproduce the design runs' objectives within 2 noise sd (RMS)


def objective_rmse(mix: Mixture) -> float:
    """RMS error of a DDO fit's objective over its runs, in objective units."""
    e = mix.extra
    if e["surrogate"] == "paper":
        return float(e["rmse"]) * float(e["objective_base"])
    base = np.array([e["base_losses"][d] for d in mix.weights])
    w = np.array([e["eval_weights"][d] for d in mix.weights])
    res = np.array([[r[d] for d in mix.weights] for r in e["residuals"].values()])
    return float(np.sqrt(np.mean(((res * base) @ w) ** 2))) if res.size else math.nan


def with_other_surrogate(table: RunsTable, mix: Mixture, **fit: Any) -> Mixture:
    """`mix` (a DDO fit of `table`) with the other surrogate's optimum in `model_alternatives`
    and its intervals widened to it, when that surrogate reproduces the runs within AGREE noise
    sd; `mix` unchanged (with the reason in `model_check`) otherwise. `fit`: the arguments `mix`
    was fitted with (base, metric, design, ...)."""
    noise = (mix.extra.get("noise") or {}).get("objective_sd")
    other = next(s for s in SURROGATES if s != mix.extra["surrogate"])
    if not noise:
        return _checked(mix, f"{other} not compared: the noise is not measured")
    try:
        alt = ddo(table, **{**fit, "surrogate": other, "bootstrap": 0})
    except BadInput as exc:
        return _checked(mix, f"{other} not fitted: {exc}")
    rmse = objective_rmse(alt)
    if not (math.isfinite(rmse) and rmse <= AGREE * noise):
        return _checked(mix, f"{other} misses the runs by {rmse:.3g} RMS (noise sd {noise:.3g}): "
                             "not an equally good model")
    intervals = {d: [min(lo, alt.weights[d]), max(hi, alt.weights[d])]
                 for d, (lo, hi) in mix.extra["intervals"].items()}
    extra = {**mix.extra, "intervals": intervals,
             "model_alternatives": {other: dict(alt.weights)},
             "model_check": f"{other} reproduces the runs within {rmse:.3g} RMS (noise sd {noise:.3g})"}
    return Mixture(tokens=mix.tokens, weights=dict(mix.weights), at_bound=mix.at_bound, extra=extra)


def _checked(mix: Mixture, why: str) -> Mixture:
    return Mixture(tokens=mix.tokens, weights=dict(mix.weights), at_bound=mix.at_bound,
                   extra={**mix.extra, "model_alternatives": {}, "model_check": why})
