"""Terminal progress of a search: stage, trials done/running/failed, elapsed, ETA and the best
objective so far at the latest probe budget (a Tune callback).

In a terminal, one live progress bar on stderr (redrawn in place; failures and retries stay as
lines above it); elsewhere (a log, `ray job logs`) one plain line per finished trial. The same
numbers go to `progress.json` in the output store (written atomically, local or object storage).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

from ray.tune import Callback

from autoscale_ray.tuning.layout import write_progress
from autoscale_ray.tuning.slots import per_trial, slot_timeline
from autoscale_ray.storage import Store


BAR_WIDTH = 24


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


class ProgressCallback(Callback):
    def __init__(self, store: Store, slots: int, planned: Callable[[], int] | None = None,
                 live: bool | None = None) -> None:
        self.store = store
        self.live = sys.stderr.isatty() if live is None else live
        self.best: dict[int, float] = {}  # probe budget -> lowest objective of its finished trials
        self.slots = max(1, slots)
        self._planned = planned  # asked each time: LR-sweep extensions add trials on the way
        self.started = time.time()
        self.running: dict[str, float] = {}
        self.spans: list[tuple[float, float]] = []  # (start, end) of each finished trial
        self.span_keys: list[str] = []  # and its key
        self.ended: float | None = None  # when the Tune experiment ended
        self.failed = 0
        self.retries = 0
        self.stage = "-"

    def timeline(self, began: float) -> dict[str, float | None]:
        """Idle gaps between trials in a slot, and the experiment's start (from `began`, when
        Tuner.fit was called) and end (tuning/slots.py)."""
        return slot_timeline(self.spans, self.slots, began, self.ended or time.time())

    def per_trial(self) -> dict[str, dict[str, float | None]]:
        """Each finished trial's span and the idle time before it in its slot (tuning/slots.py)."""
        return per_trial(self.spans, self.span_keys, self.slots)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running[trial.trial_id] = time.time()
        self.stage = str(trial.config.get("stage", self.stage))
        if self.live:
            self._draw(self._numbers(None))

    def _record_best(self, trial: Any) -> None:
        # per probe budget: a DDO perturbation trains more or fewer tokens than its probe
        loss = (trial.last_result or {}).get("loss")
        budget = trial.config.get("probe") or trial.config.get("budget")
        if isinstance(loss, (int, float)) and loss == loss and budget is not None:
            self.best[int(budget)] = min(float(loss), self.best.get(int(budget), float("inf")))

    def _numbers(self, last: str | None) -> dict[str, Any]:
        """What the bar, the plain line and progress.json show."""
        elapsed = time.time() - self.started
        done = len(self.spans)
        planned = self._planned() if self._planned else None
        eta = None
        if planned and done:
            left = max(planned - done - len(self.running), 0) + len(self.running) / 2
            eta = left * sum(end - start for start, end in self.spans) / done / self.slots
        budget = max(self.best) if self.best else None
        return {"stage": self.stage, "done": done, "failed": self.failed, "running": len(self.running),
                "planned": planned, "retries": self.retries, "elapsed_s": elapsed, "eta_s": eta,
                "best": ({"budget": budget, "objective": self.best[budget]} if budget is not None else None),
                "last": last}

    @staticmethod
    def _summary(n: dict[str, Any]) -> str:
        eta = f", ETA ~{_clock(n['eta_s'])}" if n["eta_s"] is not None else ""
        best = (f" | best {n['best']['objective']:.4g} at the {n['best']['budget']:.3g}-token probe"
                if n["best"] else "")
        return f"elapsed {_clock(n['elapsed_s'])}{eta}{best}"

    def _draw(self, n: dict[str, Any]) -> None:
        planned = max(n["planned"] or 0, n["done"] + n["running"], 1)
        filled = int(round(BAR_WIDTH * n["done"] / planned))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        sys.stderr.write(f"\r\x1b[2K[autoscale-ray] [{bar}] {n['done']}/{planned} {n['stage']}: "
                         f"{n['running']} running, {n['failed']} failed | {self._summary(n)}")
        sys.stderr.flush()

    def _line(self, text: str) -> None:
        """A line that stays: above the live bar in a terminal."""
        print(("\r\x1b[2K" if self.live else "") + text, file=sys.stderr, flush=True)

    def _finish(self, trial: Any, failed: bool) -> None:
        began = self.running.pop(trial.trial_id, None)
        if began is not None:
            self.spans.append((began, time.time()))
            self.span_keys.append(str(trial.config.get("key", trial.trial_id)))
        status = (trial.last_result or {}).get("status")
        bad = failed or status in ("diverged", "failed")
        self.failed += int(bad)
        if not bad:
            self._record_best(trial)
        key = trial.config.get("key", trial.trial_id)
        n = self._numbers(key)
        if self.live:
            if bad:
                self._line(f"[autoscale-ray] {key} FAILED")
            self._draw(n)
        else:
            self._line(f"[autoscale-ray] stage {self.stage}: {n['done']} done ({self.failed} failed), "
                       f"{n['running']} running | {key} {'FAILED' if failed else 'ok'} | {self._summary(n)}")
        write_progress(self.store, n)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, failed=False)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial failed (its process or node died) and Tune retries it from its checkpoint."""
        self.retries += 1
        self.running.pop(trial.trial_id, None)
        key = trial.config.get("key", trial.trial_id)
        self._line(f"[autoscale-ray] {key} failed; Tune retries it from its last checkpoint "
                   f"({self.retries} retries so far)")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, failed=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.ended = time.time()
        if self.live:
            sys.stderr.write("\n")  # the bar's last state stays on screen
            sys.stderr.flush()
