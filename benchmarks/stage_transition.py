"""Two slots after a stage transition: the same tiny search with a fixed LR vs with an LR sweep.

Runs `autoscale-ray run --json` twice on a fresh local Ray (2 CPUs, 2 slots of 0.5 CPU, gpt2-nano
proxies of about a second: tests/helpers.py's config): once with `lr: 3e-3` (18 DDO trials from the
start) and once with `lr_grid` (8 LR trials, then the 18 DDO trials once the sweep is in). Prints each
search's `evidence.utilisation`: trials, the Tune experiment's wall seconds, utilisation (busy trial
time / wall x slots) and the median and 90th-percentile idle gap before a trial in its slot. Before
the search kept one idle actor per slot between stages (autoscale_ray/tuning/idle_actors.py), the
sweep's gaps were about a trial long: after the LR stage the trials ran one at a time (RESULTS.md).

    .venv/bin/python benchmarks/stage_transition.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import experiment_config, write_config  # noqa: E402

EXE = str(Path(sys.executable).with_name("autoscale-ray"))
SHAPES = {"fixed LR": ((), {}),
          "LR sweep": (("search.lr",), {"lr_grid": [1e-3, 3e-3, 1e-2, 3e-2]})}


def main() -> None:
    print(f"{'search':>9} {'trials':>6} {'wall s':>7} {'utilisation':>11} {'median gap s':>12} {'p90 gap s':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (drop, search) in SHAPES.items():
            folder = Path(tmp) / name.replace(" ", "-")
            cfg = write_config(folder.with_suffix(".yaml"), experiment_config(
                "transition", Path(tmp) / "cache", drop=drop, search=search))
            done = subprocess.run([EXE, "run", str(cfg), "--out", str(folder), "--json"], check=True,
                                  capture_output=True, text=True)
            u = json.loads(done.stdout)["evidence"]["utilisation"]
            print(f"{name:>9} {u['trials']:>6} {u['wall_seconds']:>7.1f} {u['utilisation']:>11.2f} "
                  f"{u['median_gap_s']:>12.2f} {u['p90_gap_s']:>9.2f}")


if __name__ == "__main__":
    main()
