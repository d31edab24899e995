"""The validation vocabulary: numbers, booleans, mappings, domain names and mixture weights.

Every check raises `BadInput(what, where, fix)`. Where sites word the same check differently
(their messages are asserted by tests and quoted in the docs), the varying words are arguments.
This module sits at the bottom of the layers with `errors` and `names`: it imports no Ray, torch,
pandas, config, runs, data or train; array checks live in `autoscale_ray.laws.checks`.
"""

from __future__ import annotations

import difflib
import math
import numbers
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from autoscale_ray.errors import BadInput, short

BOOL_FIX = "write true or false (unquoted)"


# ---- numbers and booleans -------------------------------------------------------------------
def as_number(value: Any, *, text: bool = False) -> float | None:
    """`value` as a float if it is a number (a bool is not); with `text`, numeric strings count
    (YAML 1.1 reads `1e5` as a string). None otherwise; NaN and inf are numbers here."""
    if isinstance(value, (bool, bytes, bytearray)) or (isinstance(value, str) and not text):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def is_whole(x: float) -> bool:
    return math.isfinite(x) and float(x).is_integer()


@dataclass(frozen=True)
class Number:
    """A finite number: > 0 unless `positive` is False, whole (0.4 refused, never rounded) with
    `whole`, >= `least` and <= `most` where given."""

    positive: bool = True
    whole: bool = False
    least: float | None = None
    most: float | None = None

    def check(self, value: Any, where: str) -> float | int:
        return number(value, where, self)


@dataclass(frozen=True)
class Flag:
    """A boolean (a quoted "no" is a string, and refused)."""

    def check(self, value: Any, where: str) -> bool:
        return check_bool(value, where)


def number(value: Any, where: str, spec: Number = Number()) -> float | int:
    """`value` checked against `spec`; an int when `spec.whole`."""
    parsed = as_number(value, text=True)
    shown = value if parsed is None or not isinstance(value, str) else parsed
    kind = ("positive " if spec.positive else "") + ("whole number" if spec.whole else "number")
    if parsed is None or not math.isfinite(parsed) or (spec.positive and parsed <= 0) \
            or (spec.whole and not parsed.is_integer()):
        raise BadInput(f"{short(shown)} is not a {kind}", where)
    if spec.most is not None and parsed > spec.most:
        raise BadInput(f"{parsed:g} is above the largest accepted value {spec.most:g}", where,
                       "check the units (tokens, not billions of tokens) and the exponent")
    if spec.least is not None and parsed < spec.least:
        raise BadInput(f"{short(value)} is not a {kind} >= {spec.least:g}", where)
    if spec.whole:  # an int stays exact (a float holds whole numbers only up to 2**53)
        return int(value) if isinstance(value, int) else int(parsed)
    return parsed


def check_bootstrap(value: Any, example: int, what: str = "replicates") -> int:
    """A bootstrap count: 0 (off) or >= 2 (one replicate has no spread); `example` goes in the fix."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0 or value == 1:
        raise BadInput(f"--bootstrap must be 0 (off) or >= 2 {what}, got {short(value)}", "--bootstrap",
                       f"e.g. --bootstrap {example}")
    return int(value)


def check_bool(value: Any, where: str, *, label: str = "", fix: str = BOOL_FIX) -> bool:
    """`value` if it is a bool; `label` leads the message (e.g. "compile=")."""
    if not isinstance(value, bool):
        raise BadInput(f"{label}{short(value)} is not a boolean", where, fix)
    return value


# ---- mappings and names ---------------------------------------------------------------------
def check_mapping(value: Any, where: str, what: str, fix: str | None = None, *,
                  empty: bool = False) -> dict[Any, Any]:
    """`value` as a dict if it is a mapping (a non-empty one unless `empty`); else BadInput(what)."""
    if not isinstance(value, Mapping) or (not empty and not value):
        raise BadInput(what, where, fix)
    return dict(value)


def check_keys(values: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """No key outside `allowed` (a typo must not fall back to a default silently)."""
    allowed = set(allowed)
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise BadInput(f"unknown key(s) {', '.join(unknown)}", where, f"allowed: {', '.join(sorted(allowed))}")


def as_list(names: Sequence[str]) -> str:
    """`['web', 'code']`: how the corpus and the data plan list domains."""
    return repr(list(names))


def as_text(names: Sequence[str]) -> str:
    """`web, code`: how configs and runs tables list domains."""
    return ", ".join(names)


def check_known(names: Iterable[str], known: Sequence[str], where: str | None, *,
                what: str = "weights name unknown domain(s)", fix: str = "the corpus has",
                show: Callable[[Sequence[str]], str] = as_list) -> None:
    """Every one of `names` is among `known`: else "<what> <the unknown ones>; <fix> <known>",
    the unknown ones in the order of `names` (pass them sorted for a sorted message)."""
    known_set = set(known)
    unknown = [n for n in names if n not in known_set]
    if unknown:
        raise BadInput(f"{what} {show(unknown)}", where, f"{fix} {show(list(known))}")


# ---- mixture weights as mappings ------------------------------------------------------------
def mixture_weights(weights: Any, where: str) -> dict[str, float]:
    """A {domain: weight} mapping of a mixture file, checked (non-empty; each weight a finite
    number >= 0; not all zero) and normalised to sum 1."""
    given = check_mapping(weights, where, "`weights` must be a non-empty object {domain: weight}")
    out: dict[str, float] = {}
    for name, value in given.items():
        key = f"{where}, key weights.{name}"
        x = as_number(value)
        if x is None or not math.isfinite(x):
            raise BadInput(f"weight of `{name}` is {value!r}, not a finite number", key, "give a number >= 0")
        if x < 0:
            raise BadInput(f"negative weight {value} for `{name}`", key, "weights must be >= 0")
        out[str(name)] = x
    if sum(out.values()) <= 0:
        raise BadInput("all weights are zero", f"{where}, key weights",
                       "give at least one domain a positive weight")
    return normalised(out)


def first_bad_weight(weights: Mapping[str, float]) -> str | None:
    """The first domain whose weight is not a finite number >= 0, or None."""
    return next((d for d, w in weights.items() if not (math.isfinite(w) and w >= 0)), None)


def weight_vector(weights: Mapping[str, Any], domains: Sequence[str]) -> np.ndarray:
    """The weights in `domains` order, 0 for a domain not given."""
    return np.array([float(weights.get(d, 0.0)) for d in domains], dtype=float)


def normalised(weights: Mapping[str, float]) -> dict[str, float]:
    """Each weight over their sum (which the caller has checked is > 0)."""
    total = sum(weights.values())
    return {d: w / total for d, w in weights.items()}


def did_you_mean(wanted: str, names: Iterable[str]) -> str:
    """` (did you mean `x`?)` for the closest of `names` to `wanted` (difflib, cutoff 0.6), or ""."""
    close = difflib.get_close_matches(wanted, [str(n) for n in names], n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def weight_column_lookalikes(names: Iterable[str], prefix: str = "w.") -> dict[str, str]:
    """Columns that look like mixture weights written another way (`w_cc`, `w-cc`, `W.cc`,
    `weight.cc`, `weight_cc`) -> the `w.<domain>` name they were probably meant as."""
    found = {}
    for name in map(str, names):
        m = re.fullmatch(r"(?i)(?:w|weight|weights)[._\- ](.+)", name)
        if m and not name.startswith(prefix):
            found[name] = prefix + m.group(1)
    return found
