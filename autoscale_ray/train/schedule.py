"""Learning-rate schedules as pure functions of the optimizer step.

All start with a linear warm-up to the peak LR over `warmup` steps, then:
- cosine: half-cosine decay to `min_ratio` x peak at the last step (GPT-3, Chinchilla);
- constant: the peak until the end (the LR-horizon sweeps of Bjorck et al. 2024 use decaying
  schedules; constant is kept for ablations);
- wsd: warmup-stable-decay (Hu et al. 2024, MiniCPM): the peak until the last `decay` steps,
  then linear decay to `min_ratio` x peak.
`LRFactor` is picklable so `torch.optim.lr_scheduler.LambdaLR` state round-trips through checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def lr_factor(step: int, *, total: int, warmup: int, schedule: str = "cosine",
              min_ratio: float = 0.1, decay: int = 0) -> float:
    """Multiplier of the peak LR used for optimizer step `step` (0-based) of `total` steps."""
    if step < warmup:
        return (step + 1) / warmup  # never exactly 0: the first step already learns
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(1, total - 1 - warmup)
        progress = min(1.0, (step - warmup) / span)
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "wsd":
        start = total - decay
        if step < start or decay <= 0:
            return 1.0
        progress = min(1.0, (step - start + 1) / decay)
        return 1.0 - (1.0 - min_ratio) * progress
    raise ValueError(f"unknown schedule {schedule!r}")


@dataclass(frozen=True)
class LRFactor:
    """`lr_factor` bound to one run, usable as a LambdaLR lambda."""

    total: int
    warmup: int
    schedule: str = "cosine"
    min_ratio: float = 0.1
    decay: int = 0

    @classmethod
    def for_run(cls, total: int, schedule: str, warmup_fraction: float, decay_fraction: float,
                min_ratio: float) -> "LRFactor":
        return cls(total=total, warmup=int(round(warmup_fraction * total)), schedule=schedule,
                   min_ratio=min_ratio, decay=int(round(decay_fraction * total)))

    def __call__(self, step: int) -> float:
        return lr_factor(step, total=self.total, warmup=self.warmup, schedule=self.schedule,
                         min_ratio=self.min_ratio, decay=self.decay)
