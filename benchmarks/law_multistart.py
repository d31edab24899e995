"""Fast multi-start vs the naive per-start scipy loop for the L(N, D) Huber-LSE fit.

Epoch's procedure runs scipy L-BFGS-B from each of 4,500 grid starts in turn and keeps the best.
`multistart.multistart_minimize` screens and races the starts with a batched L-BFGS and polishes
a few with scipy. This script checks that both reach the same best objective (relative
difference <= 1e-6) and prints the speed ratio, on Epoch's 240 Chinchilla points and on a
synthetic set of 3,000 checkpoints (12 model sizes x 250 checkpoints).

Times are process CPU seconds with BLAS pinned to one thread, so other load on the machine
does not change them much. The naive loops are timed on a random subset of starts and
extrapolated linearly to the full grid; `--full-naive` also runs a naive loop over the full
grid to verify the optimum (that run's time is then measured, not extrapolated).

    .venv/bin/python benchmarks/law_multistart.py [--naive-starts 150] [--full-naive analytic]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from autoscale_ray.laws.multistart import (HuberLSEProblem, epoch_grid, multistart_minimize,  # noqa: E402
                                           naive_multistart)
from autoscale_ray.formatting import format_table  # noqa: E402

CHINCHILLA = Path(__file__).resolve().parents[1] / "tests" / "data" / "chinchilla_svg_extracted_data.csv"


def chinchilla() -> HuberLSEProblem:
    df = pd.read_csv(CHINCHILLA).sort_values("loss", kind="stable").iloc[:-5]  # Epoch: drop 5 highest
    n = df["Model Size"].to_numpy()
    d = df["Training FLOP"].to_numpy() / (6 * n)
    return HuberLSEProblem(np.column_stack([np.log(n), np.log(d)]), np.log(df["loss"].to_numpy()))


def synthetic(seed: int = 0, sizes: int = 12, checkpoints: int = 250) -> HuberLSEProblem:
    """Checkpoints of `sizes` models (10M..1B params, 20 tokens/param) from E=1.69, A=406.4,
    B=410.7, alpha=0.34, beta=0.28 (Chinchilla's published fit) with 1% log-normal noise."""
    rng = np.random.default_rng(seed)
    n = np.repeat(np.logspace(7, 9, sizes), checkpoints)
    frac = np.tile(np.logspace(-2, 0, checkpoints), sizes)
    d = 20 * n * frac
    loss = (1.69 + 406.4 / n ** 0.34 + 410.7 / d ** 0.28) * np.exp(rng.normal(0, 0.01, n.size))
    return HuberLSEProblem(np.column_stack([np.log(n), np.log(d)]), np.log(loss))


def cpu(fn):
    t0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - t0, time.perf_counter() - w0


def run(name: str, problem: HuberLSEProblem, k: int, full: str, rng: np.random.Generator) -> list[list]:
    grid = epoch_grid(2)
    fast, fast_cpu, fast_wall = cpu(lambda: multistart_minimize(problem, grid))
    rows = [[name, problem.x.shape[0], "fast (batched race + polish)", len(grid), "measured",
             fast_cpu, fast_wall, fast.fun, 0.0, 1.0]]
    subset = grid[rng.choice(len(grid), size=min(k, len(grid)), replace=False)]
    for label, analytic in (("naive scipy, finite-diff grad (Epoch)", False),
                            ("naive scipy, analytic grad", True)):
        if full == ("analytic" if analytic else "fd"):
            res, c, w = cpu(lambda: naive_multistart(problem, grid, analytic_grad=analytic))
            how, starts = "measured", len(grid)
        else:
            res, c, w = cpu(lambda: naive_multistart(problem, subset, analytic_grad=analytic))
            how, starts = f"{len(subset)} starts x {len(grid) / len(subset):.1f}", len(subset)
            c, w = c * len(grid) / len(subset), w * len(grid) / len(subset)
        rel = (res.fun - fast.fun) / abs(fast.fun)
        rows.append([name, problem.x.shape[0], label, starts, how, c, w, res.fun, rel, c / fast_cpu])
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--naive-starts", type=int, default=150,
                    help="random grid starts the naive loops are timed on (extrapolated to 4,500)")
    ap.add_argument("--full-naive", choices=("none", "analytic", "fd"), default="analytic",
                    help="which naive loop also runs over the full grid, to verify the optimum")
    ap.add_argument("--datasets", default="chinchilla,synthetic")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    makers = {"chinchilla": chinchilla, "synthetic": synthetic}
    rows = []
    for name in args.datasets.split(","):
        rows += run(name, makers[name](), args.naive_starts, args.full_naive, rng)
    print(format_table(["data", "points", "method", "starts run", "time is", "cpu s (4500)",
                        "wall s (4500)", "best objective", "rel diff vs fast", "cpu ratio"],
                       rows, floatfmt=".4g"))
    print("\nrel diff = (naive best - fast best) / fast best; a negative value would mean the naive "
          "loop found a lower objective. cpu ratio = naive cpu s / fast cpu s.")


if __name__ == "__main__":
    main()
