"""Search efficiency: proxy runs until a method's mixture is within 0.5% of the optimum at the target.

An oracle with a KNOWN loss surface over m = 4 domains stands in for training. Each domain's
validation loss follows its own law in its own tokens N_i = w_i N (with an offset N0: a model that
saw none of a domain still has a finite loss on it), the domains saturating at different speeds so
the optimal mixture shifts with the budget N (AutoScale's premise):

    L_i(w, N) = E_i + B_i ((w_i N + N0) / 1e6)^(-g_i) + w^T C w        (interaction, same for all i)
    objective(w, N) = mean_i L_i(w, N)                                    (noise-free)

C holds pairwise interactions in the shares (redundant pairs > 0, complementary pairs < 0), which
no per-domain law captures. Every evaluation adds independent Gaussian noise (sd `--noise`) to
each domain's loss. The true optimum at the target T is found noise-free with SLSQP on the simplex
from many starts. A method "reaches" the target once its recommended mixture's noise-free
objective at T is within 0.5% (also: 1%) of the optimum and stays there for every later run up to
the cap.

A second oracle has cross-domain TRANSFER: each domain's loss is driven by a weighted sum of all
domains' tokens (web text lowers the loss of books and wiki, code helps nothing else, ...):

    L_j(w, N) = E_j + B_j ((sum_i T_ji w_i N + N0) / 1e6)^(-g_j),   T_jj = 1, T_ji >= 0

`--ddo-only` runs just DDO + projection from the two probes on both oracles with both DDO
surrogates (`paper`: additive, fitted to the objective; `transfer`: per-domain losses with a
fitted transfer matrix, autoscale_ray.laws.ddo_transfer) over `--seeds` noise seeds (default 10
there) and prints the gap of the recommended mixture's noise-free objective at T to the optimum's.

Methods (LR fixed: the oracle has no LR dimension, so DDO's LR stage is not run):
  DDO + projection   DDOPlan + Predictor exactly as a search drives them (tests/test_predictor.py),
                     2m+1 runs at each probe budget, projected to T (fixed design: it reaches or not);
  uniform            the uniform mixture (no search);
  random             RegMix's Dirichlet sampler, recommendation = best observed (noisy) run; also
                     a flat Dirichlet(1) (RegMix's strengths 0.1-5 make most 4-domain draws sparse);
  TPE                Optuna TPE through OptunaSearch, recommendation = best observed run;
  regression         RegMix: ridge regression on all runs so far, recommendation = its optimum;
                     (also trained on flat Dirichlet(1) runs);
  regression+rounds  16 random runs, then one run per round at the refitted regression optimum.
Each baseline runs either at the TARGET budget (each run costs T tokens) or at the larger PROBE
budget, its best mixture then used at T unchanged. Baseline Searchers are driven by calling
suggest()/on_trial_complete() one trial at a time (no Tune, the same objects).

    .venv/bin/python benchmarks/search_efficiency.py [--seeds 5] [--cap 200] [--noise 0.01]
    .venv/bin/python benchmarks/search_efficiency.py --ddo-only [--seeds 10] [--noise 0.01]
    .venv/bin/python benchmarks/search_efficiency.py --methods [--seeds 5] [--sizes 16 32]

`--methods` runs every `search.method` through the search's own plans and predictor (DDOPlan with a
refinement round; SwarmPlan for regmix, log-linear, random, tpe at the larger probe budget), the
recommendation's gap at T per oracle.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.optimize import minimize

from autoscale_ray.predictor import Predictor
from autoscale_ray.searchers.baselines import (MixtureSearcher, RandomMixtureSearcher, RegressionSearcher,
                                 TPEMixtureSearcher, UniformSearcher)
from autoscale_ray.searchers.ddo import DDOPlan, PlanConfig

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import drive_plan, drive_searcher  # noqa: E402  (the tests' synchronous drivers)

DOMAINS = ("wiki", "books", "code", "web")
E = np.array([1.6, 2.0, 1.2, 2.4])
B = np.array([4.0, 5.0, 6.0, 6.0])
G = np.array([0.7, 0.5, 0.4, 0.28])      # wiki saturates fastest, web slowest
N0 = 1e6                                  # tokens: the offset of "saw none of this domain"
C = np.zeros((4, 4))
C[0, 1] = C[1, 0] = 0.03                  # wiki + books: redundant
C[0, 2] = C[2, 0] = 0.015
C[2, 3] = C[3, 2] = -0.04                 # code + web: complementary
C[1, 3] = C[3, 1] = -0.02
TARGET = 1_000_000_000
PROBES = (10_000_000, 40_000_000)
LR = 1e-3
TOLS = (0.005, 0.01)                      # 0.5% (the criterion) and a looser 1%


# The transfer oracle: row j = validation domain, column i = training domain (wiki, books, code,
# web). Web and books help wiki, web and wiki help books, code helps nothing else and gains a
# little from web, web gains a little from wiki and books. Chosen so the optimum at T is interior
# and moves with the budget (the probe optima are 0.85% and 0.45% off at T).
T_TRANSFER = np.array([[1.0, 0.2, 0.0, 0.15],
                       [0.15, 1.0, 0.0, 0.2],
                       [0.0, 0.0, 1.0, 0.05],
                       [0.02, 0.05, 0.0, 1.0]])


def per_domain(w: np.ndarray, tokens: float) -> np.ndarray:
    """Noise-free per-domain losses of the separable oracle, rows of w x domains."""
    w = np.atleast_2d(w)
    sep = E + B * ((w * tokens + N0) / 1e6) ** -G
    return sep + np.einsum("ni,ij,nj->n", w, C, w)[:, None]


def per_domain_transfer(w: np.ndarray, tokens: float) -> np.ndarray:
    """Noise-free per-domain losses of the transfer oracle, rows of w x domains."""
    w = np.atleast_2d(w)
    return E + B * (((w * tokens) @ T_TRANSFER.T + N0) / 1e6) ** -G


# A third oracle held out from the design of the intervals (neither DDO's surrogates nor the budget
# transfer law has its form): Data Mixing Laws' exponential law in the SHARES (Ye et al. 2024,
# arXiv 2403.16952) times a per-domain power law in the budget,
#     L_j(w, N) = E_j + (N / 1e8)^(-g_j) exp(sum_i t_ji w_i),
# own share lowers a domain's loss most, some pairs help (t < 0), code slightly hurts prose (t > 0).
T_MIXLAW = np.array([[-2.0, -0.5, 0.3, -0.4],
                     [-0.4, -1.8, 0.2, -0.6],
                     [0.2, 0.1, -2.5, -0.2],
                     [-0.2, -0.3, 0.0, -1.5]])
G_MIXLAW = np.array([0.45, 0.38, 0.33, 0.28])


def per_domain_mixlaw(w: np.ndarray, tokens: float) -> np.ndarray:
    """Noise-free per-domain losses of the mixing-law oracle, rows of w x domains."""
    w = np.atleast_2d(w)
    return E + (tokens / 1e8) ** -G_MIXLAW * np.exp(w @ T_MIXLAW.T)


Surface = Callable[[np.ndarray, float], np.ndarray]
SURFACES: dict[str, Surface] = {"separable + interactions": per_domain,
                                "transfer": per_domain_transfer,
                                "mixing law (held out)": per_domain_mixlaw}


def objective(w: np.ndarray, tokens: float, surface: Surface = per_domain) -> np.ndarray:
    return surface(w, tokens).mean(axis=1)


def true_optimum(tokens: float, starts: int = 24,
                 surface: Surface = per_domain) -> tuple[np.ndarray, float]:
    """Noise-free optimum on the simplex: SLSQP from the uniform mixture and Dirichlet starts."""
    rng = np.random.default_rng(0)
    x0s = [np.full(len(DOMAINS), 1 / len(DOMAINS))] + list(rng.dirichlet(np.ones(len(DOMAINS)), starts))
    best = None
    for x0 in x0s:
        r = minimize(lambda w: float(objective(w, tokens, surface)[0]), x0, method="SLSQP",
                     bounds=[(0.0, 1.0)] * len(DOMAINS),
                     constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0}],
                     options={"ftol": 1e-14, "maxiter": 500})
        if r.success and (best is None or r.fun < best.fun):
            best = r
    w = np.clip(best.x, 0, None)
    w /= w.sum()
    dense = rng.dirichlet(np.ones(len(DOMAINS)), 200_000)  # a check that SLSQP found the basin
    assert objective(w, tokens, surface)[0] <= objective(dense, tokens, surface).min() + 1e-9
    return w, float(objective(w, tokens, surface)[0])


@dataclass
class Oracle:
    noise: float
    rng: np.random.Generator
    surface: Surface = per_domain

    def rows(self, key: str, weights: dict[str, float], budget: int, evals: int = 4) -> list[dict]:
        """Checkpoint rows of one run, as a trial reports them (noisy per-domain losses)."""
        w = np.array([weights[d] for d in DOMAINS])
        out = []
        for tokens in np.geomspace(budget / 8, budget, evals):
            loss = self.surface(w, tokens)[0] + self.rng.normal(0, self.noise, len(DOMAINS))
            out.append({"run_id": key, "tokens": float(tokens), "budget": budget, "lr": LR,
                        **{f"w.{d}": float(x) for d, x in zip(DOMAINS, w)},
                        **{f"loss.{d}": float(x) for d, x in zip(DOMAINS, loss)},
                        "loss": float(loss.mean())})
        return out


def gap(weights: dict[str, float], best: float, surface: Surface = per_domain) -> float:
    w = np.array([weights[d] for d in DOMAINS])
    return float((objective(w, TARGET, surface)[0] - best) / best)


def run_ddo(probes: tuple[int, ...], oracle: Oracle, best: float,
            surrogate: str = "paper", rounds: int = 1) -> tuple[int, int, float]:
    """DDOPlan + Predictor on the oracle: (runs, tokens, gap at T of the recommendation)."""
    cfg = PlanConfig(probes=list(probes), base_weights={d: 1 / len(DOMAINS) for d in DOMAINS},
                     target=TARGET, lr=LR, rounds=rounds)
    pred = Predictor(DOMAINS, TARGET, probes=probes, lr=LR, surrogate=surrogate)
    plan = DDOPlan(cfg)
    plan.start()
    issued = drive_plan(plan, pred, lambda spec: oracle.rows(spec.key, spec.weights, spec.budget))
    return (len(issued), sum(s.budget for s in issued),
            gap(plan.results["recommendation"]["weights"], best, oracle.surface))


def ddo_only(seeds: int, noise: float, rounds: tuple[int, ...] = (1, 2)) -> None:
    """DDO + projection from the two probes: both oracles x both surrogates x `seeds` noise seeds
    (seed k: np.random.default_rng(k)), plus the noise-free references, as one table."""
    print(f"DDO + projection from probes {PROBES} to T = {TARGET:.3g} tokens, {seeds} noise seeds, "
          f"noise sd {noise} per domain; gap = (objective(recommended, T) - objective(optimum, T)) "
          "/ objective(optimum, T), noise-free\n")
    for name, surface in SURFACES.items():
        w_star, best = true_optimum(TARGET, surface=surface)
        refs = [f"optimum at T {mix(w_star)}", f"uniform gap {100 * gap({d: 0.25 for d in DOMAINS}, best, surface):.2f}%"]
        for n in PROBES:
            w_n, _ = true_optimum(n, surface=surface)
            refs.append(f"probe {n:.0e} optimum used at T: gap {100 * gap(dict(zip(DOMAINS, w_n)), best, surface):.2f}%")
        print(f"{name} oracle: " + "; ".join(refs))
    print()
    head = ("| oracle | surrogate | rounds | runs (median) | tokens / T | gap median % | gap max % "
            "| <= 0.5% | <= 0.2% | seconds |")
    print(head)
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, surface in SURFACES.items():
        _, best = true_optimum(TARGET, surface=surface)
        for surrogate, n_rounds in ((s, r) for s in ("paper", "transfer") for r in rounds):
            t0 = time.perf_counter()
            results = [run_ddo(PROBES, Oracle(noise, np.random.default_rng(seed), surface), best,
                               surrogate, n_rounds) for seed in range(seeds)]
            gaps = np.array([g for *_, g in results])
            runs = int(np.median([r[0] for r in results]))
            tokens = float(np.median([r[1] for r in results]))
            print(f"| {name} | {surrogate} | {n_rounds} | {runs} | {tokens / TARGET:.3f} | "
                  f"{100 * np.median(gaps):.3f} | {100 * gaps.max():.3f} | "
                  f"{int((gaps <= 0.005).sum())}/{seeds} | {int((gaps <= 0.002).sum())}/{seeds} | "
                  f"{time.perf_counter() - t0:.0f} |", flush=True)


def run_searcher(searcher: MixtureSearcher, oracle: Oracle, best: float) -> list[tuple[int, float]]:
    """One trial at a time: (tokens so far, gap at T of the recommendation) after each run."""
    trace = []
    tokens = 0
    final = lambda config: oracle.rows(config["key"], config["weights"], config["budget"])[-1]  # noqa: E731
    for config in drive_searcher(searcher, final):
        tokens += config["budget"]
        trace.append((tokens, gap(searcher.recommendation()["weights"], best)))
    return trace


def runs_needed(trace: list[tuple[int, float]], tol: float) -> tuple[float, float]:
    """(runs, tokens) from which the gap stays <= tol to the end; (inf, inf) if never."""
    gaps = np.array([g for _, g in trace])
    if gaps[-1] > tol:
        return float("inf"), float("inf")
    above = np.flatnonzero(gaps > tol)
    n = 0 if len(above) == 0 else int(above[-1]) + 1
    return float(n + 1), float(trace[n][0])


def baselines(cap: int, budget: int, seed: int) -> dict[str, Callable[[], MixtureSearcher]]:
    common = dict(budget=budget, lr=LR, seed=seed)
    return {
        "uniform": lambda: UniformSearcher(DOMAINS, n_trials=cap, **common),
        "random (RegMix sampler)": lambda: RandomMixtureSearcher(DOMAINS, n_trials=cap, **common),
        "random (flat Dirichlet(1))": lambda: RandomMixtureSearcher(
            DOMAINS, n_trials=cap, strengths=(float(len(DOMAINS)),), **common),
        "TPE (Optuna)": lambda: TPEMixtureSearcher(DOMAINS, n_trials=cap, **common),
        "regression (RegMix)": lambda: RegressionSearcher(DOMAINS, n_initial=cap, rounds=0,
                                                          n_samples=20_000, **common),
        "regression (flat Dirichlet(1) runs)": lambda: RegressionSearcher(
            DOMAINS, n_initial=cap, rounds=0, n_samples=20_000,
            strengths=(float(len(DOMAINS)),), **common),
        "regression, 16 random + rounds": lambda: RegressionSearcher(
            DOMAINS, n_initial=16, rounds=cap - 16, n_samples=20_000, **common),
    }


def mix(w: np.ndarray) -> str:
    return ", ".join(f"{d} {x:.3f}" for d, x in zip(DOMAINS, w))


def fmt(x: float) -> str:
    return "never" if not np.isfinite(x) else f"{x:.0f}"


def summary(needed: list[tuple[float, float]]) -> str:
    """'median runs (IQR) | reached | median tokens / T' over seeds; a miss counts as infinite."""
    runs = np.array([r for r, _ in needed])
    toks = np.array([t for _, t in needed])
    q = lambda a, p: float(np.quantile(a, p, method="inverted_cdf"))  # no interpolation into inf
    tok = q(toks, 0.5)
    return (f"{fmt(q(runs, 0.5))} ({fmt(q(runs, 0.25))}-{fmt(q(runs, 0.75))}) | "
            f"{np.isfinite(runs).sum()}/{len(runs)} | "
            f"{'-' if not np.isfinite(tok) else f'{tok / TARGET:.2f}'}")


def run_method(method: str, size: int, oracle: Oracle, best: float) -> tuple[int, int, float]:
    """A swarm method exactly as `search.method` runs it (SwarmPlan + Predictor, the search's own
    code path) with `size` runs at the larger probe budget: (runs, tokens, gap at T)."""
    from autoscale_ray.searchers.swarm import SwarmConfig, SwarmPlan

    cfg = SwarmConfig(method=method, base_weights={d: 1 / len(DOMAINS) for d in DOMAINS},
                      budget=PROBES[-1], size=size, target=TARGET, lr=LR, replicates=2, batch=4)
    pred = Predictor(DOMAINS, TARGET, probes=[PROBES[-1]], lr=LR, method=method, loss_draws=0)
    plan = SwarmPlan(cfg)
    plan.start()
    issued = drive_plan(plan, pred, lambda spec: oracle.rows(spec.key, spec.weights, spec.budget))
    return (len(issued), sum(s.budget for s in issued),
            gap(plan.results["recommendation"]["weights"], best, oracle.surface))


def methods(seeds: int, noise: float, sizes: tuple[int, ...]) -> None:
    """Every `search.method` on both oracles through the search's own plans (DDO's with one
    refinement round, the swarms at the larger probe budget with `sizes` runs): gap at T."""
    print(f"search.method on both oracles, {seeds} noise seeds, noise sd {noise}; swarms at "
          f"{PROBES[-1]:.0e} tokens (+3 runs of the prior: base and 2 replicates), DDO at {PROBES}\n")
    print("| oracle | method | runs | tokens / T | gap median % | gap max % | <= 0.5% |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for name, surface in SURFACES.items():
        _, best = true_optimum(TARGET, surface=surface)
        arms = [("autoscale", 0)] + [(m, n) for m in ("regmix", "log-linear", "random", "tpe") for n in sizes]
        for method, size in arms:
            results = []
            for seed in range(seeds):
                oracle = Oracle(noise, np.random.default_rng(seed), surface)
                results.append(run_ddo(PROBES, oracle, best, rounds=2) if method == "autoscale"
                               else run_method(method, size, oracle, best))
            gaps = np.array([g for *_, g in results])
            print(f"| {name} | {method} | {int(np.median([r[0] for r in results]))} | "
                  f"{np.median([r[1] for r in results]) / TARGET:.3f} | {100 * np.median(gaps):.3f} | "
                  f"{100 * gaps.max():.3f} | {(gaps <= 0.005).sum()}/{seeds} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=None, help="noise seeds (default 5; 10 with --ddo-only)")
    ap.add_argument("--cap", type=int, default=200)
    ap.add_argument("--noise", type=float, default=0.01, help="sd of each domain's loss noise")
    ap.add_argument("--rounds", type=int, nargs="+", default=[1, 2],
                    help="DDO rounds per probe to compare with --ddo-only (default 1 2)")
    ap.add_argument("--ddo-only", action="store_true",
                    help="only DDO + projection: both oracles x both DDO surrogates (about a minute)")
    ap.add_argument("--methods", action="store_true",
                    help="every search.method through the search's own plans, gap at T")
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32],
                    help="swarm sizes for --methods (default 16 32)")
    args = ap.parse_args()
    logging.getLogger("autoscale_ray").setLevel(logging.ERROR)  # DDO's notes on noisy fits
    if args.methods:
        import optuna
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        methods(args.seeds or 5, args.noise, tuple(args.sizes))
        return
    if args.ddo_only:
        ddo_only(args.seeds or 10, args.noise, tuple(args.rounds))
        return
    args.seeds = args.seeds or 5
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    w_star, best = true_optimum(TARGET)
    print(f"oracle: m={len(DOMAINS)}, target {TARGET:.3g} tokens, probes {PROBES}, noise sd "
          f"{args.noise} per domain ({args.noise / np.sqrt(len(DOMAINS)):.4f} on the objective)")
    print(f"true optimum at T: {mix(w_star)}, objective {best:.4f}")
    for n in PROBES:
        w_n, _ = true_optimum(n)
        print(f"true optimum at {n:.3g}: {mix(w_n)}, used at T: gap "
              f"{100 * gap(dict(zip(DOMAINS, w_n)), best):.2f}%")
    print(f"uniform at T: gap {100 * gap({d: 0.25 for d in DOMAINS}, best):.2f}%")

    rows = []
    t0 = time.perf_counter()
    for label, probes in (("DDO + projection, 2 probes", PROBES),
                          ("DDO + projection, 3 probes", (PROBES[0], 20_000_000, PROBES[1]))):
        gaps, cost = [], (0, 0)
        for seed in range(args.seeds):
            *cost, g = run_ddo(probes, Oracle(args.noise, np.random.default_rng(seed)), best)
            gaps.append(g)
        cells = [summary([tuple(cost) if g <= tol else (np.inf, np.inf) for g in gaps])
                 for tol in TOLS]
        rows.append((label, "probes", cells, float(np.median(gaps))))
    for where, budget in (("target", TARGET), ("probe 4e7", PROBES[-1])):
        for name in baselines(args.cap, budget, 0):
            traces = [run_searcher(baselines(args.cap, budget, seed)[name](),
                                   Oracle(args.noise, np.random.default_rng(1000 + seed)), best)
                      for seed in range(args.seeds)]
            cells = [summary([runs_needed(t, tol) for t in traces]) for tol in TOLS]
            rows.append((name, where, cells, float(np.median([t[-1][1] for t in traces]))))
    elapsed = time.perf_counter() - t0

    print(f"\nproxy runs until the recommendation stays within tol of the optimum objective at T "
          f"(cap {args.cap} runs, {args.seeds} seeds; median (IQR) runs, seeds that reached it, "
          f"median tokens spent in units of T = {TARGET:.3g})\n")
    head = " | ".join(f"{100 * t:g}%: runs (IQR) | reached | tokens / T" for t in TOLS)
    print(f"| method | runs at | {head} | final gap, median % |")
    print("| --- | --- |" + " ---: | ---: | ---: |" * len(TOLS) + " ---: |")
    for name, where, cells, final in rows:
        print(f"| {name} | {where} | {' | '.join(cells)} | {100 * final:.2f} |")
    print(f"\n({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
