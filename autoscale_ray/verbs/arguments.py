"""What the verbs' parsers share: the sub-command with its RUNS table, --json and --strict, token
counts (`20B`), finite numbers and --average-duplicates."""

from __future__ import annotations

import argparse
import math
from types import ModuleType
from typing import Any, Callable


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


def verb_parser(subparsers: Any, name: str, func: Callable[[argparse.Namespace], Any], help: str,
                about: ModuleType, runs: str | None = None) -> argparse.ArgumentParser:
    """The verb's sub-command: `func(args) -> (json_object, human_text)`, `--json`, the runs table
    argument RUNS when `runs` describes it; its description is the docstring of `about` (the
    library module the verb calls) after the first line."""
    description = " ".join((about.__doc__ or "").split("\n\n", 1)[-1].split())
    parser = subparsers.add_parser(name, help=help, description=description)
    if runs is not None:
        parser.add_argument("runs", metavar="RUNS", help=runs)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--strict", action="store_true",
                        help="exit with code 2 (one line) when a health check warns")
    parser.set_defaults(func=func)
    return parser


def add_average_duplicates(parser: argparse.ArgumentParser) -> None:
    """--average-duplicates: repeated evaluations of a run at the same tokens are averaged (as
    digitised curves have) instead of refused."""
    parser.add_argument("--average-duplicates", action="store_true",
                        help="average repeated evaluations of a run at the same tokens")


def add_min_tokens(parser: argparse.ArgumentParser) -> None:
    """--min-tokens X: the early checkpoints a law fit leaves out."""
    parser.add_argument("--min-tokens", type=finite_number, default=None, metavar="X",
                        help="drop checkpoints before X tokens (X >= 1) or before the fraction X of "
                             "each run's budget (X < 1)")
