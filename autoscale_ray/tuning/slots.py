"""How the trial slots of one Tune experiment were used over time, from the driver's view.

Each trial's span is from Tune starting it on an actor to Tune processing its end (Tune's own
result timestamps are whole seconds, too coarse for proxies of about a second). A slot's idle
gap is the time between one trial's end and the next trial's start in the slot that freed
first; the experiment's start (until the first trial starts) and end (after the last one ends)
are reported apart, as they are paid once per search, not per trial.
"""

from __future__ import annotations

import heapq
from typing import Sequence

import numpy as np


def _idle_before(spans: Sequence[tuple[float, float]], slots: int) -> list[float | None]:
    """The idle time before each span (in the given order) in the slot that freed first; None for
    the first `slots` trials to start, which open the slots."""
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    free: list[float] = []
    idle: list[float | None] = [None] * len(spans)
    for i in order:
        start, end = spans[i]
        if len(free) >= slots:
            idle[i] = max(0.0, start - heapq.heappop(free))
        heapq.heappush(free, end)
    return idle


def slot_gaps(spans: Sequence[tuple[float, float]], slots: int) -> list[float]:
    """The idle time before each trial in the slot that freed first, trials in start order (the
    first `slots` trials open the slots and have no gap)."""
    return [gap for _, gap in sorted(zip(spans, _idle_before(spans, slots))) if gap is not None]


def per_trial(spans: Sequence[tuple[float, float]], keys: Sequence[str], slots: int) -> dict[str, dict[str, float | None]]:
    """Each trial's span (Tune starting it to Tune processing its end) and the idle time before it
    in its slot (None for a slot's first trial), by trial key."""
    idle = _idle_before(spans, slots)
    return {key: {"span_s": end - start, "idle_before_s": gap}
            for key, (start, end), gap in zip(keys, spans, idle)}


def slot_timeline(spans: Sequence[tuple[float, float]], slots: int, began: float,
                  ended: float) -> dict[str, float | None]:
    """Gaps between trials in a slot (median, 90th percentile, total slot-seconds) and the
    experiment's start and end seconds; None where there are too few trials to say."""
    if not spans:
        return {"median_gap_s": None, "p90_gap_s": None, "gap_slot_seconds": None,
                "start_s": None, "end_s": None}
    gaps = slot_gaps(spans, slots)
    return {"median_gap_s": float(np.median(gaps)) if gaps else None,
            "p90_gap_s": float(np.quantile(gaps, 0.9)) if gaps else None,
            "gap_slot_seconds": float(sum(gaps)),
            "start_s": max(0.0, min(s for s, _ in spans) - began),
            "end_s": max(0.0, ended - max(e for _, e in spans))}
