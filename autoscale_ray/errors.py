"""The one exception type for bad user input.

Every check of user input (files, configs, options) raises `BadInput` with one line that says
what is wrong, where (file, row, column, key) and how to fix it. The CLI turns it into that line
on stderr and exit code 2; anything else is an internal failure (exit code 1).
"""

from __future__ import annotations


class BadInput(ValueError):
    """User input that cannot be used; the message is a single line: what, where, how to fix."""

    def __init__(self, what: str, where: str | None = None, fix: str | None = None) -> None:
        parts = [f"{where}: {what}" if where else what]
        if fix:
            parts.append(fix)
        message = "; ".join(parts).replace("\n", " ")
        super().__init__(message)
