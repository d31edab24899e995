"""A search's start: the config's checks with the model presets as plain data (train/presets.py, now)
vs with the presets' module imported (train/models.py, torch and transformers: what the check
imported before), each in a fresh interpreter.

Two timings per repeat: `load_config` of the end-to-end tests' config, and `autoscale-ray run` of it
until its first line (Ray started: the command is stopped there). The baseline imports
`autoscale_ray.train.models` first, as the check did.

    .venv/bin/python benchmarks/config_start.py [--repeats 2]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import experiment_config, write_config  # noqa: E402

BEFORE = "import autoscale_ray.train.models; "  # what the model check imported before


def load_seconds(cfg: Path, prefix: str) -> float:
    code = (f"import time; t = time.perf_counter(); {prefix}from autoscale_ray.config import load_config; "
            f"load_config({str(cfg)!r}); print(time.perf_counter() - t)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def first_line_seconds(cfg: Path, out: Path, prefix: str) -> float:
    """Seconds from starting `run` to its first line (the Ray line); the search is stopped there."""
    code = f"{prefix}from autoscale_ray.cli import main; main(['run', {str(cfg)!r}, '--out', {str(out)!r}])"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True, start_new_session=True, env={**os.environ, "RAY_ADDRESS": ""})
    try:
        for line in proc.stderr:
            if line.startswith("[autoscale-ray] Ray:"):
                return time.perf_counter() - started
        raise RuntimeError("run ended without its first line")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(Path(tmp) / "e2e.yaml", experiment_config("e2e", Path(tmp) / "cache"))
        print(f"{'repeat':>6} {'what':<22} {'presets module s':>17} {'presets as data s':>18} {'ratio':>6}")
        for i in range(args.repeats):
            before, now = load_seconds(cfg, BEFORE), load_seconds(cfg, "")
            print(f"{i:>6} {'load_config':<22} {before:>17.2f} {now:>18.2f} {before / now:>6.1f}")
            before = first_line_seconds(cfg, Path(tmp) / f"b{i}", BEFORE)
            now = first_line_seconds(cfg, Path(tmp) / f"n{i}", "")
            print(f"{i:>6} {'run to its first line':<22} {before:>17.2f} {now:>18.2f} {before / now:>6.2f}")


if __name__ == "__main__":
    main()
