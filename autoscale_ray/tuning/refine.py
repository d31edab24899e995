"""Refinement rounds of DDO at one probe budget: perturbations centred at the last optimum.

One round of perturbations around the base cannot locate an optimum far from it (a domain at 3x
its base share sits beyond the up run, where the surrogate only extrapolates). Round r > 1 runs the
same design centred at round r-1's optimum with smaller steps, the square root of the previous
round's factors (0.2, 3 -> 0.447, 1.73 -> 0.669, 1.32), so a domain at DDO's lower bound gets a run
below it and its curve is identified there. The probe's DDO is then refitted on every run of
every round. Rounds stop when the optimum moved less than `MOVED` in every weight, or the predicted
gain of the new optimum over the round's centre is below `GAIN` (relative objective), or after the
configured number of rounds.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

from autoscale_ray.tuning.specs import TrialSpec, ddo_perturbations

MOVED = 0.01     # weight change (absolute) below which another round is not worth its runs
GAIN = 1e-3      # predicted relative objective gain below which the optimum is taken as found


def round_factors(down: float, up: float, round_: int) -> tuple[float, float]:
    """(down, up) of round `round_` (1 = the first round's factors)."""
    shrink = 0.5 ** (round_ - 1)
    return down ** shrink, up ** shrink


def refinement_specs(probe: int, centre: Mapping[str, float], down: float, up: float, design: str,
                     round_: int, seed: int = 0) -> list[TrialSpec]:
    """The runs of round `round_` >= 2 at `probe`: DDO's design centred at `centre`."""
    d, u = round_factors(down, up, round_)
    specs = ddo_perturbations(probe, centre, d, u, design, seed)
    prefix, moved = f"ddo/{probe:.4g}/", f"ddo/{probe:.4g}/r{round_}/"
    return [dataclasses.replace(s, key=moved + s.key[len(prefix):], tags={**s.tags, "round": str(round_)})
            for s in specs]


def round_of(key: str) -> int:
    """The round of a DDO trial key (`ddo/<probe>/r2/...` is round 2; no round part is round 1)."""
    parts = key.split("/")
    return int(parts[2][1:]) if len(parts) > 3 and parts[2].startswith("r") and parts[2][1:].isdigit() else 1


def keep_refining(previous: Mapping[str, float], optimum: Mapping[str, float],
                  predicted_gain: float) -> bool:
    """Another round only if the optimum moved and the surrogate still promises a gain."""
    moved = max(abs(optimum[d] - previous[d]) for d in optimum)
    return moved >= MOVED and math.isfinite(predicted_gain) and predicted_gain >= GAIN
