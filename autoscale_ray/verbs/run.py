"""`autoscale-ray run CONFIG.yaml [--out DIR] [--resume | --restart] [--address A] [--no-dashboard]`:
the whole search on Ray (autoscale_ray.search in Python)."""

from __future__ import annotations

import argparse
from typing import Any

from autoscale_ray.formatting import format_table


def _span(interval: Any) -> str:
    finite = interval and all(isinstance(v, (int, float)) and v == v for v in interval)
    return f"[{interval[0]:.4g}, {interval[1]:.4g}]" if finite else "-"


def human(rec: dict[str, Any]) -> str:
    """The recommendation with its intervals, the trust verdict and what to run to tighten it."""
    wint, lint = rec.get("weights_interval") or {}, rec.get("expected_loss_interval") or {}
    level = int(round(100 * float(rec.get("interval_level", 0.9))))
    rows = [[d, w, _span(wint.get(d)), rec["expected_loss"]["per_domain"].get(d), _span(lint.get(d)),
             "capped" if d in rec.get("capped", []) else ("at bound" if d in rec["at_bound"] else "")]
            for d, w in rec["weights"].items()]
    util = rec["evidence"].get("utilisation", {})
    corpus = rec["evidence"].get("corpus", {})
    trained_on = (f"corpus {corpus['kind']} (content hash {corpus['content_hash'][:16]})"
                  if corpus.get("content_hash") else f"corpus {corpus.get('kind')} ({corpus.get('packed_key')})")
    batch = f" at {rec['lr_batch_tokens']} tokens per batch" if rec.get("lr_batch_tokens") else ""
    trust = rec.get("trust") or {}
    lines = [format_table(["domain", "weight", f"{level}% interval", "expected loss",
                           f"{level}% interval", "note"], rows), ""]
    lr_span = "(search.lr, fixed)" if rec.get("lr_interval_method") == "fixed" else _span(rec.get("lr_interval"))
    law = rec["evidence"].get("mixing_law") if rec.get("projector") == "mixing-law" else None
    model = f" of a {rec['target_params']:.3g}-parameter model" if law else ""
    lines.append(f"peak LR {rec['lr']:.4g} {lr_span}{batch} for "
                 f"{rec['tokens']:.4g} tokens{model}")
    if law:
        err = law["held_out_error"].get(law["form"])
        lines.append(f"projector mixing-law ({law['form']} form) over probe models of "
                     + ", ".join(f"{n:.3g}" for n in law["sizes"]) + " parameters; held-out error "
                     + (f"{100 * err:.2f}% on the largest" if err is not None else "not measured"))
    if trust:
        # a probe is a budget (autoscale) or "params/budget" (mixing-law: signal/noise per model)
        snr = ", ".join(f"{float(p.split('/')[0]):.3g}: {v:.2g}" for p, v in trust["median_snr"].items()
                        if v is not None)
        per = "signal/noise per probe model" if law else "median signal/noise per probe"
        lines.append(f"trust: {trust['verdict']}" + (f" ({per} {snr})" if snr else ""))
        budget_law = rec["evidence"].get("budget_law")
        if budget_law:  # the second extrapolation (fits/budget_law.py): in the intervals or not
            lines.append("  model check: the budget transfer law "
                         + (f"{budget_law['reason']}; its mixture is in the intervals: " + ", ".join(
                             f"{d} {round(w, 4):.3g}" for d, w in budget_law["weights"].items())
                            if budget_law.get("used") else f"{budget_law.get('reason')}; not in the intervals"))
        lines += [f"  to tighten: {a}" for a in trust.get("actions", [])]
    lines.append(f"{trained_on}; utilisation {util.get('utilisation', float('nan')):.2f}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    from autoscale_ray.api import search

    result = search(args.config, args.out, resume=args.resume, restart=args.restart,
                    address=args.address, dashboard=not args.no_dashboard)
    text = human(result.recommendation) + f"; recommendation.json, runs.parquet and report.md in {args.out or 'results/<name>'}"
    return result.recommendation, text


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
    p.add_argument("--address", default=None,
                   help="the Ray cluster to join (default: RAY_ADDRESS, else the cluster `ray start` "
                        "registered on this machine, else a fresh local instance; `local` forces one)")
    p.add_argument("--no-dashboard", action="store_true",
                   help="a fresh local Ray starts without its dashboard")
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON")
    p.set_defaults(func=_run)
