"""`autoscale-ray`: the command line. Each verb lives in `autoscale_ray.verbs.<verb>`.

Exit codes: 0 success, 2 bad input (one line on stderr saying what and where), 1 internal failure.
`--json` prints exactly one JSON object on stdout; warnings and progress go to stderr. With
`--strict`, a fit whose output carries health `warnings` exits 2 with one line naming them.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
import traceback
from typing import Sequence

from autoscale_ray.errors import BadInput, Interrupted, redact
from autoscale_ray.formatting import jsonable

# Order of the verbs in --help (docs/architecture.md, "The command line").
VERBS = ("run", "compare", "ddo", "project", "lr", "law", "mixlaw", "regress", "report", "corpus")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The command line's parser. Where `argv` names a verb, only that verb is registered: each
    verb's module imports its fits (pandas, scipy), and importing all of them was about 1 s of
    every command's start; --help and a mistyped verb get them all."""
    parser = _Parser(prog="autoscale-ray",
                     description="Data mixture and learning rate for LLM pretraining from small "
                                 "proxy runs on Ray, extrapolated with scaling laws.")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=_Parser)
    named = argv[0] if argv else None  # the verb comes first; `-h run` gets the whole --help
    for verb in (named,) if named in VERBS else VERBS:
        try:
            module = importlib.import_module(f"autoscale_ray.verbs.{verb}")
        except ModuleNotFoundError as exc:
            if exc.name == f"autoscale_ray.verbs.{verb}":
                continue  # verb not part of this build
            raise
        module.register(sub)
    return parser


class _Redacting(logging.Formatter):
    """Warnings never show credentials embedded in URIs."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting("autoscale-ray: %(levelname)s: %(message)s"))
    root = logging.getLogger("autoscale_ray")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    _setup_logging()
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(words)
    try:
        args = parser.parse_args(words)
    except SystemExit as exc:  # --help, or a usage error (already printed as one line)
        return int(exc.code or 0)
    try:
        # libraries (Ray Tune's banner, ...) print to stdout; keep it for our JSON/table only
        with contextlib.redirect_stdout(sys.stderr):
            obj, text = args.func(args)
    except BadInput as exc:
        print(f"autoscale-ray {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"autoscale-ray {args.verb}: interrupted: {redact(str(exc))}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        hint = " (a search keeps its finished trials: rerun with --resume)" if args.verb == "run" else ""
        print(f"autoscale-ray {args.verb}: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal failure, not the user's input
        if os.environ.get("AUTOSCALE_RAY_DEBUG"):
            traceback.print_exc()
        first = redact(str(exc)).strip().splitlines()[0][:300] if str(exc).strip() else ""
        print(f"autoscale-ray {args.verb}: internal error: {type(exc).__name__}: {first} "
              f"(set AUTOSCALE_RAY_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    warnings = obj.get("warnings") if isinstance(obj, dict) else None
    if getattr(args, "strict", False) and warnings:
        first = warnings[0]
        print(f"autoscale-ray {args.verb}: error: --strict: {len(warnings)} health warning(s): "
              + ", ".join(dict.fromkeys(w["check"] for w in warnings))
              + f"; first: {first['message']}; fix: {first['fix']}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        print(json.dumps(jsonable(obj), allow_nan=False))
    elif text:
        print(text)
    if argv is None:  # the command itself: Ray's log thread prints late worker messages ("(raylet) A
        sys.stdout.flush()  # worker died ...") to sys.stdout until the process exits; not into our JSON
        sys.stdout = sys.stderr
    return 0


if __name__ == "__main__":
    sys.exit(main())
