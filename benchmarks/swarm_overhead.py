"""Swarm overhead: how busy the trial slots stay when a swarm trains many tiny proxies.

A `random` swarm of `--runs` gpt2-tiny proxies (about two seconds each at the default budget) on the
synthetic corpus (CPU, local Ray, `--slots` trial slots), through `autoscale-ray run`'s code path.
Reported from the search's own `evidence.utilisation`: utilisation = busy trial time / (the Tune
experiment's wall x slots); the idle gap between consecutive trials in one slot (median, 90th
percentile, total), and the experiment's start (until the first trial starts) and end (after the
last one ends), from the driver's view (autoscale_ray/tuning/slots.py). Baseline, in the same
process and Ray instance: a bare Tune experiment of the same shape whose trials sleep the search's
mean trial time -- Tune's own ceiling on this machine.

    .venv/bin/python benchmarks/swarm_overhead.py [--runs 64] [--slots 2] [--budget 2.2e4] [--no-reuse]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import experiment_config  # noqa: E402


def bare_tune(trials: int, slots: int, seconds: float, storage: Path) -> tuple[float, float]:
    """The baseline: a bare Tune experiment of the same shape (function trainables that sleep
    `seconds`, `slots` at a time, actors reused unless
    `--no-reuse` patched TuneConfig for both runs). Returns (utilisation, start s) -- Tune's own
    ceiling on this machine."""
    from ray import tune

    starts: list[float] = []

    class Starts(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            starts.append(time.time())

    def sleeper(config):
        started = time.time()
        time.sleep(seconds)
        tune.report({"loss": 0.0, "busy": time.time() - started})

    tuner = tune.Tuner(tune.with_resources(sleeper, {"cpu": 2 / slots}),
                       param_space={"i": tune.grid_search(list(range(trials)))},
                       tune_config=tune.TuneConfig(max_concurrent_trials=slots, reuse_actors=True),
                       run_config=tune.RunConfig(name="bare", storage_path=str(storage.resolve()), verbose=0,
                                                 callbacks=[Starts()]))
    t0 = time.time()
    grid = tuner.fit()
    wall = time.time() - t0
    busy = sum(r.metrics["time_total_s"] for r in grid if r.metrics)
    return busy / (wall * slots), min(starts) - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=64)
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--budget", type=float, default=2.2e4)
    ap.add_argument("--out", default="results/swarm-overhead")
    ap.add_argument("--no-reuse", action="store_true",
                    help="the 'before': a new trial actor per trial (Tune's reuse_actors off), search and baseline")
    args = ap.parse_args()
    if args.no_reuse:
        from ray import tune

        config = tune.TuneConfig

        def no_reuse(**kw):
            return config(**{**kw, "reuse_actors": False})

        tune.TuneConfig = no_reuse  # make_tuner reads tune.TuneConfig when it builds the Tuner
    import ray

    from autoscale_ray import search

    cfg = experiment_config("swarm-overhead", Path(args.out) / "cache", drop=("search.probe_budgets",
                                                                             "search.verify_probe"),
                            train={"eval_count": 2, "model": "gpt2-tiny"},  # as RESULTS.md measured
                            search={"method": "random", "target_budget": 1e6, "ddo": {"replicates": 0},
                                    "swarm": {"size": args.runs - 1, "budget": args.budget}},
                            resources={"max_concurrent_trials": args.slots, "cpus_per_trial": 2 / args.slots})
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # one instance for both runs
    result = search(cfg, Path(args.out) / "search", restart=True, dashboard=False)
    util = result.recommendation["evidence"]["utilisation"]
    mean_busy = util["busy_trial_seconds"] / util["trials"]
    bare_util, bare_head = bare_tune(util["trials"], args.slots, mean_busy, Path(args.out) / "bare")
    print(f"\n| run | trials | slots | mean trial s | utilisation | median gap s | p90 gap s | gaps slot-s | "
          f"start s | end s | wall s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| search | {util['trials']} | {args.slots} | {mean_busy:.2f} | {util['utilisation']:.2f} | "
          f"{util['median_gap_s']:.2f} | {util['p90_gap_s']:.2f} | {util['gap_slot_seconds']:.1f} | "
          f"{util['start_s']:.1f} | {util['end_s']:.1f} | {util['wall_seconds']:.0f} |")
    print(f"| bare Tune (sleep {mean_busy:.2f} s) | {util['trials']} | {args.slots} | {mean_busy:.2f} | "
          f"{bare_util:.2f} | | | | {bare_head:.1f} | | |")
    print(f"\nutilisation ratio search / bare Tune: {util['utilisation'] / bare_util:.2f}")


if __name__ == "__main__":
    main()
