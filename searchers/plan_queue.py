"""What every plan of the search shares (DDO's, the swarm methods', compare's trial list): the
queue of trial specs, the trials in flight, the finished ones and their rows, and groups of trials
whose completion moves the plan on. `DDOSearcher` drives any plan through this protocol:
start / next_spec / complete / planned_trials / finished / results. Everything pickles (no Ray
handles)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from autoscale_ray.tuning.specs import TrialSpec


class Fits(Protocol):
    """What a plan asks of the predictor."""

    def add(self, key: str, rows: list[dict], meta: Mapping[str, Any] | None = None) -> None: ...
    def lr_for(self, budget: float) -> float: ...
    def lr_best(self, probe: int) -> float | None: ...
    def ddo_optimum(self, probe: int) -> dict[str, Any]: ...
    def recommendation(self) -> dict[str, Any]: ...
    def note(self, text: str) -> None: ...


@dataclass(kw_only=True)
class PlanQueue:
    queue: deque = field(default_factory=deque)            # TrialSpecs ready to issue
    in_flight: dict[str, TrialSpec] = field(default_factory=dict)  # trial_id -> spec
    done: dict[str, str] = field(default_factory=dict)      # key -> "ok" | "failed"
    rows: dict[str, list[dict]] = field(default_factory=dict)  # key -> evaluation rows
    meta: dict[str, dict] = field(default_factory=dict)        # key -> what the fits need of it
    waiting: dict[str, set[str]] = field(default_factory=dict)  # group -> keys still to finish
    results: dict[str, Any] = field(default_factory=dict)   # what the fits reached
    finished: bool = False

    LEFT_OUT = "left out of every fit"  # what a failed trial's note says happened to it

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
        self.done[spec.key] = "ok" if ok else "failed"
        if ok and rows:
            self.rows[spec.key] = rows
            self.meta[spec.key] = self._meta(spec)
            fits.add(spec.key, rows, self.meta[spec.key])
        elif not ok:
            fits.note(f"trial {spec.key} ({trial_id}) failed or diverged: {self.LEFT_OUT}")
        for group, keys in list(self.waiting.items()):
            keys.discard(spec.key)
            if not keys:
                del self.waiting[group]
                self._group_done(group, fits)
        if not self.queue and not self.in_flight and not self.waiting:
            self.finished = True

    def _enqueue(self, group: str, specs: list[TrialSpec]) -> None:
        """Queue the specs not finished yet; `_group_done(group)` once they all are."""
        fresh = [s for s in specs if s.key not in self.done]
        self.waiting[group] = {s.key for s in fresh}
        self.queue.extend(fresh)

    # -- what a plan fills in --------------------------------------------------------------------
    def _meta(self, spec: TrialSpec) -> dict[str, Any]:
        """What the predictor records of a finished trial besides its rows."""
        return {"probe": spec.probe, "arm": spec.tags.get("arm")}

    def _group_done(self, group: str, fits: Fits) -> None:
        """Every trial of `group` finished: the plan's next stage."""
