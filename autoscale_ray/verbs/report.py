"""`autoscale-ray report DIR`: rebuild report.md and its plots from a finished search folder."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from autoscale_ray.errors import BadInput
    from autoscale_ray.report import write_report
    from autoscale_ray.search.layout import RECOMMENDATION, REPORT, RUNS
    from autoscale_ray.storage import Store, is_uri

    if not is_uri(args.dir):
        path = write_report(args.dir)
        return {"report": str(path)}, f"wrote {path}"
    store = Store(args.dir)  # object storage: build the report locally from the two inputs
    inputs = (RUNS, RECOMMENDATION)
    missing = [name for name in inputs if not store.exists(name)]
    if missing:
        raise BadInput(f"not a finished search folder (no {', '.join(missing)})", args.dir,
                       "give the --out URI of `autoscale-ray run`")
    with tempfile.TemporaryDirectory() as tmp:
        for name in inputs:
            (Path(tmp) / name).write_bytes(store.read_bytes(name))
        write_report(tmp, store.location.rsplit("/", 1)[-1])
        for name in inputs:
            (Path(tmp) / name).unlink(missing_ok=True)
        store.upload(tmp)
    return {"report": store.uri(REPORT)}, f"wrote {store.uri(REPORT)}"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help="plots + report of a finished search",
                              description="Rebuild report.md and PNG plots from runs.parquet and "
                                          "recommendation.json (no Ray, no rerun).")
    p.add_argument("dir", metavar="DIR", help="the --out folder or URI (s3://..., gs://...) of a search")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)
