"""`autoscale-ray project MIX1.json MIX2.json [...] --target-tokens T`: the AutoScale projection.

Reads the DDO optima at two or more budgets (mixture files), fits log N_i = alpha_i + s log r_i on a
shared latent scale and evaluates it at the s whose total is T (AutoScale, Kang et al. 2024;
`autoscale_ray.laws.projection`). Domains at DDO's bound at a source are reported in `at_bound`;
--min-weight re-imposes a floor on the projected weights; by default the floor of the sources' DDO
bound (min_multiplier x the smallest base weight, as `run` does), 0 for sources without DDO's fit.
A target at or below the largest source, or beyond 1e6x it, is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from autoscale_ray.errors import BadInput
from autoscale_ray.fits.mixture_health import (check_projection_target, default_min_weight,
                                               project_report)
from autoscale_ray.laws.evidence import log_quantity_sigma
from autoscale_ray.laws.projection import fit_projection, floor_weights
from autoscale_ray.mixture import Mixture, read_mixture


def project(mixtures: Sequence[str | Path | Mixture], target_tokens: float, *,
            min_weight: float | None = None, guard: bool = True) -> Mixture:
    """Project optimal mixtures (files or `Mixture`s, any order) to `target_tokens`.

    With `guard`, a domain's shift between the sources is extrapolated only as far as the
    sources' own uncertainty supports (laws/evidence.py): the uncertainty of a source's weight is
    its `weight_spread` (the largest weight change over equally good DDO fits), and a domain a
    source names as `contradicted` (its runs contradict the surrogate) has no usable shift."""
    if len(mixtures) < 2:
        raise BadInput("the projection needs optimal mixtures at two or more budgets", None,
                       "give two or more mixture files")
    loaded = [(m if isinstance(m, Mixture) else read_mixture(m),
               f"<mixture {k + 1}>" if isinstance(m, Mixture) else str(m))
              for k, m in enumerate(mixtures)]
    domains = list(loaded[0][0].weights)
    for mix, where in loaded[1:]:
        if set(mix.weights) != set(domains):
            extra = sorted(set(mix.weights) - set(domains))
            missing = sorted(set(domains) - set(mix.weights))
            raise BadInput(f"unknown domains between files: {', '.join(extra) or '-'} not in "
                           f"{loaded[0][1]}; {', '.join(missing) or '-'} missing", where,
                           "give mixture files over the same domains")
    loaded.sort(key=lambda item: item[0].tokens)
    check_projection_target(target_tokens, [m.tokens for m, _ in loaded],
                            ", ".join(w for _, w in loaded))
    if min_weight is None:
        min_weight = default_min_weight([m for m, _ in loaded])
    for (a, wa), (b, wb) in zip(loaded, loaded[1:]):
        if b.tokens <= a.tokens * (1 + 1e-9):
            raise BadInput(f"two sources at the same budget ({a.tokens:g} tokens)", f"{wa}, {wb}",
                           "give optimal mixtures at different budgets")
    for mix, where in loaded:
        zero = [d for d in domains if mix.weights[d] <= 0]
        if zero:
            raise BadInput(f"domain(s) with zero weight: {', '.join(zero)} (no logarithm to project)",
                           f"{where}, key weights", "give every domain a positive weight, or drop "
                                                    "the domain from every file")
    q = np.array([[mix.weights[d] * mix.tokens for d in domains] for mix, _ in loaded])
    try:
        fit = fit_projection(q)
        sigma = _shift_sigma([mix for mix, _ in loaded], domains)
        if guard and (sigma > 0).any():
            fit = fit.guarded(q, sigma)
        s = fit.exponent(target_tokens)
        quantities = fit.quantities(s)
        weights, floored = floor_weights(quantities / quantities.sum(), min_weight)
    except BadInput as exc:
        raise BadInput(str(exc), ", ".join(w for _, w in loaded)) from None
    source_at_bound = {where: list(mix.at_bound) for mix, where in loaded if mix.at_bound}
    bound = {d for mix, _ in loaded for d in mix.at_bound} | {d for d, f in zip(domains, floored) if f}
    extra = {
        "exponent": s,
        "ratios": dict(zip(domains, map(float, fit.ratios))),
        "sources": [{"path": where, "tokens": mix.tokens, "scale": float(sc)}
                    for (mix, where), sc in zip(loaded, fit.scales)],
        "rmse_log": fit.rmse_log,
        "min_weight": min_weight,
        "guard": {"sigma_log": dict(zip(domains, map(float, sigma))), "applied": bool(guard and (sigma > 0).any())},
        "floored": [d for d, f in zip(domains, floored) if f],
        "source_at_bound": source_at_bound,
        "quantities": dict(zip(domains, map(float, weights * target_tokens))),
    }
    extra.update(project_report([m.tokens for m, _ in loaded], fit.rmse_log, target_tokens, s,
                                extra["floored"],
                                sorted({d for m, _ in loaded for d in m.at_bound}),
                                ", ".join(w for _, w in loaded)))
    return Mixture(tokens=float(target_tokens), weights=dict(zip(domains, map(float, weights))),
                   at_bound=tuple(d for d in domains if d in bound), extra=extra)


def _shift_sigma(sources: Sequence[Mixture], domains: Sequence[str]) -> np.ndarray:
    """Per domain, the uncertainty of log N_i(largest) - log N_i(smallest): the two sources'
    relative weight uncertainties in quadrature; infinite for a domain either one contradicts."""
    ends = (sources[0], sources[-1])
    var = np.zeros(len(domains))
    for mix in ends:
        spread = float(mix.extra.get("weight_spread") or 0.0)
        w = np.array([mix.weights[d] for d in domains])
        var += log_quantity_sigma(w, np.full(len(domains), spread)) ** 2
        bad = set(mix.extra.get("contradicted") or ())
        var[[i for i, d in enumerate(domains) if d in bad]] = np.inf
    return np.sqrt(var)
