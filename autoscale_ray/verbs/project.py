"""`autoscale-ray project MIX1.json MIX2.json [...] --target-tokens T`: the AutoScale projection.

Reads the DDO optima at two or more budgets (mixture files), fits log N_i = alpha_i + s log r_i on a
shared latent scale and evaluates it at the s whose total is T (AutoScale, Kang et al. 2024;
`autoscale_ray.laws.projection`). Domains at DDO's bound at a source are reported in `at_bound`;
--min-weight re-imposes a floor on the projected weights (0, the default, is the paper's rule).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.projection import fit_projection, floor_weights
from autoscale_ray.mixture import Mixture, read_mixture
from autoscale_ray.verbs.output import finite_number, format_table, parse_tokens


def project(mixtures: Sequence[str | Path | Mixture], target_tokens: float, *,
            min_weight: float = 0.0) -> Mixture:
    """Project optimal mixtures (files or `Mixture`s, any order) to `target_tokens`."""
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
        "floored": [d for d, f in zip(domains, floored) if f],
        "source_at_bound": source_at_bound,
        "quantities": dict(zip(domains, map(float, weights * target_tokens))),
    }
    return Mixture(tokens=float(target_tokens), weights=dict(zip(domains, map(float, weights))),
                   at_bound=tuple(d for d in domains if d in bound), extra=extra)


def human(mix: Mixture) -> str:
    e = mix.extra
    rows = [[d, w, e["ratios"][d], e["quantities"][d],
             "floored" if d in e["floored"] else ("yes" if d in mix.at_bound else "")]
            for d, w in mix.weights.items()]
    table = format_table(["domain", "weight", "ratio r", "tokens", "at bound"], rows)
    srcs = ", ".join(f"{s['tokens']:.4g}" for s in e["sources"])
    fit = f"; log-fit RMSE {e['rmse_log']:.3g}" if len(e["sources"]) > 2 else ""
    return (f"{table}\n\nprojected to {mix.tokens:.4g} tokens from optima at {srcs} tokens "
            f"(exponent s = {e['exponent']:.4f}{fit})")


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    mix = project(args.mixtures, args.target_tokens, min_weight=args.min_weight)
    return mix.to_json(), human(mix)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "project", help="AutoScale projection of optimal mixtures to a target budget",
        description="From DDO optima at two or more budgets, N_i(k) = N_i(1) r_i^(k-1) "
                    "(AutoScale, Kang et al. 2024) solved for the exponent that reaches the target "
                    "budget; three or more sources are fitted by least squares on a shared scale.")
    p.add_argument("mixtures", nargs="+", metavar="MIX.json", help="mixture files (two or more)")
    p.add_argument("--target-tokens", required=True, type=parse_tokens, metavar="T",
                   help="target budget in tokens (e.g. 2e11 or 200B)")
    p.add_argument("--min-weight", type=finite_number, default=0.0, metavar="W",
                   help="floor on every projected weight, the rest renormalised (default 0: none)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=_run)
