"""A plan of given trials (`autoscale-ray compare`: each arm's mixture at the target with K seeds).

It has `DDOPlan`'s protocol (start / next_spec / complete / planned_trials / finished / results),
so `DDOSearcher` runs it in one Tune experiment with the search's trial contract, `done/` records
and runs table; nothing is fitted, the rows go to the predictor actor as a store.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

from autoscale_ray.tuning.specs import TrialSpec
from autoscale_ray.searchers.ddo import Fits


@dataclass
class TrialListPlan:
    specs: Sequence[TrialSpec]
    queue: deque = field(default_factory=deque)
    in_flight: dict[str, TrialSpec] = field(default_factory=dict)
    done: dict[str, str] = field(default_factory=dict)
    rows: dict[str, list[dict]] = field(default_factory=dict)
    meta: dict[str, dict] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    finished: bool = False

    def start(self) -> None:
        self.queue.extend(self.specs)

    def planned_trials(self) -> int:
        return len(self.specs)

    def next_spec(self, trial_id: str) -> TrialSpec | None:
        if not self.queue:
            return None
        spec = self.queue.popleft()
        self.in_flight[trial_id] = spec
        return spec

    def complete(self, trial_id: str, rows: list[dict], ok: bool, fits: Fits) -> None:
        spec = self.in_flight.pop(trial_id, None)
        if spec is None or spec.key in self.done:
            return
        self.done[spec.key] = "ok" if ok and rows else "failed"
        if ok and rows:
            self.rows[spec.key] = rows
            self.meta[spec.key] = {"arm": spec.tags.get("arm")}
            fits.add(spec.key, rows, self.meta[spec.key])
        else:
            fits.note(f"trial {spec.key} ({trial_id}) failed or diverged: left out of its arm's mean")
        if not self.queue and not self.in_flight:
            self.finished = True
