"""Where the test suite's time goes: per test file, and inside one end-to-end search of the tests' config.

`LOG`: the output of `pytest -q -ra --durations=0` (every phase's seconds); the phases (setup, call,
teardown) are summed per file and the files printed by their share of the total. `--search`: one
search of tests/helpers.py's SMALL_CONFIG (18 gpt2-nano trials, 2 slots) through `pipeline.run`,
split into Ray's start, the Tune experiment (its start until the first trial runs, from the search's
own evidence.utilisation, and the trials), and the rest (corpus, fits, report), as shares of the
search's wall time.

    .venv/bin/python -m pytest -q -ra --durations=0 -p no:cacheprovider > suite.log
    .venv/bin/python benchmarks/suite_time.py suite.log [--search]
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import config_file  # noqa: E402

PHASE = re.compile(r"\s*([\d.]+)s (?:setup|call|teardown)\s+(tests/[^:\s]+)")


def per_file(log: Path) -> list[tuple[str, float]]:
    totals: collections.Counter[str] = collections.Counter()
    for line in log.read_text().splitlines():
        if m := PHASE.match(line):
            totals[m.group(2)] += float(m.group(1))
    return totals.most_common()


def one_search() -> dict[str, float]:
    import ray

    from autoscale_ray.pipeline import run

    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_s = time.perf_counter() - began
        rec = run(config_file(Path(tmp), "suite"), out=Path(tmp) / "out")
        wall = time.perf_counter() - began
        ray.shutdown()
    util = rec["evidence"]["utilisation"]
    return {"wall": wall, "ray start": ray_s, "Tune start": util["start_s"],
            "Tune trials": util["wall_seconds"] - util["start_s"],
            "rest (corpus, fits, report)": wall - ray_s - util["wall_seconds"],
            "mean trial": util["busy_trial_seconds"] / util["trials"], "trials": util["trials"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path, nargs="?")
    parser.add_argument("--search", action="store_true")
    args = parser.parse_args()
    if args.log:
        files = per_file(args.log)
        total = sum(s for _, s in files)
        print(f"| file | seconds | share |  ({total:.0f} s in all)\n| --- | --- | --- |")
        for name, seconds in files:
            print(f"| `{name}` | {seconds:.0f} | {100 * seconds / total:.1f}% |")
    if args.search:
        parts = one_search()
        print(f"\none search, {parts.pop('trials'):.0f} trials, mean trial {parts.pop('mean trial'):.2f} s")
        wall = parts.pop("wall")
        print(f"| part | seconds | share of {wall:.0f} s |\n| --- | --- | --- |")
        for name, seconds in parts.items():
            print(f"| {name} | {seconds:.1f} | {seconds / wall:.2f} |")


if __name__ == "__main__":
    main()
