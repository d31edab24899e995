"""The mixture x scale law's fit in order vs its independent fits on Ray tasks (fits/parallel.py).

The nested law fits one L(N, D) per (mixture, validation domain) and the joint law one problem per
validation domain; each fit depends on its own data alone, so a search's predictor runs them on Ray
tasks (`ray_solve_all`, as the bootstraps of the DDO and budget-law fits do). This script fits
`fits/mixlaw_search.mixlaw_answer` (form choice on the held-out size, the chosen form on all rows, the
bootstrap, the optimum) on one table twice per repeat in one process on one local Ray: in order (the
baseline) and on Ray tasks. It prints both times, their ratio and whether the two answers are
identical (every number of the answer).

Tables: `pile` (Data Mixing Laws' Pile runs of 5 domains, tests/data/mixinglaws_5mix, the runs below
1B: 26 mixtures at 70M-410M, 3 validation domains) or a runs table (CSV/Parquet) of a finished
mixing-law search, e.g. `results/x/runs.parquet`, fitted at --params/--tokens.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/mixlaw_parallel.py [--cpus 2] [--repeats 2]
        [--table pile | RUNS --params 2e6 --tokens 2e5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
PILE = ROOT / "tests" / "data" / "mixinglaws_5mix" / "runs.csv"
PILE_DOMAINS = ("Pile-CC", "Github", "ArXiv")  # the validation domains the suite's 5mix tests use


def pile_table(folder: Path) -> Path:
    frame = pd.read_csv(PILE)
    keep = [c for c in frame.columns if not c.startswith("loss.")] + [f"loss.{d}" for d in PILE_DOMAINS]
    path = folder / "pile_small.csv"
    frame.loc[frame["params"] < 1e9, keep].to_csv(path, index=False)
    return path


def answer(path: Path, params: float, tokens: float, parallel: bool) -> tuple[float, dict]:
    from dataclasses import asdict

    from autoscale_ray.fits.mixlaw_search import mixlaw_answer
    from autoscale_ray.fits.parallel import ray_solve_all
    from autoscale_ray.laws.noise import solve_each
    from autoscale_ray.runs import read_runs

    table = read_runs(path)
    started = time.perf_counter()
    ans = mixlaw_answer(table, params=params, tokens=tokens, available=None, max_epochs=1.0, level=0.9,
                        seed=0, solve_all=ray_solve_all if parallel else solve_each)
    return time.perf_counter() - started, asdict(ans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--table", default="pile")
    parser.add_argument("--params", type=float, default=1e9)
    parser.add_argument("--tokens", type=float, default=20000 * 2 ** 20)
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory() as tmp:
        path = pile_table(Path(tmp)) if args.table == "pile" else Path(args.table)
        print(f"table {path.name}, {args.cpus} CPUs, target params {args.params:g}, tokens {args.tokens:g}")
        print(f"{'repeat':>6} {'in order s':>10} {'Ray tasks s':>11} {'ratio':>6} {'identical':>9} {'form':>7}")
        for i in range(args.repeats):
            base_s, base = answer(path, args.params, args.tokens, parallel=False)
            par_s, par = answer(path, args.params, args.tokens, parallel=True)
            same = json.dumps(base, sort_keys=True) == json.dumps(par, sort_keys=True)
            print(f"{i:>6} {base_s:>10.1f} {par_s:>11.1f} {base_s / par_s:>6.2f} {str(same):>9} "
                  f"{base['fit']['form']:>7}")
    ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
