"""The swarm methods' plan: many proxy runs at one budget, their mixture used at the target.

`SwarmPlan` is a `PlanQueue` (searchers/plan_queue.py) as `DDOPlan` is, so `DDOSearcher` drives it in the same Tune experiment, with the same trial contract,
runs table, `done/` records and --resume; the predictor turns the runs into the recommendation
(`autoscale_ray.fits.swarm`). Stages:

  lr      with an LR grid (not for tpe): a sweep at the swarm's budget on the prior mixture,
          extended past an edge best LR as DDO's is; the swarm trains at its fitted LR*;
  swarm   `size` runs, plus `replicates` extra seeds of the prior mixture (the measured noise):
            random, regmix, log-linear: RegMix's Dirichlet sampler around the prior
              (laws/regmix_sampler.py), all issued at once;
            tpe: Optuna's TPE through Ray's `OptunaSearch` over softmax logits around the prior
              (and log LR over the grid's range when an LR grid is given), in batches of `batch`
              runs, each batch told in index order before the next is asked, so the same seed
              gives the same runs whatever order trials finish in;
            uniform / fixed: the given mixture with `size` seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from autoscale_ray.laws.regmix_sampler import regmix_dirichlet
from autoscale_ray.tuning.specs import TrialSpec, lr_sweep
from autoscale_ray.searchers.ddo import _edge_side, _extend, _final_loss
from autoscale_ray.searchers.plan_queue import Fits, PlanQueue

TPE_LOG_RANGE = 3.0   # logits within +-3 of the prior's: one domain up to e^6 times another's share
TPE_STARTUP = 8       # TPE's random start-up trials before it models the results


@dataclass
class SwarmConfig:
    method: str                           # random | regmix | log-linear | tpe | uniform | fixed
    base_weights: Mapping[str, float]     # the prior: centre of the samplers, the replicated mixture
    budget: int                           # tokens of every swarm run
    size: int                             # swarm runs (seeds, for uniform / fixed)
    target: int
    lrs: Sequence[float] = ()             # LR grid: a sweep first (tpe: the range it searches)
    lr: float | None = None
    replicates: int = 2                   # extra seeds of the prior mixture
    seed: int = 0
    fixed: Mapping[str, float] | None = None
    batch: int = 2                        # tpe: runs asked per round (the trial slots)
    lr_extend: int = 2
    lr_extend_rounds: int = 3

    @property
    def sweeps_lr(self) -> bool:
        return bool(self.lrs) and self.method != "tpe"

    def planned_trials(self) -> int:
        extra = self.replicates + 1 if self.method not in ("uniform", "fixed") else 0
        return (len(self.lrs) if self.sweeps_lr else 0) + self.size + extra


@dataclass
class SwarmPlan(PlanQueue):
    """The swarm's stages (module docstring); the queue and groups: PlanQueue."""

    cfg: SwarmConfig
    lr_grid: list[float] = field(default_factory=list)
    lr_rounds: int = 0
    lr_extra: int = 0
    swarm_lr: float | None = None
    issued: int = 0                       # swarm runs issued (tpe: asked)
    tpe: Any = None                       # Ray's OptunaSearch (tpe only)
    batch_keys: list[str] = field(default_factory=list)

    LEFT_OUT = "left out of the swarm's fit"

    @property
    def names(self) -> list[str]:
        return list(self.cfg.base_weights)

    def start(self) -> None:
        cfg = self.cfg
        if cfg.sweeps_lr:
            self.lr_grid = sorted(float(x) for x in cfg.lrs)
            self._enqueue("lr", lr_sweep(cfg.budget, cfg.base_weights, self.lr_grid, cfg.seed))
            return
        # tpe with an LR grid searches log LR itself; its replicates train at the grid's centre
        self.swarm_lr = float(np.exp(np.mean(np.log(cfg.lrs)))) if cfg.lrs else float(cfg.lr)
        self._start_swarm()

    def planned_trials(self) -> int:
        return self.cfg.planned_trials() + self.lr_extra

    # -- stages -----------------------------------------------------------------------------------
    def _meta(self, spec: TrialSpec) -> dict[str, Any]:
        return {"probe": spec.probe, "arm": spec.tags.get("method")}

    def _group_done(self, group: str, fits: Fits) -> None:
        if group == "lr":
            self._lr_done(fits)
        elif group.startswith("tpe/") and self.issued < self.cfg.size:
            self._tell_batch()
            self._ask_batch()
        elif not self.waiting:  # the last of the swarm (tpe: its batches and the replicates)
            self.results["recommendation"] = fits.recommendation()

    def _lr_done(self, fits: Fits) -> None:
        cfg = self.cfg
        side = _edge_side(fits.lr_best(cfg.budget), self.lr_grid)
        if side is not None and cfg.lr_extend > 0 and self.lr_rounds < cfg.lr_extend_rounds:
            new = _extend(self.lr_grid, side, cfg.lr_extend)
            self.lr_rounds += 1
            self.lr_extra += len(new)
            self.lr_grid = sorted(self.lr_grid + new)
            self._enqueue("lr", lr_sweep(cfg.budget, cfg.base_weights, new, cfg.seed))
            return
        self.swarm_lr = float(fits.lr_for(cfg.budget))
        self._start_swarm()

    def _spec(self, name: str, weights: Sequence[float], seed: int, lr: float | None = None,
              **tags: str) -> TrialSpec:
        cfg = self.cfg
        w = np.asarray(weights, dtype=float)
        return TrialSpec(f"swarm/{cfg.budget:.4g}/{name}", "swarm", int(cfg.budget),
                         {d: float(x) for d, x in zip(self.names, w / w.sum())},
                         self.swarm_lr if lr is None else lr, seed, int(cfg.budget),
                         {"method": cfg.method, **tags})

    def _prior(self) -> np.ndarray:
        p = np.array([float(self.cfg.base_weights[d]) for d in self.names])
        return p / p.sum()

    def _start_swarm(self) -> None:
        cfg = self.cfg
        if cfg.method in ("uniform", "fixed"):
            point = np.ones(len(self.names)) if cfg.method == "uniform" else \
                np.array([float((cfg.fixed or {})[d]) for d in self.names])
            self._enqueue("swarm", [self._spec(f"seed{k}", point, cfg.seed + k)
                                    for k in range(cfg.size)])
            return
        prior = self._prior()
        specs = [self._spec("base", prior, cfg.seed)]
        specs += [self._spec(f"base-seed{k}", prior, cfg.seed + k, replicate=str(k))
                  for k in range(1, cfg.replicates + 1)]
        if cfg.method == "tpe":
            self._enqueue("replicates", specs)
            self._start_tpe()
            return
        draws = regmix_dirichlet(prior, cfg.size, np.random.default_rng(cfg.seed))
        specs += [self._spec(str(i), w, cfg.seed) for i, w in enumerate(draws)]
        self.issued = cfg.size
        self._enqueue("swarm", specs)

    # -- tpe ----------------------------------------------------------------------------------------
    def _start_tpe(self) -> None:
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        cfg = self.cfg
        space = {f"z{i}": optuna.distributions.FloatDistribution(-TPE_LOG_RANGE, TPE_LOG_RANGE)
                 for i in range(len(self.names))}
        if cfg.lrs:
            space["log_lr"] = optuna.distributions.FloatDistribution(math.log(min(cfg.lrs)),
                                                                     math.log(max(cfg.lrs)))
        sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=TPE_STARTUP)
        self.tpe = OptunaSearch(space=space, metric="objective", mode="min", sampler=sampler)
        self._ask_batch()

    def _ask_batch(self) -> None:
        cfg = self.cfg
        logits0 = np.log(self._prior())
        specs = []
        for _ in range(min(cfg.batch, cfg.size - self.issued)):
            name = str(self.issued)
            params = self.tpe.suggest(name)
            z = logits0 + np.array([params[f"z{i}"] for i in range(len(self.names))])
            w = np.exp(z - z.max())
            lr = math.exp(params["log_lr"]) if "log_lr" in params else None
            specs.append(self._spec(name, w, cfg.seed, lr))
            self.issued += 1
        self.batch_keys = [s.key for s in specs]
        self._enqueue(f"tpe/{self.issued}", specs)

    def _tell_batch(self) -> None:
        for key in self.batch_keys:  # in index order, whatever order they finished in
            name = key.rsplit("/", 1)[-1]
            rows = self.rows.get(key)
            if rows:
                self.tpe.on_trial_complete(name, {"objective": _final_loss(rows)})
            else:
                self.tpe.on_trial_complete(name, None, error=True)
