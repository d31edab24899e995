"""`autoscale-ray report DIR`: rebuild report.md and its plots from a finished search folder."""

from __future__ import annotations

import argparse
from typing import Any


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from autoscale_ray.report import rebuild_report

    where = rebuild_report(args.dir)
    return {"report": where}, f"wrote {where}"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help="plots + report of a finished search",
                              description="Rebuild report.md and PNG plots from runs.parquet and "
                                          "recommendation.json (no Ray, no rerun).")
    p.add_argument("dir", metavar="DIR", help="the --out folder or URI (s3://..., gs://...) of a search")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)
