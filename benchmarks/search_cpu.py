"""Where one search's CPU goes: CPU seconds per kind of process (the driver, Ray's own processes, the
trial actors, the predictor, ...) while `autoscale-ray run` of the end-to-end tests' config runs.

The search's processes (the driver and its descendants) are read from /proc every 0.1 s (user +
system CPU since each started; a process's kind is its command line: Ray renames a worker
`ray::<actor or task>`, kept over the `ray::IDLE` it returns to). The corpus is packed once
beforehand. Linux only. Prints wall seconds, CPU seconds, and a table by kind, largest first.

    .venv/bin/python benchmarks/search_cpu.py [--repeats 1]
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from helpers import experiment_config, write_config  # noqa: E402

EXE = str(Path(sys.executable).with_name("autoscale-ray"))
TICK = os.sysconf("SC_CLK_TCK")
# kinds by a piece of the command line, first match wins; any other is shown by its first words
KINDS = ("gcs_server", "raylet", "dashboard/agent", "ray-dashboard-", "dashboard.py", "runtime_env/agent",
         "log_monitor", "monitor.py", "autoscale-ray")


def processes() -> dict[tuple[str, str], tuple[str, str, float]]:
    """(pid, start time) -> (parent pid, command line, CPU seconds) of every readable process."""
    seen = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        seen[(pid, fields[19])] = (fields[1], cmd, (int(fields[11]) + int(fields[12])) / TICK)
    return seen


def kind(cmd: str) -> str:
    if cmd.startswith("ray::"):
        return cmd.split()[0]
    return next((k for k in KINDS if k in cmd), " ".join(cmd.split()[:2])[:60] or "(exited)")


def measure(cfg: Path, out: Path) -> tuple[float, dict[str, list[float]]]:
    """Wall seconds of the search and the CPU seconds of each process it started (its driver and
    every descendant: a local Ray's processes are the driver's children, its workers the raylet's)."""
    names: dict[tuple[str, str], str] = {}
    cpu: dict[tuple[str, str], float] = {}
    began = time.perf_counter()
    proc = subprocess.Popen([EXE, "run", str(cfg), "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "RAY_ADDRESS": ""})
    ours = {str(proc.pid)}
    while True:
        done = proc.poll() is not None
        now = processes()
        grew = True
        while grew:  # the search's process tree, however the snapshot happens to be ordered
            size = len(ours)
            ours |= {pid for (pid, _), (parent, _, _) in now.items() if parent in ours}
            grew = len(ours) > size
        for key, (_, cmd, seconds) in now.items():
            if key[0] not in ours:
                continue
            # the latest name, but an actor's or task's over the ray::IDLE its worker returns to
            if cmd and not (cmd.startswith("ray::IDLE") and names.get(key, "").startswith("ray::")):
                names[key] = cmd
            cpu[key] = seconds
        if done:
            break
        time.sleep(0.1)
    wall = time.perf_counter() - began
    assert proc.returncode == 0, f"the search failed (exit {proc.returncode})"
    by_kind: dict[str, list[float]] = collections.defaultdict(list)
    for key, seconds in cpu.items():
        if seconds > 0.05:
            by_kind[kind(names.get(key, ""))].append(seconds)
    return wall, by_kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = write_config(Path(tmp) / "e2e.yaml", experiment_config("e2e", Path(tmp) / "cache"))
        subprocess.run([EXE, "run", str(cfg), "--out", str(Path(tmp) / "warm")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # packs the corpus
        for i in range(args.repeats):
            wall, by_kind = measure(cfg, Path(tmp) / f"out{i}")
            total = sum(map(sum, by_kind.values()))
            print(f"repeat {i}: wall {wall:.1f} s, CPU {total:.1f} s (2 cores could give {2 * wall:.1f})")
            print("| process kind | processes | CPU s | share |\n| --- | --- | --- | --- |")
            for name, secs in sorted(by_kind.items(), key=lambda kv: -sum(kv[1])):
                print(f"| `{name}` | {len(secs)} | {sum(secs):.1f} | {sum(secs) / total:.0%} |")


if __name__ == "__main__":
    main()
