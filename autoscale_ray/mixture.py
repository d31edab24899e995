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
