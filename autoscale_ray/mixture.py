"""Mixture files: `{"tokens": N, "weights": {"domain": w, ...}}` (plus optional extra keys).

`ddo` and `project` print this shape (with `at_bound`); a search's `recommendation.json` extends it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

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


def check_weights(weights: Mapping[str, Any], where: str) -> dict[str, float]:
    """Validate and normalise a {domain: weight} mapping (finite, >= 0, not all zero)."""
    if not isinstance(weights, Mapping) or not weights:
        raise BadInput("`weights` must be a non-empty object {domain: weight}", where)
    out: dict[str, float] = {}
    for name, value in weights.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadInput(f"weight of `{name}` is {value!r}, not a finite number",
                           f"{where}, key weights.{name}", "give a number >= 0")
        if value < 0:
            raise BadInput(f"negative weight {value} for `{name}`", f"{where}, key weights.{name}",
                           "weights must be >= 0")
        out[str(name)] = float(value)
    total = sum(out.values())
    if total <= 0:
        raise BadInput("all weights are zero", f"{where}, key weights",
                       "give at least one domain a positive weight")
    return {d: w / total for d, w in out.items()}


def mixture_from_dict(obj: Any, where: str) -> Mixture:
    if not isinstance(obj, dict):
        raise BadInput("a mixture must be a JSON object {\"tokens\": N, \"weights\": {...}}", where)
    for key in ("tokens", "weights"):
        if key not in obj:
            raise BadInput(f"missing key `{key}`", where,
                           "a mixture file is {\"tokens\": N, \"weights\": {\"domain\": w}}")
    tokens = obj["tokens"]
    if isinstance(tokens, bool) or not isinstance(tokens, (int, float)) or not math.isfinite(tokens) \
            or tokens <= 0:
        raise BadInput(f"`tokens` is {tokens!r}", f"{where}, key tokens", "give a positive number")
    weights = check_weights(obj["weights"], where)
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
