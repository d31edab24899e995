"""Shared output helpers for the verbs: aligned tables for people, strict JSON for scripts."""

from __future__ import annotations

import argparse
import math
from typing import Any, Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], floatfmt: str = ".4g") -> str:
    """A small aligned plain-text table; floats formatted with `floatfmt`."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "nan" if math.isnan(v) else format(v, floatfmt)
        return "" if v is None else str(v)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h))
              for i, h in enumerate(headers)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(r, widths)).rstrip()
              for r in cells]
    return "\n".join(lines)


def _numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays and non-finite floats (-> None) so json.dumps(allow_nan=False) works."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


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
