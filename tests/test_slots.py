"""The slot timeline of a Tune experiment (tuning/slots.py) on hand-made spans."""

import pytest

from autoscale_ray.tuning.slots import per_trial, slot_gaps, slot_timeline


def test_gaps_follow_the_slot_that_freed_first():
    # two slots: trials 1 and 2 open them; trial 3 starts 0.5 s after trial 2 (the first to free)
    # ended; trial 4 starts at once after trial 1 ended
    spans = [(0.0, 2.0), (0.1, 1.0), (1.5, 3.0), (2.0, 4.0)]
    assert slot_gaps(spans, 2) == pytest.approx([0.5, 0.0])


def test_per_trial_names_each_trials_span_and_idle_time_in_any_order():
    # the same four trials as above, listed in the order they ended
    spans = [(0.1, 1.0), (0.0, 2.0), (1.5, 3.0), (2.0, 4.0)]
    got = per_trial(spans, ["b", "a", "c", "d"], 2)
    assert got == {"a": {"span_s": 2.0, "idle_before_s": None}, "b": {"span_s": pytest.approx(0.9), "idle_before_s": None},
                   "c": {"span_s": 1.5, "idle_before_s": pytest.approx(0.5)}, "d": {"span_s": 2.0, "idle_before_s": 0.0}}


def test_overlapping_start_is_no_gap():
    # a trial Tune started before it processed the previous end (a reused actor) has no idle time
    assert slot_gaps([(0.0, 1.0), (0.9, 2.0)], 1) == [0.0]


def test_timeline_splits_start_end_and_gaps():
    spans = [(10.0, 12.0), (12.4, 14.0), (14.2, 15.0)]
    t = slot_timeline(spans, 1, began=7.0, ended=15.5)
    assert t["start_s"] == pytest.approx(3.0)
    assert t["end_s"] == pytest.approx(0.5)
    assert t["gap_slot_seconds"] == pytest.approx(0.6)
    assert t["median_gap_s"] == pytest.approx(0.3)
    assert t["p90_gap_s"] == pytest.approx(0.38)


def test_timeline_without_trials_says_nothing():
    t = slot_timeline([], 2, began=0.0, ended=1.0)
    assert all(v is None for v in t.values())
