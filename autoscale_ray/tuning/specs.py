"""Trial specs of the search: which proxy runs each stage asks for (pure, no Ray).

A `TrialSpec` is one proxy pretraining run: (stage, budget, mixture weights, peak LR, seed). Its
`key` is stable across restarts, so a resumed search can tell finished trials from missing ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class TrialSpec:
    key: str                       # stable name, e.g. "ddo/1e+06/web-down"
    stage: str                     # lr | ddo | verify | target
    budget: int                    # tokens the run trains on
    weights: Mapping[str, float]   # mixture weights, sum 1
    lr: float | None               # peak LR; None = filled in by the LR law when issued
    seed: int = 0
    probe: int | None = None       # probe budget this trial belongs to (ddo/lr stages)
    tags: Mapping[str, str] = field(default_factory=dict)
    model: str | None = None       # proxy model (a mixing-law search's probe model); None = train.model

    def to_config(self) -> dict:
        out = {"key": self.key, "stage": self.stage, "budget": int(self.budget),
               "weights": dict(self.weights), "lr": self.lr, "seed": self.seed,
               "probe": self.probe, "tags": dict(self.tags)}
        return {**out, "model": self.model} if self.model else out


def log_grid(center: float, n: int, factor: float) -> list[float]:
    """n log-spaced values centred (geometrically) on `center`, neighbours `factor` apart."""
    return [float(center * factor ** (k - (n - 1) / 2)) for k in range(n)]


def lr_sweep(probe: int, weights: Mapping[str, float], lrs: Sequence[float], seed: int = 0) -> list[TrialSpec]:
    """Stage 0 (Bjorck et al. 2024): one run per peak LR at the horizon `probe`, base mixture."""
    return [TrialSpec(f"lr/{probe:.4g}/{lr:.4g}", "lr", int(probe), dict(weights), float(lr), seed, probe)
            for lr in lrs]


def ddo_perturbations(probe: int, weights: Mapping[str, float], down: float = 0.2, up: float = 3.0,
                      design: str = "fixed-others", seed: int = 0,
                      replicates: int = 0) -> list[TrialSpec]:
    """Stage 1 (AutoScale's DDO design): the base run plus, per domain, its token quantity times
    `down` and times `up`. `fixed-others` keeps the other domains' quantities (the total moves);
    `fixed-total` rescales the others so the total stays `probe`. 2m + 1 runs, plus `replicates`
    runs of the base mixture with seeds seed + 1, ... (they measure the run-to-run noise)."""
    names = list(weights)
    base = np.array([weights[d] for d in names], dtype=float)
    base = base / base.sum() * probe
    specs = [TrialSpec(f"ddo/{probe:.4g}/base", "ddo", int(probe), _norm(names, base), None, seed, probe,
                       {"perturbed": "", "factor": "1"})]
    specs += [TrialSpec(f"ddo/{probe:.4g}/base-seed{k}", "ddo", int(probe), _norm(names, base), None,
                        seed + k, probe, {"perturbed": "", "factor": "1", "replicate": str(k)})
              for k in range(1, replicates + 1)]
    for i, name in enumerate(names):
        for label, factor in (("down", down), ("up", up)):
            q = base.copy()
            q[i] = base[i] * factor
            if design == "fixed-total":
                rest = probe - base[i]
                q[np.arange(len(q)) != i] *= (probe - q[i]) / rest if rest > 0 else 1.0
                if (q < 0).any():
                    raise ValueError(f"up factor {factor} leaves no tokens for the other domains "
                                     f"under the fixed-total design (domain {name})")
            elif design != "fixed-others":
                raise ValueError(f"unknown DDO design {design!r}")
            specs.append(TrialSpec(f"ddo/{probe:.4g}/{name}-{label}", "ddo", int(round(q.sum())),
                                   _norm(names, q), None, seed, probe,
                                   {"perturbed": name, "factor": f"{factor:g}"}))
    return specs


def _norm(names: Sequence[str], q: np.ndarray) -> dict[str, float]:
    return {d: float(v / q.sum()) for d, v in zip(names, q)}
