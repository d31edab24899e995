"""`autoscale-ray corpus build [--out DIR]`: materialise the embedded default corpus shipped with
the package (no network, the same bytes everywhere) and print its content hash.
`--from-installation` (maintainers) generates the shipped shards from this installation."""

from __future__ import annotations

import argparse
from typing import Any

from autoscale_ray.data.embedded import describe_embedded_corpus
from autoscale_ray.formatting import format_table


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    if args.from_installation:
        from autoscale_ray.data.embedded_build import SHIPPED_DIR, build_from_installation

        manifest = build_from_installation(args.out)
        obj = {"path": str(args.out or SHIPPED_DIR), "hash": manifest["corpus_hash"],
               "domains": {name: {"documents": d["documents"], "bytes": d["bytes"],
                                  "description": d["description"]}
                           for name, d in manifest["domains"].items()}}
        where = "shipped shards"
    else:
        obj = describe_embedded_corpus(args.out, force=args.force)
        where = "embedded corpus"
    rows = [(name, d["documents"], d["bytes"], d["description"]) for name, d in obj["domains"].items()]
    tail = ("manifest.json in that folder lists every source file and its sha256" if args.from_installation
            else "provenance (every source file): provenance.json in that folder")
    text = (f"{where}: {obj['path']}\ncontent hash: {obj['hash']}\n"
            + format_table(["domain", "documents", "bytes", "text"], rows) + f"\n{tail}")
    return obj, text


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("corpus", help="the embedded default corpus",
                                   description="Materialise the embedded default corpus shipped with "
                                               "the package: real text, no network, the same bytes "
                                               "on every machine.")
    sub = parser.add_subparsers(dest="corpus_action", required=True, metavar="ACTION",
                                parser_class=type(parser))
    build = sub.add_parser("build", help="build (or find cached) the embedded corpus",
                           description="Write >= 4 domains of >= 2 MB of real text each as Parquet, "
                                       "with provenance.json, from the shards shipped with the "
                                       "package; print the content hash. Cached by that hash.")
    build.add_argument("--out", default=None,
                       help="folder to write (default: ~/.cache/autoscale-ray/corpus/<key>; with "
                            "--from-installation: the package's embedded_corpus/ folder)")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    build.add_argument("--from-installation", action="store_true",
                       help="maintainers: generate the shipped shards and manifest.json from this "
                            "Python installation's files (changes the corpus and its hash)")
    build.add_argument("--json", action="store_true", help="print one JSON object")
    build.set_defaults(func=_run)
