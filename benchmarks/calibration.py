"""Calibration of the recommendation's intervals on oracles with known optima.

The mixture oracles of benchmarks/search_efficiency.py (separable + interactions, and transfer
between domains) stand in for training; each evaluation adds Gaussian noise (sd `--noise`) to
every domain's loss. DDOPlan + Predictor run exactly as a search drives them (probes 1e7 and
4e7, target 1e9, base replicates and refinement rounds as configured). For each noise seed the
90% intervals of the projected weights are checked against the TRUE optimum at the target
(noise-free SLSQP on the simplex): coverage = share of (seed, domain) pairs inside, and the mean
interval width; also in how many seeds the budget transfer law (fits/budget_law.py) fitted the
runs well enough to join the intervals, and the recommendation's noise-free objective gap to the
optimum at the target (the uniform mixture's in brackets). The third oracle, a Data Mixing Laws
surface, is held out: neither DDO's surrogates nor the budget law has its form.

The LR oracle: final loss L(lr, D) = L0(D) + k (log lr - log LR*(D))^2 + noise with
LR*(D) = B D^-beta (beta 0.25, off the 0.32 prior), swept on a 4-LR grid at two horizons as the
search does, the LR law's 90% interval at the target checked against the true LR*(target).

    .venv/bin/python benchmarks/calibration.py [--seeds 20] [--noise 0.01]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from autoscale_ray.predictor import Predictor
from autoscale_ray.searchers.ddo import DDOPlan, PlanConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import search_efficiency as se  # noqa: E402  (the oracles)
from helpers import drive_plan  # noqa: E402  (the tests' synchronous driver)

LR_B, LR_BETA = 0.5, 0.25          # the LR oracle's true LR*(D) = B D^-beta
LR_PROBES = (1e7, 4e7)
LR_TARGET = 1e9


def mixture_run(surface, seed: int, noise: float, surrogate: str, rounds: int,
                replicates: int) -> dict:
    cfg = PlanConfig(probes=list(se.PROBES), base_weights={d: 0.25 for d in se.DOMAINS},
                     target=se.TARGET, lr=se.LR, rounds=rounds, replicates=replicates)
    pred = Predictor(se.DOMAINS, se.TARGET, probes=se.PROBES, lr=se.LR, surrogate=surrogate,
                     loss_draws=0)
    plan = DDOPlan(cfg)
    plan.start()
    oracle = se.Oracle(noise, np.random.default_rng(seed), surface)
    drive_plan(plan, pred, lambda spec: oracle.rows(spec.key, spec.weights, spec.budget))
    return plan.results["recommendation"]


def lr_rows(rng: np.random.Generator, noise: float, lrs: list[float], horizon: float) -> list[dict]:
    star = LR_B * horizon ** -LR_BETA
    rows = []
    for lr in lrs:
        loss = 3.0 + 2e3 / horizon ** 0.3 + 0.05 * (math.log(lr) - math.log(star)) ** 2 \
            + rng.normal(0, noise)
        rows.append({"run_id": f"lr/{horizon:.4g}/{lr:.4g}", "tokens": horizon, "budget": horizon,
                     "lr": lr, "loss": loss, "w.a": 0.5, "w.b": 0.5})
    return rows


def lr_coverage(seeds: int, noise: float) -> tuple[float, float]:
    """Share of seeds whose LR interval at the target holds the true LR*, and the median
    width in log10 units."""
    truth = LR_B * LR_TARGET ** -LR_BETA
    inside, widths = 0, []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        pred = Predictor(("a", "b"), int(LR_TARGET), probes=[int(p) for p in LR_PROBES], loss_draws=0)
        for h in LR_PROBES:
            star = LR_B * h ** -LR_BETA
            grid = [star * 3.0 ** (k - 1.5) * math.exp(rng.uniform(-0.5, 0.5)) for k in range(4)]
            for row in lr_rows(rng, noise, grid, h):
                pred.add(row["run_id"], [row], {"probe": int(h)})
        (lo, hi), _ = pred.lr_interval(pred.lr_law())
        inside += lo <= truth <= hi
        widths.append(math.log10(hi / lo))
    return inside / seeds, float(np.median(widths))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--replicates", type=int, default=2)
    ap.add_argument("--surrogates", default="paper,transfer")
    ap.add_argument("--oracles", default=",".join(se.SURFACES), help="comma-separated oracle names")
    args = ap.parse_args()
    logging.getLogger("autoscale_ray").setLevel(logging.ERROR)
    print(f"90% intervals vs the true optimum at T = {se.TARGET:.3g} tokens, probes {se.PROBES}, "
          f"{args.seeds} noise seeds, noise sd {args.noise}, {args.rounds} DDO round(s), "
          f"{args.replicates} base replicates\n")
    print("| oracle | surrogate | coverage (seed, domain) | mean width | max width | budget law in | "
          "gap at T, median % (uniform %) | seconds |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.oracles.split(","):
        surface = se.SURFACES[name]
        w_star, best = se.true_optimum(se.TARGET, surface=surface)
        uniform = se.gap({d: 1 / len(se.DOMAINS) for d in se.DOMAINS}, best, surface)
        for surrogate in args.surrogates.split(","):
            t0 = time.perf_counter()
            inside, widths, gaps, law_used = [], [], [], 0
            for seed in range(args.seeds):
                rec = mixture_run(surface, seed, args.noise, surrogate, args.rounds, args.replicates)
                gaps.append(se.gap(rec["weights"], best, surface))
                law_used += bool(rec["evidence"]["budget_law"].get("used"))
                for d, truth in zip(se.DOMAINS, w_star):
                    lo, hi = rec["weights_interval"][d]
                    inside.append(lo <= truth <= hi)
                    widths.append(hi - lo)
                print(f"  {name}/{surrogate} seed {seed}: inside {sum(inside)}/{len(inside)} so far",
                      file=sys.stderr, flush=True)
            print(f"| {name} | {surrogate} | {np.mean(inside):.2f} ({sum(inside)}/{len(inside)}) | "
                  f"{np.mean(widths):.3f} | {np.max(widths):.3f} | {law_used}/{args.seeds} | "
                  f"{100 * np.median(gaps):.2f} ({100 * uniform:.2f}) | {time.perf_counter() - t0:.0f} |",
                  flush=True)
    cov, width = lr_coverage(args.seeds, args.noise)
    print(f"\nLR oracle (LR* = {LR_B} D^-{LR_BETA}, 4-LR sweeps at {LR_PROBES}, target "
          f"{LR_TARGET:.3g}): the 90% LR interval holds the true LR* in {cov:.2f} of "
          f"{args.seeds} seeds (median width {width:.2f} decades)")


if __name__ == "__main__":
    main()
