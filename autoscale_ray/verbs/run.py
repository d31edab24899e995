"""`autoscale-ray run CONFIG.yaml [--out DIR] [--resume | --restart]`: the whole search on Ray."""

from __future__ import annotations

import argparse
from typing import Any

from autoscale_ray.formatting import format_table


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from autoscale_ray.pipeline import run

    rec = run(args.config, args.out, resume=args.resume, restart=args.restart)
    rows = [[d, w, rec["expected_loss"]["per_domain"].get(d)] for d, w in rec["weights"].items()]
    util = rec["evidence"].get("utilisation", {})
    corpus = rec["evidence"].get("corpus", {})
    trained_on = (f"corpus {corpus['kind']} (content hash {corpus['content_hash'][:16]})"
                  if corpus.get("content_hash") else f"corpus {corpus.get('kind')} ({corpus.get('packed_key')})")
    batch = f" at {rec['lr_batch_tokens']} tokens per batch" if rec.get("lr_batch_tokens") else ""
    text = (format_table(["domain", "weight", "expected loss"], rows)
            + f"\n\npeak LR {rec['lr']:.4g}{batch} for {rec['tokens']:.4g} tokens; {trained_on}; "
              f"utilisation {util.get('utilisation', float('nan')):.2f}; "
              f"recommendation.json, runs.parquet and report.md in {args.out or 'results/<name>'}")
    return rec, text


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("run", help="the whole search on Ray (local or cluster)",
                              description="LR sweep, DDO at each probe budget, the AutoScale "
                                          "projection to the target: one Ray Tune experiment.")
    p.add_argument("config", metavar="CONFIG.yaml")
    p.add_argument("--out", default=None, help="output folder (default results/<name>)")
    p.add_argument("--resume", action="store_true",
                   help="continue the search in --out (same config): finished trials are kept")
    p.add_argument("--restart", action="store_true",
                   help="start over in an --out that holds a search (removes what it wrote there)")
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON")
    p.set_defaults(func=_run)
