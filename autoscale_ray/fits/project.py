"""`autoscale-ray project MIX1.json MIX2.json [...] --target-tokens T`: the AutoScale projection.

Reads the DDO optima at two or more budgets (mixture files), fits log N_i = alpha_i + s log r_i on a
shared latent scale and evaluates it at the s whose total is T (AutoScale, Kang et al. 2024;
`autoscale_ray.laws.projection`). Domains at DDO's bound at a source are reported in `at_bound`;
--min-weight re-imposes a floor on the projected weights (0, the default, is the paper's rule, as
`run` uses: a domain at DDO's bound is reported, not floored). A target at or below the largest
source, or beyond 1e6x it, is refused.

Intervals: when the sources carry DDO's bootstrap draws (`bootstrap_weights`), draw k of every
source is projected as the point is, and the percentile intervals of the projected weights are
reported in `intervals`. Data availability: with the domains' available tokens (--available) no
domain's data is repeated more than --max-epochs times at the target (default 4, Muennighoff et
al. 2023); the capped domains are held at the cap and the rest redistributed
(`autoscale_ray.laws.epochs`), and named in `capped`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from autoscale_ray.errors import BadInput
from autoscale_ray.fits.mixture_health import check_projection_target, project_report
from autoscale_ray.laws.epochs import MAX_EPOCHS, cap_epochs
from autoscale_ray.laws.evidence import log_quantity_sigma
from autoscale_ray.laws.noise import DEFAULT_LEVEL, percentile_interval
from autoscale_ray.laws.projection import ProjectionFit, fit_projection, floor_weights, shares_log_linear
from autoscale_ray.mixture import Mixture, read_mixture


def project(mixtures: Sequence[str | Path | Mixture], target_tokens: float, *,
            min_weight: float = 0.0, guard: bool = True,
            available: Mapping[str, float] | None = None, max_epochs: float = MAX_EPOCHS,
            level: float = DEFAULT_LEVEL) -> Mixture:
    """Project optimal mixtures (files or `Mixture`s, any order) to `target_tokens`.

    With `guard`, a domain's shift between the sources is extrapolated only as far as the
    sources' own uncertainty supports (laws/evidence.py): the uncertainty of a source's weight is
    its `weight_spread` (the largest weight change over equally good DDO fits) and the spread of
    its bootstrap draws, and a domain a source names as `contradicted` (its runs contradict the
    surrogate) has no usable shift. `available`: tokens per domain (domains left out are not
    capped); `max_epochs` caps their repetition at the target."""
    if not (isinstance(max_epochs, (int, float)) and math.isfinite(max_epochs) and max_epochs > 0):
        raise BadInput(f"maximum epochs {max_epochs} is not a positive number", "--max-epochs",
                       "give e.g. --max-epochs 4 (Muennighoff et al. 2023)")
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
    units = _available(available, domains)
    q = np.array([[mix.weights[d] * mix.tokens for d in domains] for mix, _ in loaded])
    sources = [mix for mix, _ in loaded]
    sigma = _shift_sigma(sources, domains)
    where = ", ".join(w for _, w in loaded)
    try:
        fit, weights, floored, cap = _project_once(q, sigma, guard, target_tokens, min_weight,
                                                   units, max_epochs)
    except BadInput as exc:
        raise BadInput(str(exc), where) from None
    draws = _projected_draws(sources, domains, sigma, guard, target_tokens, min_weight, units,
                             max_epochs)
    alternatives = _projected_alternatives(sources, domains, sigma, guard, target_tokens,
                                           min_weight, units, max_epochs)
    # the projection's own model uncertainty: shares linear in log budget fit the sources as well
    # as AutoScale's rule; the interval pools both rules' draws (equal weight) and holds both points
    other_rule = lambda shares: _linear_once(shares, sources, target_tokens, min_weight, units, max_epochs)  # noqa: E731
    alternatives["shares-log-linear"] = other_rule(np.array([[m.weights[d] for d in domains] for m in sources]))
    pooled = np.vstack([draws, *[other_rule(k) for k in _aligned_draws(sources, domains)]]) \
        if len(draws) else draws
    include = np.vstack([weights, *alternatives.values()])
    lo, hi = percentile_interval(pooled, level, include) if len(pooled) else \
        (include.min(axis=0), include.max(axis=0))
    source_at_bound = {where: list(mix.at_bound) for mix, where in loaded if mix.at_bound}
    bound = {d for mix, _ in loaded for d in mix.at_bound} | {d for d, f in zip(domains, floored) if f}
    extra = {
        "exponent": fit.exponent(target_tokens),
        "ratios": dict(zip(domains, map(float, fit.ratios))),
        "sources": [{"path": where, "tokens": mix.tokens, "scale": float(sc)}
                    for (mix, where), sc in zip(loaded, fit.scales)],
        "rmse_log": fit.rmse_log,
        "min_weight": min_weight,
        "guard": {"sigma_log": dict(zip(domains, map(float, sigma))), "applied": bool(guard and (sigma > 0).any())},
        "floored": [d for d, f in zip(domains, floored) if f],
        "intervals": {d: [float(a), float(b)] for d, a, b in zip(domains, lo, hi)},
        "interval_level": level,
        "bootstrap": {"draws": int(len(draws))},
        "max_epochs": max_epochs,
        "available": None if available is None else {d: float(units[i]) for i, d in
                                                     enumerate(domains) if np.isfinite(units[i])},
        "capped": [d for d, c in zip(domains, cap.capped) if c],
        "epochs": {d: float(e) for d, e, u in zip(domains, cap.epochs, units) if np.isfinite(u)},
        "data_feasible": cap.feasible,
        "bootstrap_weights": draws.tolist(),
        "model_alternatives": {k: dict(zip(domains, map(float, v))) for k, v in alternatives.items()},
        "source_at_bound": source_at_bound,
        "quantities": dict(zip(domains, map(float, weights * target_tokens))),
    }
    extra.update(project_report([m.tokens for m, _ in loaded], fit.rmse_log, target_tokens,
                                extra["exponent"],
                                extra["floored"],
                                sorted({d for m, _ in loaded for d in m.at_bound}),
                                ", ".join(w for _, w in loaded)))
    return Mixture(tokens=float(target_tokens), weights=dict(zip(domains, map(float, weights))),
                   at_bound=tuple(d for d in domains if d in bound), extra=extra)


def _project_once(q: np.ndarray, sigma: np.ndarray, guard: bool, target: float, min_weight: float,
                  units: np.ndarray, max_epochs: float):
    """(fit, weights, floored mask, EpochCap) of one projection of source quantities `q`."""
    fit: ProjectionFit = fit_projection(q)
    if guard and (sigma > 0).any():
        fit = fit.guarded(q, sigma)
    quantities = fit.quantities(fit.exponent(target))
    cap = cap_epochs(quantities / quantities.sum(), target, units, max_epochs)
    weights, floored = floor_weights(cap.weights, min_weight)
    return fit, weights, floored, cap


def _linear_once(shares: np.ndarray, sources: Sequence[Mixture], target: float, min_weight: float,
                 units: np.ndarray, max_epochs: float) -> np.ndarray:
    """The shares-log-linear rule's weights at the target, capped and floored as the point is."""
    w = shares_log_linear(shares, np.array([m.tokens for m in sources]), target)
    return floor_weights(cap_epochs(w, target, units, max_epochs).weights, min_weight)[0]


def _aligned_draws(sources: Sequence[Mixture], domains: Sequence[str]) -> list[np.ndarray]:
    """Draw k of every source's weights (sources x domains), for every k all sources have."""
    per_source = [np.asarray(m.extra.get("bootstrap_weights") or [], dtype=float) for m in sources]
    n = min(len(d) for d in per_source)
    return [np.array([d[k] for d in per_source]) for k in range(n)
            if all(d.ndim == 2 and d.shape[1] == len(domains) for d in per_source)]


def _projected_draws(sources: Sequence[Mixture], domains: Sequence[str], sigma: np.ndarray,
                     guard: bool, target: float, min_weight: float, units: np.ndarray,
                     max_epochs: float) -> np.ndarray:
    """Draw k of every source projected as the point is (rows); empty when a source has no
    draws. A source's draws are aligned by index (each source's bootstrap is seeded alike)."""
    per_source = [np.asarray(m.extra.get("bootstrap_weights") or [], dtype=float) for m in sources]
    n = min(len(d) for d in per_source)
    rows = []
    for k in range(n):
        q = np.array([d[k] * m.tokens for d, m in zip(per_source, sources)])
        if q.shape[1] != len(domains) or not (q > 0).all():
            continue
        try:
            rows.append(_project_once(q, sigma, guard, target, min_weight, units, max_epochs)[1])
        except BadInput:
            continue
    return np.array(rows).reshape(-1, len(domains))


def _projected_alternatives(sources: Sequence[Mixture], domains: Sequence[str], sigma: np.ndarray,
                            guard: bool, target: float, min_weight: float, units: np.ndarray,
                            max_epochs: float) -> dict[str, np.ndarray]:
    """The projection of each other model's optima that every source carries
    (`model_alternatives`, fits/ddo_models.py): model uncertainty the intervals contain."""
    names = set.intersection(*[set(m.extra.get("model_alternatives") or {}) for m in sources])
    out = {}
    for name in sorted(names):
        q = np.array([[m.extra["model_alternatives"][name][d] * m.tokens for d in domains]
                      for m in sources])
        if (q > 0).all():
            try:
                out[name] = _project_once(q, sigma, guard, target, min_weight, units, max_epochs)[1]
            except BadInput:
                continue
    return out


def _available(available: Mapping[str, float] | None, domains: Sequence[str]) -> np.ndarray:
    """Available tokens per domain in `domains` order (inf: not known, never capped)."""
    if available is None:
        return np.full(len(domains), np.inf)
    unknown = sorted(set(available) - set(domains))
    if unknown:
        raise BadInput(f"the availability names unknown domain(s): {', '.join(unknown)}",
                       "--available", f"use domains among: {', '.join(domains)}")
    for d, v in available.items():
        if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
            raise BadInput(f"available tokens of `{d}` are {v!r}, not a positive count",
                           "--available", "give each domain's tokens as a positive number")
    return np.array([float(available.get(d, np.inf)) for d in domains])


def _shift_sigma(sources: Sequence[Mixture], domains: Sequence[str]) -> np.ndarray:
    """Per domain, the uncertainty of log N_i(largest) - log N_i(smallest): the two sources'
    relative weight uncertainties in quadrature (the larger of the spread over equally good fits
    and the bootstrap draws' sd); infinite for a domain either one contradicts."""
    ends = (sources[0], sources[-1])
    var = np.zeros(len(domains))
    for mix in ends:
        spread = np.full(len(domains), float(mix.extra.get("weight_spread") or 0.0))
        draws = np.asarray(mix.extra.get("bootstrap_weights") or [], dtype=float)
        if draws.ndim == 2 and len(draws) >= 2 and draws.shape[1] == len(domains):
            spread = np.maximum(spread, draws.std(axis=0, ddof=1))
        w = np.array([mix.weights[d] for d in domains])
        var += log_quantity_sigma(w, spread) ** 2
        bad = set(mix.extra.get("contradicted") or ())
        var[[i for i, d in enumerate(domains) if d in bad]] = np.inf
    return np.sqrt(var)
