"""The mixture a swarm method picks from its proxy runs, with its interval.

A swarm method trains many proxies at one budget and uses the mixture it picks at the target
unchanged (no projection across budgets):

  random, tpe      the best observed mixture (the mean over a mixture's seeds);
  regmix           RegMix (Liu et al. 2024): ridge regression of the objective on [w, log(w + eps)]
                   (`laws.regression`), optimum by simulation (the mean of the 128 best of 100,000
                   Dirichlet samples around the runs' mixtures);
  log-linear       Olmix's default regressor, the Data Mixing Laws form (Ye et al. 2024) per
                   domain L_j(w) = c_j + k_j exp(t_j . w) (`laws.mixing_law`), optimum of the mean
                   predicted loss on the simplex (`laws.mixture_optimum`);
  uniform, fixed   a given mixture: no choice, so no interval beyond the point.

Intervals: a parametric bootstrap of the choice (laws/noise.py): each run's objective (per-domain
losses for log-linear) redrawn around the fitted values with the measured run-to-run noise
(replicate seeds of the prior mixture), or the fit's own residual sd where it is larger (lack of
fit) or nothing was replicated; the choice repeated per redraw; percentile interval, widened to
hold the point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.mixing_law import fit_mixing_law
from autoscale_ray.laws.mixture_optimum import optimal_mixture
from autoscale_ray.laws.noise import DEFAULT_LEVEL, parametric_draws, percentile_interval, replicate_sd
from autoscale_ray.laws.regression import MIN_RUNS, fit_ridge_mixture, search_mixture
from autoscale_ray.runs import LOSS_PREFIX, RunsTable

SWARM_METHODS = ("regmix", "log-linear", "random", "tpe", "uniform", "fixed")
CHOOSING = ("regmix", "log-linear", "random", "tpe")  # the methods whose mixture is estimated
DRAWS = 100          # bootstrap redraws of a choice
SEARCH_SAMPLES = 100_000  # RegMix's simulation size for the point; redraws use a fifth of it


@dataclass(frozen=True)
class SwarmChoice:
    weights: dict[str, float]
    interval: dict[str, list[float]]
    predicted: float | None               # the method's predicted objective at its mixture
    observed_best: float                  # the best mean observed objective of any mixture
    noise_sd: float | None                # measured from replicate seeds (None: not measured)
    replicates: int                       # runs of the most-replicated mixture
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"weights": self.weights, "intervals": self.interval, "predicted": self.predicted,
                "observed_best": self.observed_best,
                "noise": {"objective_sd": self.noise_sd, "replicates": self.replicates,
                          "measured_from": "replicate seeds" if self.noise_sd is not None else None},
                **self.info}


def _groups(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct mixtures, the group index of each row): seeds of one mixture form a group."""
    _, first, inverse = np.unique(np.round(w, 9), axis=0, return_index=True, return_inverse=True)
    return w[first], inverse.ravel()  # each mixture as its first run has it (not rounded)


def measured_noise(values: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray | None, int]:
    """Pooled replicate sd per column over every mixture trained with >= 2 seeds (None: none
    was), and the largest number of seeds of one mixture."""
    v = np.atleast_2d(np.asarray(values, dtype=float).T).T
    counts = np.bincount(groups)
    if counts.max(initial=0) < 2:
        return None, int(counts.max(initial=0))
    dev, dof = np.zeros(v.shape[1]), 0
    for g in np.flatnonzero(counts >= 2):
        sel = v[groups == g]
        dev += replicate_sd(sel) ** 2 * (len(sel) - 1)
        dof += len(sel) - 1
    return np.sqrt(dev / dof), int(counts.max())


def choose_mixture(table: RunsTable, method: str, *, metric: str = "mean-loss",
                   fixed: Mapping[str, float] | None = None, level: float = DEFAULT_LEVEL,
                   draws: int = DRAWS, seed: int = 0) -> SwarmChoice:
    """The mixture `method` picks from the runs of one budget (module docstring)."""
    if method not in SWARM_METHODS:
        raise BadInput(f"unknown swarm method `{method}`", "search.method",
                       f"use one of: {', '.join(SWARM_METHODS)}")
    final = table.final()
    domains = table.domains
    w = table.weights(final)
    y = table.objective(metric, final)
    distinct, groups = _groups(w)
    mean_y = np.array([y[groups == g].mean() for g in range(len(distinct))])
    best = int(np.argmin(mean_y))
    sd, reps = measured_noise(y, groups)
    noise = None if sd is None else float(sd[0])
    as_dict = lambda v: {d: float(x) for d, x in zip(domains, v)}  # noqa: E731
    common = dict(observed_best=float(mean_y[best]), noise_sd=noise, replicates=reps)
    spread = float(np.median(mean_y) - mean_y[best])  # what picking the best gains over a typical mixture
    if method in ("uniform", "fixed"):
        point = np.full(len(domains), 1 / len(domains)) if method == "uniform" else \
            np.array([float((fixed or {})[d]) for d in domains])
        point = point / point.sum()
        return SwarmChoice(as_dict(point), {d: [float(x), float(x)] for d, x in zip(domains, point)},
                           float(mean_y.mean()), info={"mixtures": len(distinct), "runs": len(y)}, **common)
    if method in ("random", "tpe"):
        point, predicted, solve, fitted, sigma = _best_observed(distinct, mean_y, groups, noise)
        info = {"mixtures": len(distinct), "runs": len(y)}
    elif method == "regmix":
        point, predicted, solve, fitted, sigma, info = _regmix(w, y, noise, seed)
    else:
        if metric != "mean-loss":
            raise BadInput(f"log-linear models each domain's loss and minimises their mean; metric "
                           f"`{metric}` is not that", "search.metric", "use metric: mean-loss")
        point, predicted, solve, fitted, sigma, info = _log_linear(table, final, w, groups, seed)
    if sigma is None or not np.all(np.isfinite(sigma)) or len(distinct) < 2:
        interval = {d: [float(x), float(x)] for d, x in zip(domains, point)}
        info["interval"] = "none: the noise is not measured and the fit has no residual spread"
    else:
        redrawn = parametric_draws(solve, fitted, sigma, draws, seed=seed)
        lo, hi = percentile_interval(redrawn, level, point[None, :]) if len(redrawn) else (point, point)
        interval = {d: [float(a), float(b)] for d, a, b in zip(domains, lo, hi)}
        info["interval"] = f"parametric bootstrap, {len(redrawn)} redraws"
    info["observed_spread"] = spread
    return SwarmChoice(as_dict(point), interval, predicted, info=info, **common)


def _best_observed(distinct: np.ndarray, mean_y: np.ndarray, groups: np.ndarray,
                   noise: float | None):
    """The best mean mixture; redraws move each mixture's mean by its noise sd / sqrt(seeds)."""
    counts = np.bincount(groups)
    sigma = None if noise is None else noise / np.sqrt(counts)
    best = int(np.argmin(mean_y))
    return distinct[best], float(mean_y[best]), lambda y: distinct[int(np.argmin(y))], mean_y, sigma


def _regmix(w: np.ndarray, y: np.ndarray, noise: float | None, seed: int):
    if len(y) < MIN_RUNS:
        raise BadInput(f"regmix's regression needs >= {MIN_RUNS} runs, the swarm has {len(y)}",
                       "search.swarm.size", f"give size >= {MIN_RUNS}")
    fit = fit_ridge_mixture(w, y)
    found = search_mixture(fit, n_samples=SEARCH_SAMPLES, seed=seed)
    fitted = fit.predict(w)
    sigma = max(noise or 0.0, fit.loo_rmse) or None  # lack of fit counts as noise

    def solve(y_star: np.ndarray) -> np.ndarray:
        refit = fit_ridge_mixture(w, y_star)
        return search_mixture(refit, n_samples=SEARCH_SAMPLES // 5, seed=seed).weights

    info = {"loo_rmse": fit.loo_rmse, "alpha": fit.alpha, "eps": fit.eps, "runs": len(y)}
    return found.weights, float(found.predicted), solve, fitted, sigma, info


def _log_linear(table: RunsTable, final: Any, w: np.ndarray, groups: np.ndarray, seed: int):
    cols = [LOSS_PREFIX + d for d in table.domains]
    missing = [c for c in cols if c not in final.columns]
    if missing:
        raise BadInput(f"log-linear needs every domain's validation loss: no {', '.join(missing)}",
                       table.source, "train with per-domain evaluation (the search reports it)")
    L = final[cols].to_numpy(dtype=float)
    law = fit_mixing_law(w, L)
    opt = optimal_mixture(law, seed=seed)
    fitted = law.predict(w)
    sd, _ = measured_noise(np.log(L), groups)
    resid = np.log(L) - np.log(fitted)
    dof = max(1, len(L) - (w.shape[1] + 1))
    lack = np.sqrt((resid ** 2).sum(axis=0) / dof)
    sigma_log = lack if sd is None else np.maximum(sd, lack)

    def solve(log_l: np.ndarray) -> np.ndarray:
        return optimal_mixture(fit_mixing_law(w, np.exp(log_l)), n_starts=4, seed=seed).weights

    info = {"rmse_log": float(np.sqrt(np.mean(resid ** 2))), "runs": len(L),
            "law": {"c": law.C[:, 0].tolist(), "k": law.C[:, 1].tolist(), "t": law.T[:, 1].tolist()}}
    return opt.weights, float(opt.objective), solve, np.log(fitted), sigma_log[None, :], info


def at_bound(choice: SwarmChoice, tol: float = 1e-3) -> list[str]:
    """Domains the chosen mixture gives (almost) no weight: their optimum is not identified."""
    return [d for d, x in choice.weights.items() if x <= tol]
