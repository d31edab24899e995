"""The mixture x scale law's fit in order vs its independent fits on Ray tasks (fits/parallel.py).

The nested law fits one L(N, D) per (mixture, validation domain) and the joint law one problem per
validation domain; each fit depends on its own data alone, so a search's predictor runs them on Ray
tasks (`ray_solve_all`, as the bootstraps of the DDO and budget-law fits do). This script fits
`fits/mixlaw_search.mixlaw_answer` (form choice on the held-out size, the chosen form on all rows, the
bootstrap, the optimum) on one table twice per repeat in one process on one local Ray: in order (the
baseline; its seconds inside the independent fits are printed too, the most running them in parallel
can take off) and on Ray tasks. It prints the times, their ratio and whether the two answers are
identical (every number of the answer).

Tables: `pile` (Data Mixing Laws' Pile runs of 5 domains, tests/data/mixinglaws_5mix, the runs below
1B: 26 mixtures at 70M-410M, the 3 validation domains of the suite's 5Mix tests) or a runs table
(CSV/Parquet) of a finished mixing-law search, e.g. `results/x/runs.parquet`, fitted at
--params/--tokens.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/mixlaw_parallel.py [--cpus 2] [--repeats 2]
        [--table pile | RUNS --params 2e6 --tokens 2e5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mixing_law_5mix import load_table  # noqa: E402

from autoscale_ray.fits.mixlaw_search import mixlaw_answer  # noqa: E402
from autoscale_ray.fits.parallel import ray_solve_all  # noqa: E402
from autoscale_ray.laws.noise import SolveAll, solve_each  # noqa: E402
from autoscale_ray.runs import RunsTable, read_runs  # noqa: E402

PILE_DOMAINS = ("Pile-CC", "ArXiv", "Github")


def timed(solve_all: SolveAll, spent: list[float]) -> SolveAll:
    """`solve_all`, adding its seconds to spent[0]."""
    def run(solve: Callable, items: list) -> list:
        began = time.perf_counter()
        try:
            return solve_all(solve, items)
        finally:
            spent[0] += time.perf_counter() - began
    return run


def answer(table: RunsTable, params: float, tokens: float, solve_all: SolveAll) -> tuple[float, float, dict[str, Any]]:
    """Seconds of the whole answer, seconds inside `solve_all`, the answer."""
    spent = [0.0]
    began = time.perf_counter()
    ans = mixlaw_answer(table, params=params, tokens=tokens, available=None, max_epochs=1.0, level=0.9,
                        seed=0, solve_all=timed(solve_all, spent))
    return time.perf_counter() - began, spent[0], asdict(ans)


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
    table = load_table(PILE_DOMAINS, max_params=1e9) if args.table == "pile" else read_runs(args.table)
    print(f"table {args.table}, {args.cpus} CPUs, target params {args.params:g}, tokens {args.tokens:g}")
    print(f"{'repeat':>6} {'in order s':>10} {'of it in fits s':>15} {'Ray tasks s':>11} {'ratio':>6} "
          f"{'identical':>9} {'form':>7}")
    for i in range(args.repeats):
        base_s, base_fits, base = answer(table, args.params, args.tokens, solve_each)
        par_s, _, par = answer(table, args.params, args.tokens, ray_solve_all)
        same = json.dumps(base, sort_keys=True) == json.dumps(par, sort_keys=True)
        print(f"{i:>6} {base_s:>10.1f} {base_fits:>15.1f} {par_s:>11.1f} {base_s / par_s:>6.2f} {str(same):>9} "
              f"{base['fit']['form']:>7}")
    ray.shutdown()


if __name__ == "__main__":
    main()
