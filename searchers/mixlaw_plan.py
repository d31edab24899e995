"""The mixing-law projector's plan: DDO's perturbation design at every probe model and budget.

A `PlanQueue` (searchers/plan_queue.py) as `DDOPlan` is, so `DDOSearcher` drives it in the same
Tune experiment, with the same trial contract, runs table, `done/` records and --resume. One stage:

  mixlaw  at each probe model (`search.probe_models`, >= 3 sizes) and each probe budget, the base
          run, its replicate seeds and the 2m perturbations of AutoScale's design (each domain's
          tokens x down and x up), all at the fixed LR and all issued at once. The design's 2m + 1
          mixtures at several sizes, every checkpoint a (N, D) point, are what the mixture x scale
          law (laws/mixing_law.py; Ye et al. 2024) is fitted on; the predictor then optimises the
          mixture at (target_params, target_budget) (fits/mixlaw_search.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from autoscale_ray.tuning.specs import TrialSpec, ddo_perturbations
from autoscale_ray.searchers.plan_queue import Fits, PlanQueue

STAGE = "mixlaw"


@dataclass
class MixlawPlanConfig:
    models: Sequence[str]                 # probe models, >= 3 sizes
    probes: Sequence[int]                 # probe budgets (tokens)
    base_weights: Mapping[str, float]
    target: int
    lr: float                             # one peak LR for every run
    down: float = 0.2
    up: float = 3.0
    design: str = "fixed-others"
    replicates: int = 2                   # extra seeds of each base run (the noise)
    seed: int = 0

    def planned_trials(self) -> int:
        per = 2 * len(self.base_weights) + 1 + self.replicates
        return len(self.models) * len(self.probes) * per


@dataclass
class MixlawPlan(PlanQueue):
    cfg: MixlawPlanConfig

    def start(self) -> None:
        cfg = self.cfg
        specs = [s for i, model in enumerate(cfg.models) for probe in cfg.probes
                 for s in self._specs(model_label(i, model), model, probe)]
        self._enqueue(f"{STAGE}/all", specs)

    def _specs(self, label: str, model: str, probe: int) -> list[TrialSpec]:
        """DDO's design at `probe` (tuning/specs.py), keyed by `label`, trained as `model`."""
        cfg = self.cfg
        return [replace(s, key=f"{STAGE}/{label}/" + s.key.split("/", 1)[1], stage=STAGE,
                        lr=float(cfg.lr), model=model, tags={**s.tags, "model": label})
                for s in ddo_perturbations(probe, cfg.base_weights, cfg.down, cfg.up, cfg.design,
                                           cfg.seed, cfg.replicates)]

    def planned_trials(self) -> int:
        return self.cfg.planned_trials()

    def _meta(self, spec: TrialSpec) -> dict[str, Any]:
        return {"probe": spec.probe, "arm": spec.tags.get("arm"), "model": spec.tags.get("model")}

    def _group_done(self, group: str, fits: Fits) -> None:
        self.results["recommendation"] = fits.recommendation()


def model_label(index: int, model: str) -> str:
    """The model's name in trial keys: a preset's name; a config file's, made safe for a key and
    told apart by its position."""
    if "/" not in model and "\\" not in model and not model.endswith(".json"):
        return model
    stem = Path(model).parent.name if Path(model).name == "config.json" else Path(model).stem
    return f"model{index}-" + (re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "config")
