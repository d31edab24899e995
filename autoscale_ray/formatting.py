"""Output formats shared by the library and the command line: aligned plain-text tables for people,
strict JSON (no NaN, no numpy types) for scripts and result files."""

from __future__ import annotations

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


def format_warnings(warnings: Sequence[dict[str, str]]) -> str:
    """The `warnings` records of a fit ({"check", "message", "fix"}) as lines for people; "" when
    there are none."""
    if not warnings:
        return ""
    lines = [f"warnings ({len(warnings)}; --strict makes them an error):"]
    lines += [f"  [{w['check']}] {w['message']}; fix: {w['fix']}" for w in warnings]
    return "\n".join(lines)


def health_lines(factor: float, warnings: Sequence[dict[str, str]], what: str) -> str:
    """The extrapolation factor (`what` it measures) and the warnings, appended to a verb's text."""
    text = f"\nextrapolation factor {factor:.3g}x ({what})"
    block = format_warnings(warnings)
    return text + (f"\n{block}" if block else "\nhealth checks: no warnings")
