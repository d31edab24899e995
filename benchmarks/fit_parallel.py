"""The fits at the end of a search: bootstrap refits in order vs on Ray tasks (fits/parallel.py).

Runs the cluster tests' search shape once (`autoscale-ray run`: an LR sweep of 4 at two probes, then
DDO at both with 2 base replicates, 30 gpt2-nano trials, local Ray), then, in this process, refits its
trials' rows (the search's own done/ records, read once) with a `Predictor` twice on the same Ray
instance: the bootstraps' refits in order (the baseline) and on Ray tasks (what the search's predictor
actor does). Prints the seconds of both (DDO optima at every probe + the recommendation: projection,
budget law, losses, LR), their ratio, whether the two recommendations are identical, and whether they
give the search's own weights (the Predictor is built with the search's settings,
`pipeline.predictor_settings`).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/fit_parallel.py [--cpus 2] [--repeats 2]
        [--out results/demo --config experiments/local.yaml]   (refit a finished search instead)
        [--bootstrap 100 20]   (instead: the fits on Ray tasks with each search.bootstrap count)
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import experiment_config, write_config  # noqa: E402

EXE = str(Path(sys.executable).with_name("autoscale-ray"))
META = ("key", "stage", "probe", "arm", "round")


def trials(runs: pd.DataFrame, store) -> list[tuple[str, list[dict], dict]]:
    """Each trial's key, its done/ record's rows and its plan tags, in the runs table's order."""
    from autoscale_ray.tuning.layout import read_done

    return [(key, read_done(store, key), {k: (None if pd.isna(g[k].iloc[0]) else g[k].iloc[0]) for k in META[2:]})
            for key, g in runs.groupby("key", sort=False)]


def refit(cfg, done: list[tuple[str, list[dict], dict]], searched: dict, parallel: bool,
          bootstrap: int | None = None) -> tuple[float, dict]:
    from autoscale_ray.pipeline import base_weights, predictor_settings
    from autoscale_ray.predictor import Predictor

    domains = tuple(searched["weights"])
    settings = predictor_settings(cfg, domains, base_weights(cfg, domains), searched["available_tokens"])
    if bootstrap is not None:  # as the config's search.bootstrap would
        settings["bootstrap"] = bootstrap
    p = Predictor(**settings, parallel_draws=parallel)
    for key, rows, meta in done:
        p.add(key, rows, meta)
    started = time.perf_counter()
    for probe in p.probes:
        p.ddo_optimum(probe)
    rec = p.recommendation()
    return time.perf_counter() - started, rec


def bootstraps(cfg, done: list[tuple[str, list[dict], dict]], searched: dict, counts: list[int],
               repeats: int) -> None:
    """Fit seconds per search.bootstrap count (on Ray tasks), as a ratio to the first count's, and
    how far each answer's weights and intervals are from the first's."""
    print(f"{'repeat':>6} {'bootstrap':>9} {'fit s':>7} {'ratio':>6} {'max |dw|':>9} {'max |d interval|':>17}")
    for i in range(repeats):
        base_s, base = None, None
        for n in counts:
            secs, rec = refit(cfg, done, searched, parallel=True, bootstrap=n)
            if base is None:  # the first count is the baseline
                base_s, base = secs, rec
            dw = max(abs(rec["weights"][d] - base["weights"][d]) for d in base["weights"])
            di = max(abs(a - b) for d in base["weights_interval"]
                     for a, b in zip(rec["weights_interval"][d], base["weights_interval"][d]))
            print(f"{i:>6} {n:>9} {secs:>7.1f} {base_s / secs:>6.2f} {dw:>9.4f} {di:>17.4f}")


def search_to_refit(tmp: Path) -> tuple[Path, Path]:
    """The cluster tests' search shape, run once into tmp: (its config, its output folder)."""
    cfg_path = write_config(tmp / "fits.yaml", experiment_config(
        "fits", tmp / "cache", drop=("search.lr",),
        search={"lr_grid": [1e-3, 3e-3, 1e-2, 3e-2], "ddo": {"rounds": 1, "replicates": 2}}))
    out = tmp / "out"
    subprocess.run([EXE, "run", str(cfg_path), "--out", str(out), "--json"], check=True,
                   capture_output=True, text=True)
    return cfg_path, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, help="refit this finished search's output (e.g. results/demo) "
                                                 "instead of running one; needs --config")
    parser.add_argument("--config", type=Path, help="the config that search ran with")
    parser.add_argument("--bootstrap", type=int, nargs="+", metavar="N",
                        help="instead: refit on Ray tasks with each search.bootstrap N (the first is the "
                             "baseline), e.g. 100 20")
    args = parser.parse_args()
    if (args.out is None) != (args.config is None):
        parser.error("--out and --config go together")
    logging.disable(logging.WARNING)  # the fits' warnings are the search's, printed when it ran

    import ray

    from autoscale_ray.config import load_config
    from autoscale_ray.storage import Store

    with tempfile.TemporaryDirectory() as tmp:  # the done/ records are read by the refits
        cfg_path, out = (args.config, args.out) if args.out else search_to_refit(Path(tmp))
        runs = pd.read_parquet(out / "runs.parquet")  # each trial's key and its plan tags
        searched = json.loads((out / "recommendation.json").read_text())
        cfg, done = load_config(cfg_path), trials(runs, Store(out))
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        print(f"{runs['key'].nunique()} runs; Ray with {args.cpus} CPUs")
        if args.bootstrap:
            bootstraps(cfg, done, searched, args.bootstrap, args.repeats)
            ray.shutdown()
            return
        print(f"{'repeat':>6} {'in order s':>11} {'Ray tasks s':>12} {'ratio':>6} {'identical':>10} "
              f"{'= search':>9}")
        for i in range(args.repeats):
            base_s, base = refit(cfg, done, searched, parallel=False)
            par_s, par = refit(cfg, done, searched, parallel=True)
            same = json.dumps(base, sort_keys=True, default=str) == json.dumps(par, sort_keys=True, default=str)
            as_searched = base["weights"] == searched["weights"] and base["lr"] == searched["lr"]
            print(f"{i:>6} {base_s:>11.1f} {par_s:>12.1f} {base_s / par_s:>6.2f} {str(same):>10} "
                  f"{str(as_searched):>9}")
        ray.shutdown()

if __name__ == "__main__":
    main()
