"""Swarm overhead: how busy the trial slots stay when a swarm trains many tiny proxies.

A `random` swarm of `--runs` gpt2-tiny proxies of about two seconds each on the synthetic corpus
(CPU, local Ray, `--slots` trial slots), through `autoscale-ray run`'s code path. Reported:
utilisation = busy trial time / (wall x slots) (the search's own `evidence.utilisation`), and the
idle gap between consecutive trials in one slot (each trial's start and end from Tune's result
files, trials assigned to the slot that freed first), median and 90th percentile.

    .venv/bin/python benchmarks/swarm_overhead.py [--runs 64] [--slots 2] [--budget 6e3]
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import experiment_config  # noqa: E402


def trial_spans(tune_dir: Path) -> list[tuple[float, float]]:
    """(start, end) wall times of every trial: first result's timestamp minus the time it had run,
    and the last result's timestamp."""
    spans = []
    for f in tune_dir.glob("*/*/result.json"):
        rows = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
        if rows:
            spans.append((rows[0]["timestamp"] - rows[0]["time_this_iter_s"], rows[-1]["timestamp"]))
    return sorted(spans)


def slot_gaps(spans: list[tuple[float, float]], slots: int) -> list[float]:
    """The idle time before each trial in the slot that freed first (the first `slots` trials
    start the slots and have no gap)."""
    free: list[float] = []
    gaps = []
    for start, end in spans:
        if len(free) < slots:
            heapq.heappush(free, end)
            continue
        gaps.append(max(0.0, start - heapq.heappop(free)))
        heapq.heappush(free, end)
    return gaps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--budget", type=float, default=6e3)
    ap.add_argument("--out", default="results/swarm-overhead")
    args = ap.parse_args()
    from autoscale_ray import search

    cfg = experiment_config("swarm-overhead", Path(args.out) / "cache", drop=("search.probe_budgets",
                                                                             "search.verify_probe"),
                            train={"eval_count": 2},
                            search={"method": "random", "target_budget": 1e6, "ddo": {"replicates": 0},
                                    "swarm": {"size": args.runs - 1, "budget": args.budget}},
                            resources={"max_concurrent_trials": args.slots, "cpus_per_trial": 2 / args.slots})
    t0 = time.time()
    result = search(cfg, Path(args.out) / "search", restart=True, dashboard=False)
    util = result.recommendation["evidence"]["utilisation"]
    spans = trial_spans(Path(args.out) / "search" / "tune")
    gaps = slot_gaps(spans, args.slots)
    lengths = [e - s for s, e in spans]
    print(f"\n| runs | slots | median trial s | utilisation | median gap s | p90 gap s | wall s | total s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {util['trials']} | {args.slots} | {np.median(lengths):.2f} | {util['utilisation']:.2f} | "
          f"{np.median(gaps):.2f} | {np.quantile(gaps, 0.9):.2f} | {util['wall_seconds']:.0f} | "
          f"{time.time() - t0:.0f} |")


if __name__ == "__main__":
    main()
