"""A search's driver: its wall time, its peak memory and whether it imported torch, for this checkout
and an older one, each search in a fresh process.

Runs the end-to-end tests' search (tests/helpers.py SMALL_CONFIG: 18 gpt2-nano trials, 2 slots, a
fresh local Ray) `--repeats` times per source tree (`--src`, default this checkout; an older
checkout, e.g. a `git worktree`, is imported through PYTHONPATH with this environment), the trees
taking turns so a slow spell of the machine hits both; the corpus is packed once beforehand. Also
times a bad config's one-line refusal (`run missing.yaml`), which is the command's start alone.

    .venv/bin/python benchmarks/driver_start.py --repeats 3 --src . /path/to/older/checkout
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from helpers import experiment_config, write_config  # noqa: E402

# the command, then the driver's own account: peak resident memory and whether torch was imported
DRIVER = ("import json, resource, sys; from autoscale_ray.cli import main; code = main(sys.argv[1:]); "
          "print(json.dumps({'code': code, 'maxrss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
          "'torch': 'torch' in sys.modules}), file=sys.stderr)")


def command(src: Path, *args: str) -> tuple[float, dict, str]:
    env = {**os.environ, "PYTHONPATH": str(src), "RAY_DATA_DISABLE_PROGRESS_BARS": "1", "RAY_ADDRESS": ""}
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", DRIVER, *args], env=env, cwd=src, capture_output=True,
                          text=True, timeout=900)
    seconds = time.perf_counter() - began
    return seconds, json.loads(proc.stderr.strip().splitlines()[-1]), proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--src", type=Path, nargs="+", default=[ROOT])
    args = parser.parse_args()
    srcs = [s.resolve() for s in args.src]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(Path(tmp) / "e2e.yaml", experiment_config("e2e", Path(tmp) / "cache"))
        _, first, err = command(srcs[0], "run", str(cfg), "--out", str(Path(tmp) / "warm"))  # packs the corpus
        assert first["code"] == 0, err[-2000:]
        search: dict[Path, list[tuple[float, dict]]] = {s: [] for s in srcs}
        refusal: dict[Path, list[float]] = {s: [] for s in srcs}
        for i in range(args.repeats):
            for n, src in enumerate(srcs):
                seconds, info, err = command(src, "run", str(cfg), "--out", str(Path(tmp) / f"o{n}-{i}"))
                assert info["code"] == 0, err[-2000:]
                search[src].append((seconds, info))
                seconds, info, _ = command(src, "run", str(Path(tmp) / "missing.yaml"), "--out", str(Path(tmp) / "x"))
                assert info["code"] == 2
                refusal[src].append(seconds)
        print("| source | search s (each) | median | driver peak MB (median) | torch in driver | "
              "bad config refused s (median) |\n| --- | --- | --- | --- | --- | --- |")
        for src in srcs:
            secs = [s for s, _ in search[src]]
            mb = statistics.median(i["maxrss_mb"] for _, i in search[src])
            torch = {i["torch"] for _, i in search[src]}
            print(f"| {src} | {' / '.join(f'{s:.1f}' for s in secs)} | {statistics.median(secs):.1f} | {mb:.0f} | "
                  f"{'/'.join(map(str, sorted(torch)))} | {statistics.median(refusal[src]):.2f} |")


if __name__ == "__main__":
    main()
