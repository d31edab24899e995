"""The `mixlaw` verb: arguments and human text over `autoscale_ray.fits.mixlaw`."""

from __future__ import annotations

import argparse
from typing import Any

from autoscale_ray.fits import mixlaw as fits_mixlaw
from autoscale_ray.fits.mixlaw import DEFAULT_LEVEL, FORMS, mixlaw
from autoscale_ray.formatting import format_table
from autoscale_ray.verbs.arguments import add_min_tokens, finite_number, parse_tokens, verb_parser


def _text(obj: dict[str, Any]) -> str:
    fit = obj["fit"]
    held = ", ".join(f"{k} {100 * v:.3g}%" for k, v in fit["held_out_error"].items())
    lines = [f"mixture x scale law: {fit['form']} ({fit['n_runs']} runs, {fit['n_mixtures']} "
             f"mixtures, sizes {', '.join(f'{s:.3g}' for s in fit['sizes'])})"]
    if held:
        lines.append(f"held-out error on N={fit['held_out_params']:.3g} (fitted without it): {held}")
    lines.append(f"at N={obj['params']:.4g}, D={obj['tokens']:.4g}:")
    iv = obj["intervals"]
    pct = f"{100 * obj['level']:g}% interval" if obj["level"] else "interval"
    if "predictions" in obj:
        rows = []
        for i, p in enumerate(obj["predictions"]):
            lo_hi = iv["predictions"][i]["loss"] if "predictions" in iv else None
            rows.append([i + 1, p["loss"], "" if lo_hi is None else f"[{lo_hi[0]:.4f}, {lo_hi[1]:.4f}]"])
        lines.append(format_table(["mixture", "predicted loss", pct], rows))
    if "weights" in obj:
        rows = [[d, w, "" if "weights" not in iv else f"[{iv['weights'][d][0]:.3f}, "
                 f"{iv['weights'][d][1]:.3f}]"] for d, w in obj["weights"].items()]
        lines.append(format_table(["domain", "optimal weight", pct], rows))
        el = iv.get("expected_loss")
        lines.append(f"expected loss {obj['expected_loss']['loss']:.4f}"
                     + (f" [{el[0]:.4f}, {el[1]:.4f}]" if el else "")
                     + (f"; at their data cap: {', '.join(obj['at_cap'])}" if obj["at_cap"] else ""))
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    obj = mixlaw(args.runs, params=args.params, tokens=args.tokens, predict=args.predict,
                 optimize=args.optimize, objective=args.objective, available=args.available,
                 max_epochs=args.max_epochs, forms=tuple(args.forms.split(",")),
                 min_tokens=args.min_tokens, bootstrap=args.bootstrap, level=args.level,
                 seed=args.seed)
    return obj, _text(obj)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = verb_parser(subparsers, "mixlaw", _run,
                    "mixture x scale law: per-domain losses of mixtures at (N, D), optimal mixture",
                    fits_mixlaw, runs="runs table (.csv or .parquet) at >= 2 model sizes")
    p.add_argument("--params", type=parse_tokens, required=True, metavar="N",
                   help="target model size (e.g. 1e9 or 1B)")
    p.add_argument("--tokens", type=parse_tokens, required=True, metavar="D",
                   help="target training tokens (e.g. 2e10 or 20B)")
    p.add_argument("--predict", metavar="MIXES", default=None,
                   help="mixtures to predict: a CSV/Parquet of w.<domain> columns or JSON mixtures")
    p.add_argument("--optimize", action="store_true", help="the mixture minimising the objective")
    p.add_argument("--objective", default=None, metavar="mean|EVAL.json",
                   help="mean over validation domains (default) or a JSON {domain: weight}")
    p.add_argument("--available", default=None, metavar="TOKENS.json",
                   help="JSON {domain: available tokens}: w_i x D <= max-epochs x available_i")
    p.add_argument("--max-epochs", type=finite_number, default=4.0,
                   help="repetition cap with --available (default 4)")
    p.add_argument("--forms", default=",".join(FORMS),
                   help=f"forms to choose among by held-out error (default {','.join(FORMS)})")
    add_min_tokens(p)
    p.add_argument("--bootstrap", type=int, default=20, metavar="K",
                   help="bootstrap replicates for intervals (0: off; default 20)")
    p.add_argument("--level", type=finite_number, default=DEFAULT_LEVEL,
                   help="interval level (default 0.9)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap and optimiser seed (default 0)")
