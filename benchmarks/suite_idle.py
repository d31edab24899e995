"""How idle the machine's CPUs are during each test: what running tests in parallel could fill.

As a pytest plugin (`-p suite_idle`, with benchmarks/ on PYTHONPATH) it reads the machine's CPU
counters (/proc/stat: idle + iowait against all jiffies) before and after each test (setup, call and
teardown, so a module fixture counts in its first test) and writes each test's wall seconds and idle
fraction to $SUITE_IDLE_OUT (default suite_idle.json). As a script it prints the files by their
idle seconds (wall x idle fraction), the total, and the tests with the most idle seconds. A test that
keeps both cores busy is idle 0; a single-threaded test on 2 cores about 0.5.

    PYTHONPATH=benchmarks SUITE_IDLE_OUT=idle.json .venv/bin/python -m pytest -q -p suite_idle \\
        -p no:cacheprovider tests/...
    .venv/bin/python benchmarks/suite_idle.py idle.json [--top 12]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

_ROWS: list[dict[str, Any]] = []


def _cpu() -> tuple[int, int]:
    """(idle + iowait, all) jiffies of the whole machine."""
    with open("/proc/stat", encoding="ascii") as fh:
        values = [int(x) for x in fh.readline().split()[1:]]
    return values[3] + values[4], sum(values)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    idle0, all0 = _cpu()
    began = time.time()
    yield
    idle1, all1 = _cpu()
    _ROWS.append({"test": item.nodeid, "wall": time.time() - began,
                  "idle": (idle1 - idle0) / max(1, all1 - all0)})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    Path(os.environ.get("SUITE_IDLE_OUT", "suite_idle.json")).write_text(json.dumps(_ROWS), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    rows = json.loads(Path(args.json).read_text(encoding="utf-8"))
    files: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for r in rows:
        f = files[r["test"].split("::")[0]]
        f[0] += r["wall"]
        f[1] += r["wall"] * r["idle"]
    wall = sum(w for w, _ in files.values())
    idle = sum(i for _, i in files.values())
    print(f"{len(rows)} tests, {wall:.0f} s, idle CPU {idle:.0f} s-equivalents ({idle / wall:.2f} of the time)\n")
    print("| file | seconds | idle seconds | idle fraction |\n| --- | ---: | ---: | ---: |")
    for name, (w, i) in sorted(files.items(), key=lambda kv: -kv[1][1]):
        print(f"| `{name}` | {w:.0f} | {i:.0f} | {i / w:.2f} |")
    print(f"\nthe {args.top} tests with the most idle seconds:")
    for r in sorted(rows, key=lambda r: -r["wall"] * r["idle"])[:args.top]:
        print(f"  {r['wall'] * r['idle']:5.1f} s idle of {r['wall']:5.1f} s  {r['test']}")


if __name__ == "__main__":
    main()
