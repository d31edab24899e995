"""Mixture files: `{"tokens": N, "weights": {"domain": w, ...}}` (plus optional extra keys).

`ddo` and `project` print this shape (with `at_bound`); a search's `recommendation.json` extends it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from autoscale_ray.checks import as_number, mixture_weights
from autoscale_ray.errors import BadInput


@dataclass(frozen=True)
class Mixture:
    """Domain weights (summing to 1) for a run of `tokens` tokens."""

    tokens: float
    weights: Mapping[str, float]
    at_bound: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(self.weights)

    def quantities(self) -> dict[str, float]:
        """Per-domain token quantities N_i = w_i x tokens."""
        return {d: w * self.tokens for d, w in self.weights.items()}

    def to_json(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "weights": dict(self.weights),
                "at_bound": list(self.at_bound), **dict(self.extra)}


def mixture_from_dict(obj: Any, where: str) -> Mixture:
    if not isinstance(obj, dict):
        raise BadInput("a mixture must be a JSON object {\"tokens\": N, \"weights\": {...}}", where)
    for key in ("tokens", "weights"):
        if key not in obj:
            raise BadInput(f"missing key `{key}`", where,
                           "a mixture file is {\"tokens\": N, \"weights\": {\"domain\": w}}")
    tokens = as_number(obj["tokens"])
    if tokens is None or not (math.isfinite(tokens) and tokens > 0):
        raise BadInput(f"`tokens` is {obj['tokens']!r}", f"{where}, key tokens", "give a positive number")
    weights = mixture_weights(obj["weights"], where)
    at_bound = tuple(str(d) for d in obj.get("at_bound", []) or [])
    extra = {k: v for k, v in obj.items() if k not in ("tokens", "weights", "at_bound")}
    return Mixture(float(tokens), weights, at_bound, extra)


def read_mixture(path: str | Path) -> Mixture:
    """Read and validate a mixture JSON file."""
    path = Path(path)
    if not path.exists():
        raise BadInput("file not found", str(path), "check the path")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"not valid JSON ({exc})", str(path), "write a JSON mixture object") from None
    return mixture_from_dict(obj, str(path))


def read_available(path: str | Path) -> dict[str, float]:
    """Tokens available per domain: a JSON object {domain: tokens}, or a CSV/TSV/Parquet table
    with columns `domain` and `tokens`. BadInput for another shape or a count that is not a
    positive number (unknown domains are checked against the mixtures by the caller)."""
    from autoscale_ray.runs import read_table  # the one table reader (delimiters, decimal commas)

    where = str(path)
    fix = "write {\"domain\": tokens, ...} as JSON, or a table with columns domain,tokens"
    if Path(path).suffix.lower() == ".json":
        try:
            obj = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BadInput("file not found", where, "check the path") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadInput(f"not a JSON object ({exc})", where, fix) from None
        if not isinstance(obj, dict) or not obj:
            raise BadInput("the availability must be a non-empty object {domain: tokens}", where, fix)
        pairs = list(obj.items())
    else:
        frame = read_table(path, noun="availability table", fix=fix)
        if not {"domain", "tokens"} <= set(frame.columns):
            raise BadInput(f"columns {', '.join(map(str, frame.columns))}: need `domain` and "
                           "`tokens`", where, fix)
        pairs = list(zip(frame["domain"].astype(str), frame["tokens"]))
    out: dict[str, float] = {}
    for domain, value in pairs:
        v = as_number(value)
        if v is None or not math.isfinite(v) or v <= 0:
            raise BadInput(f"available tokens of `{domain}` are {value!r}, not a positive count",
                           where, "give each domain's tokens as a positive number")
        if domain in out:
            raise BadInput(f"domain `{domain}` is listed twice", where, "give each domain once")
        out[str(domain)] = float(v)
    return out
