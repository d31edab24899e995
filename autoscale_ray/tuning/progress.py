"""Terminal progress of a search: stage, trials done/running/failed, elapsed, ETA (a Tune callback).

One line on stderr per finished trial, and `progress.json` in the output store (written atomically,
local or object storage) for anyone watching.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

from ray.tune import Callback

from autoscale_ray.tuning.layout import write_progress
from autoscale_ray.storage import Store


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


class ProgressCallback(Callback):
    def __init__(self, store: Store, slots: int, planned: Callable[[], int] | None = None) -> None:
        self.store = store
        self.slots = max(1, slots)
        self._planned = planned  # asked each time: LR-sweep extensions add trials on the way
        self.started = time.time()
        self.running: dict[str, float] = {}
        self.durations: list[float] = []
        self.failed = 0
        self.retries = 0
        self.stage = "-"

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running[trial.trial_id] = time.time()
        self.stage = str(trial.config.get("stage", self.stage))

    def _finish(self, trial: Any, failed: bool) -> None:
        began = self.running.pop(trial.trial_id, None)
        if began is not None:
            self.durations.append(time.time() - began)
        status = (trial.last_result or {}).get("status")
        self.failed += int(failed or status in ("diverged", "failed"))
        elapsed = time.time() - self.started
        done = len(self.durations)
        eta = ""
        planned = self._planned() if self._planned else None
        if planned and done:
            left = max(planned - done - len(self.running), 0) + len(self.running) / 2
            eta = f", ETA ~{_clock(left * sum(self.durations) / done / self.slots)}"
        key = trial.config.get("key", trial.trial_id)
        line = (f"[autoscale-ray] stage {self.stage}: {done} done ({self.failed} failed), "
                f"{len(self.running)} running | {key} {'FAILED' if failed else 'ok'} | "
                f"elapsed {_clock(elapsed)}{eta}")
        print(line, file=sys.stderr, flush=True)
        write_progress(self.store, {"stage": self.stage, "done": done, "failed": self.failed,
                                    "running": len(self.running), "planned": planned,
                                    "retries": self.retries, "elapsed_s": elapsed, "last": key})

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, failed=False)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial failed (its process or node died) and Tune retries it from its checkpoint."""
        self.retries += 1
        self.running.pop(trial.trial_id, None)
        key = trial.config.get("key", trial.trial_id)
        print(f"[autoscale-ray] {key} failed; Tune retries it from its last checkpoint "
              f"({self.retries} retries so far)", file=sys.stderr, flush=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, failed=True)
