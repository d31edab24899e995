"""How long `autoscale-ray run --restart` takes to refuse a folder another search is using.

One search of the tests' small config (tests/helpers.py; gpt2-tiny proxies, 4 replicates and a second
DDO round, so it runs for minutes) is
started in a subprocess; once it holds its folder, `run --restart` into the same folder is timed
`--repeats` times for each source tree given (`--src`, default this checkout; an older checkout,
e.g. a `git worktree`, is imported through PYTHONPATH with this checkout's environment), and the
lines it printed are counted. Then the search is stopped.

    .venv/bin/python benchmarks/busy_refusal.py --repeats 2 [--src . /path/to/older/checkout]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from helpers import experiment_config, write_config  # noqa: E402


def refuse(src: Path, cfg: Path, out: Path) -> tuple[float, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(src), "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "autoscale_ray.cli", "run", str(cfg), "--out", str(out),
                           "--restart"], env=env, cwd=src, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - began
    assert proc.returncode == 2 and "another autoscale-ray run is using this folder" in proc.stderr, proc.stderr
    return seconds, proc.stderr.strip().splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--src", type=Path, nargs="+", default=[ROOT])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(Path(tmp) / "busy.yaml",
                           experiment_config("busy", Path(tmp) / "cache", train={"model": "gpt2-tiny"},
                                             search={"ddo": {"rounds": 2, "replicates": 4}}))
        out = Path(tmp) / "out"
        search = subprocess.Popen([sys.executable, "-m", "autoscale_ray.cli", "run", str(cfg), "--out", str(out)],
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            deadline = time.time() + 600
            while not (out / "progress.json").exists():  # written once the lock is held
                if time.time() > deadline or search.poll() is not None:
                    raise SystemExit("the search did not start")
                time.sleep(0.5)
            print("| source | refusal seconds | lines printed | first line |\n| --- | --- | --- | --- |")
            for src in args.src:
                for _ in range(args.repeats):
                    seconds, lines = refuse(src.resolve(), cfg, out)
                    print(f"| {src} | {seconds:.1f} | {len(lines)} | {lines[0][:60]} |")
            if search.poll() is not None:
                raise SystemExit("the search ended before the measurements did: lengthen it")
        finally:
            os.killpg(search.pid, signal.SIGKILL)
            search.wait()


if __name__ == "__main__":
    main()
