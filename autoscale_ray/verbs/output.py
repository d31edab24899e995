"""argparse types shared by the verbs: token counts (`20B`) and finite numbers."""

from __future__ import annotations

import argparse
import math


_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_tokens(text: str) -> float:
    """A positive token count: `2e10`, `20000000000` or `20B` (k, M, B/G, T suffixes)."""
    raw = text.strip().replace("_", "")
    scale = _SUFFIX.get(raw[-1:].lower(), 1.0) if raw and raw[-1].isalpha() else 1.0
    try:
        value = float(raw[:-1] if scale != 1.0 else raw) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"`{text}` is not a token count (e.g. 2e10 or 20B)") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"`{text}` must be a positive token count")
    return value


def finite_number(text: str) -> float:
    """argparse type: a finite number (argparse's float takes `nan` and `inf`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value
