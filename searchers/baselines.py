"""Baseline mixture searchers as Ray Tune `Searcher`s, for comparison with DDO + projection.

Each issues trial configs of the same shape as `DDOSearcher` (`TrialSpec.to_config()`: key, stage,
budget, weights, lr, seed, probe, tags), so they run in the same harness
(`autoscale_ray.tuning.trial.search_trial`). All trials of one searcher train at one token `budget` and
one fixed peak `lr`: either the target budget (what these methods must do without a projection) or
a probe budget (their best mixture is then used at the target unchanged).

  UniformSearcher        the uniform mixture, `n_trials` training seeds;
  RandomMixtureSearcher  RegMix's sampler (Liu et al. 2024): Dirichlet mixtures around the token
                         prior, recommendation = the best observed run;
  TPEMixtureSearcher     Optuna's TPE through Ray's `OptunaSearch` over the simplex;
  RegressionSearcher     RegMix: random mixtures, then the ridge regression's optimum
                         (`autoscale_ray.laws.regression`), optionally refitted for a few rounds.

Failed trials count against the trial budget and are left out of every fit. A searcher returns
`None` while it waits for results and `Searcher.FINISHED` once its trials are all issued.

    >>> from ray import tune
    >>> from autoscale_ray.searchers.baselines import TPEMixtureSearcher
    >>> searcher = TPEMixtureSearcher(["web", "code", "books"], n_trials=50, budget=2_000_000,
    ...                               lr=1e-3, seed=0)
    >>> tune.Tuner(search_trial, param_space={"trial": options},  # doctest: +SKIP
    ...            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1)).fit()
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Sequence

import numpy as np
from ray.tune.search import Searcher

from autoscale_ray.checks import check_known, weight_vector
from autoscale_ray.errors import BadInput
from autoscale_ray.laws.checks import on_simplex
from autoscale_ray.laws.regression import MIN_RUNS, fit_ridge_mixture, search_mixture
from autoscale_ray.laws.regmix_sampler import (REGMIX_STRENGTHS, REGMIX_TEMPERATURE,
                                               regmix_dirichlet)
from autoscale_ray.tuning.specs import TrialSpec
from autoscale_ray.searchers.persist import PickledState

log = logging.getLogger("autoscale_ray")


def _prior(domains: Sequence[str], prior: Mapping[str, float] | None) -> np.ndarray:
    if prior is None:
        return np.full(len(domains), 1.0 / len(domains))
    check_known(sorted(prior), domains, "searcher prior", what="prior names unknown domains",
                fix="use the domains")
    p = weight_vector(prior, domains)
    if not on_simplex(p):
        raise BadInput(f"prior {dict(prior)} is not a set of finite shares >= 0 with a positive sum",
                       "searcher prior", "give each domain's share of the available tokens")
    return p / p.sum()


class MixtureSearcher(PickledState, Searcher):
    """Shared bookkeeping: issued trials, observed (weights, objective) pairs, save/restore.
    Subclasses implement `_propose(index) -> weights | None` and may override `recommendation`."""

    stage = "baseline"

    def __init__(self, domains: Sequence[str], *, n_trials: int, budget: int, lr: float,
                 seed: int = 0, prior: Mapping[str, float] | None = None, metric: str = "loss",
                 mode: str = "min") -> None:
        super().__init__(metric=metric, mode=mode)
        self.domains = tuple(domains)
        if len(self.domains) < 2 or len(set(self.domains)) != len(self.domains):
            raise BadInput(f"domains {list(domains)}", type(self).__name__,
                           "give at least two distinct domain names")
        if int(n_trials) < 1 or int(budget) < 1 or not (math.isfinite(lr) and lr > 0):
            raise BadInput(f"n_trials={n_trials}, budget={budget}, lr={lr}", type(self).__name__,
                           "use n_trials >= 1, budget >= 1 token and a positive LR")
        if mode not in ("min", "max"):
            raise BadInput(f"mode {mode!r}", type(self).__name__, "use 'min' or 'max'")
        self.n_trials = int(n_trials)
        self.budget = int(budget)
        self.lr = float(lr)
        self.seed = int(seed)
        self.prior = _prior(self.domains, prior)
        self.rng = np.random.default_rng(self.seed)
        self.issued = 0
        self.in_flight: dict[str, tuple[int, np.ndarray]] = {}   # trial_id -> (index, weights)
        self.observed: list[tuple[int, np.ndarray, float]] = []  # (index, weights, objective)
        self.failed: list[int] = []

    # -- Tune hooks -------------------------------------------------------------------------
    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True

    def suggest(self, trial_id: str) -> dict | str | None:
        if self.issued >= self.n_trials:
            return Searcher.FINISHED
        w = self._propose(trial_id, self.issued)
        if w is None:
            return None
        w = np.asarray(w, dtype=float)
        w = w / w.sum()
        index = self.issued
        self.issued += 1
        self.in_flight[trial_id] = (index, w)
        return self.spec(index, w).to_config()

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        index, w = self.in_flight.pop(trial_id, (None, None))
        if index is None:
            return
        value = None if (error or not result) else result.get(self.metric)
        if value is None or not math.isfinite(float(value)) \
                or result.get("status") in ("diverged", "failed"):
            self.failed.append(index)
        else:
            self.observed.append((index, w, float(value)))
        self._told(trial_id, index, None if index in self.failed else float(value))

    # -- what subclasses fill in --------------------------------------------------------------
    def _propose(self, trial_id: str, index: int) -> np.ndarray | None:
        raise NotImplementedError

    def _told(self, trial_id: str, index: int, value: float | None) -> None:
        """A trial's objective (None: failed) after the shared bookkeeping."""

    # -- results -------------------------------------------------------------------------------
    def spec(self, index: int, weights: np.ndarray) -> TrialSpec:
        return TrialSpec(f"{self.stage}/{self.budget:.4g}/{index}", self.stage, self.budget,
                         {d: float(x) for d, x in zip(self.domains, weights)}, self.lr,
                         self.seed, None, {"method": self.stage})

    def _sign(self) -> float:
        return 1.0 if self.mode == "min" else -1.0

    def best(self) -> tuple[dict[str, float], float] | None:
        """The best observed mixture and its objective, or None before any result."""
        if not self.observed:
            return None
        _, w, v = min(self.observed, key=lambda o: self._sign() * o[2])
        return {d: float(x) for d, x in zip(self.domains, w)}, v

    def recommendation(self) -> dict[str, Any] | None:
        """The mixture this method would train at the target: by default the best observed run."""
        best = self.best()
        if best is None:
            return None
        return {"tokens": self.budget, "weights": best[0], "observed": best[1],
                "method": self.stage, "runs": len(self.observed)}

    # -- persistence ---------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}

    def set_state(self, state: dict) -> None:
        self.__dict__.update(state)


class UniformSearcher(MixtureSearcher):
    """The uniform mixture, trained with `n_trials` seeds (seed, seed + 1, ...)."""

    stage = "uniform"

    def _propose(self, trial_id: str, index: int) -> np.ndarray:
        return np.full(len(self.domains), 1.0 / len(self.domains))

    def spec(self, index: int, weights: np.ndarray) -> TrialSpec:
        s = super().spec(index, weights)
        return TrialSpec(s.key, s.stage, s.budget, s.weights, s.lr, self.seed + index, None, s.tags)

    def recommendation(self) -> dict[str, Any] | None:
        rec = super().recommendation()
        if rec is not None:  # the mixture is fixed; report the mean over seeds, not the luckiest
            rec["weights"] = {d: 1.0 / len(self.domains) for d in self.domains}
            rec["observed"] = float(np.mean([v for _, _, v in self.observed]))
        return rec


class RandomMixtureSearcher(MixtureSearcher):
    """RegMix's random mixtures (`regmix_dirichlet` around `prior`, default uniform); the
    recommendation is the best observed run. Deterministic for a seed."""

    stage = "random"

    def __init__(self, domains: Sequence[str], *, n_trials: int, budget: int, lr: float,
                 seed: int = 0, prior: Mapping[str, float] | None = None, metric: str = "loss",
                 mode: str = "min", strengths: Sequence[float] = REGMIX_STRENGTHS,
                 temperature: float = REGMIX_TEMPERATURE) -> None:
        super().__init__(domains, n_trials=n_trials, budget=budget, lr=lr, seed=seed, prior=prior,
                         metric=metric, mode=mode)
        self.strengths = tuple(float(s) for s in strengths)
        self.temperature = float(temperature)

    def _propose(self, trial_id: str, index: int) -> np.ndarray:
        return regmix_dirichlet(self.prior, 1, self.rng, temperature=self.temperature,
                                strengths=self.strengths)[0]


class TPEMixtureSearcher(MixtureSearcher):
    """Optuna's TPE (`TPESampler(seed=seed)`) through Ray's `OptunaSearch`, over the simplex.

    Parametrisation: m unnormalised log-weights around the prior, z_i ~ U[-log_range, log_range],
    w_i = p_i exp(z_i) / sum_j p_j exp(z_j) (a softmax shifted by log p). All domains are treated
    alike (stick-breaking would order them), and z = 0 is the prior; the redundant direction
    (adding a constant to every z) leaves w unchanged, which TPE's per-dimension densities tolerate.
    With log_range 3, one domain can get up to e^6 ~ 400 times another's weight relative to the prior."""

    stage = "tpe"

    def __init__(self, domains: Sequence[str], *, n_trials: int, budget: int, lr: float,
                 seed: int = 0, prior: Mapping[str, float] | None = None, metric: str = "loss",
                 mode: str = "min", log_range: float = 3.0, n_startup_trials: int = 10,
                 multivariate: bool = False) -> None:
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        super().__init__(domains, n_trials=n_trials, budget=budget, lr=lr, seed=seed, prior=prior,
                         metric=metric, mode=mode)
        if not (math.isfinite(log_range) and log_range > 0):
            raise BadInput(f"log_range {log_range}", "TPEMixtureSearcher", "use a positive number")
        self.params = [f"z{i}" for i in range(len(self.domains))]
        space = {p: optuna.distributions.FloatDistribution(-log_range, log_range)
                 for p in self.params}
        sampler = optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=n_startup_trials,
                                             multivariate=multivariate)
        # the inner searcher always minimises its own metric; `_told` gives it the signed objective
        self.optuna = OptunaSearch(space=space, metric="objective", mode="min", sampler=sampler)

    def _propose(self, trial_id: str, index: int) -> np.ndarray:
        params = self.optuna.suggest(trial_id)
        z = np.array([params[p] for p in self.params], dtype=float)
        logits = np.log(np.maximum(self.prior, 1e-300)) + z
        logits[self.prior == 0] = -np.inf
        e = np.exp(logits - logits.max())
        return e / e.sum()

    def _told(self, trial_id: str, index: int, value: float | None) -> None:
        if value is None:
            self.optuna.on_trial_complete(trial_id, None, error=True)
        else:
            self.optuna.on_trial_complete(trial_id, {"objective": self._sign() * value})


class RegressionSearcher(MixtureSearcher):
    """RegMix (Liu et al. 2024): `n_initial` random mixtures (`regmix_dirichlet`), then `rounds`
    trials, each at the optimum of the ridge regression (`fit_ridge_mixture` + `search_mixture`)
    refitted on every result so far. The recommendation is that optimum over all results (the best
    observed run while fewer than the regression's minimum are in)."""

    stage = "regression"

    def __init__(self, domains: Sequence[str], *, n_initial: int, budget: int, lr: float,
                 rounds: int = 1, seed: int = 0, prior: Mapping[str, float] | None = None,
                 metric: str = "loss", mode: str = "min", n_samples: int = 100_000,
                 top_k: int = 128, strengths: Sequence[float] = REGMIX_STRENGTHS,
                 temperature: float = REGMIX_TEMPERATURE) -> None:
        if int(n_initial) < MIN_RUNS or int(rounds) < 0:
            raise BadInput(f"n_initial={n_initial}, rounds={rounds}", "RegressionSearcher",
                           f"use n_initial >= {MIN_RUNS} random runs and rounds >= 0")
        super().__init__(domains, n_trials=int(n_initial) + int(rounds), budget=budget, lr=lr,
                         seed=seed, prior=prior, metric=metric, mode=mode)
        self.n_initial = int(n_initial)
        self.n_samples = int(n_samples)
        self.top_k = int(top_k)
        self.strengths = tuple(float(s) for s in strengths)
        self.temperature = float(temperature)
        self._cache: tuple[int, dict[str, Any]] | None = None

    def _propose(self, trial_id: str, index: int) -> np.ndarray | None:
        if index < self.n_initial:
            return regmix_dirichlet(self.prior, 1, self.rng, temperature=self.temperature,
                                    strengths=self.strengths)[0]
        if self.in_flight:  # a round refits on every earlier result: wait for the trials in flight
            return None
        if len(self.observed) < MIN_RUNS:  # raising here would abort the whole Tune run
            log.warning("only %d of %d random runs succeeded; the regression needs %d: "
                        "no regression rounds", len(self.observed), self.n_initial, MIN_RUNS)
            self.n_trials = self.issued
            return None
        return self._search()[0]

    def _search(self) -> tuple[np.ndarray, dict[str, Any]]:
        n = len(self.observed)
        if self._cache is None or self._cache[0] != n:
            w = np.array([o[1] for o in self.observed])
            y = self._sign() * np.array([o[2] for o in self.observed])
            fit = fit_ridge_mixture(w, y)
            found = search_mixture(fit, n_samples=self.n_samples, top_k=self.top_k,
                                   seed=self.seed + n)
            self._cache = (n, {"weights": found.weights,
                               "predicted": self._sign() * found.predicted,
                               "loo_rmse": fit.loo_rmse, "alpha": fit.alpha, "eps": fit.eps})
        info = self._cache[1]
        return info["weights"], info

    def recommendation(self) -> dict[str, Any] | None:
        if len(self.observed) < MIN_RUNS:
            return super().recommendation()
        w, info = self._search()
        return {"tokens": self.budget, "weights": {d: float(x) for d, x in zip(self.domains, w)},
                "predicted": info["predicted"], "loo_rmse": info["loo_rmse"],
                "method": self.stage, "runs": len(self.observed)}
