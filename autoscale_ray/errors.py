"""The one exception type for bad user input, and how values are quoted in its line.

Every check of user input (files, configs, options) raises `BadInput` with one line that says
what is wrong, where (file, row, column, key) and how to fix it. The CLI turns it into that line
on stderr and exit code 2; anything else is an internal failure (exit code 1). A line quotes at
most a short excerpt of a value (`short`), and credentials in URIs never appear (`redact`).
"""

from __future__ import annotations

import re
import reprlib
from typing import Any

MAX_LINE = 1000  # characters of one error line
_URI_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^/\s@]+@")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxdict, _repr.maxtuple = 2, 4, 4, 4
_repr.maxstring, _repr.maxother, _repr.maxlong = 60, 60, 40


def short(value: Any) -> str:
    """A bounded repr: a huge or deeply nested value (a YAML alias bomb) costs no time or space."""
    text = _repr.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def redact(text: str) -> str:
    """`s3://KEY:SECRET@bucket/x` -> `s3://***@bucket/x`; terminal colour codes removed."""
    return _ANSI.sub("", _URI_CREDENTIALS.sub(r"\1***@", text))


class BadInput(ValueError):
    """User input that cannot be used; the message is a single line: what, where, how to fix."""

    def __init__(self, what: str, where: str | None = None, fix: str | None = None) -> None:
        parts = [f"{where}: {what}" if where else what]
        if fix:
            parts.append(fix)
        message = redact("; ".join(parts).replace("\r", " ").replace("\n", " "))
        if len(message) > MAX_LINE:
            message = message[:MAX_LINE - 3] + "..."
        super().__init__(message)


class Interrupted(Exception):
    """The search was stopped (SIGINT/SIGTERM); its state is kept for `--resume`. Exit code 130."""
