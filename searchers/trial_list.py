"""A plan of given trials (`autoscale-ray compare`: each arm's mixture at the target with K seeds).

A `PlanQueue` (searchers/plan_queue.py) as `DDOPlan` is, so `DDOSearcher` runs it in one Tune
experiment with the search's trial contract, `done/` records and runs table; nothing is fitted,
the rows go to the predictor actor as a store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from autoscale_ray.tuning.specs import TrialSpec
from autoscale_ray.searchers.plan_queue import PlanQueue


@dataclass
class TrialListPlan(PlanQueue):
    specs: Sequence[TrialSpec]

    LEFT_OUT = "left out of its arm's mean"

    def start(self) -> None:
        self.queue.extend(self.specs)

    def planned_trials(self) -> int:
        return len(self.specs)

    def _meta(self, spec: TrialSpec) -> dict[str, Any]:
        return {"arm": spec.tags.get("arm")}
