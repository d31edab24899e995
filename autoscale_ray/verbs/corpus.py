"""`autoscale-ray corpus build [--out DIR]`: build the embedded default corpus (no network)."""

from __future__ import annotations

import argparse
from typing import Any

from autoscale_ray.data.embedded import describe_embedded_corpus
from autoscale_ray.formatting import format_table


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    obj = describe_embedded_corpus(args.out, force=args.force)
    rows = [(name, d["documents"], d["bytes"], d["description"]) for name, d in obj["domains"].items()]
    text = (f"embedded corpus: {obj['path']}\n"
            + format_table(["domain", "documents", "bytes", "text"], rows)
            + "\nprovenance (every source file): provenance.json in that folder")
    return obj, text


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("corpus", help="the embedded default corpus",
                                   description="Build the embedded default corpus: real text from the "
                                               "Python installation, no network.")
    sub = parser.add_subparsers(dest="corpus_action", required=True, metavar="ACTION",
                                parser_class=type(parser))
    build = sub.add_parser("build", help="build (or find cached) the embedded corpus",
                           description="Write >= 4 domains of >= 2 MB of real text each as Parquet, "
                                       "with provenance.json; cached by installed versions.")
    build.add_argument("--out", default=None,
                       help="folder to write (default: ~/.cache/autoscale-ray/corpus/<key>)")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.add_argument("--json", action="store_true", help="print one JSON object")
    build.set_defaults(func=_run)
