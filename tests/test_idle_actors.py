"""The trial actors of a search's slots survive its stage ends (autoscale_ray/tuning/idle_actors.py):
Tune's own cache keeps one idle actor when the searcher has nothing to propose, and a new actor
takes longer to start than a tiny trial runs, so after a stage the trials ran one at a time."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from autoscale_ray.tuning.idle_actors import _cache_class, idle_actors_kept


def test_the_slot_cache_keeps_up_to_slots_idle_actors_and_flushes_them_at_the_end() -> None:
    cache = _cache_class()(2)
    # nothing staged wants an actor: Tune's cache keeps one, this one keeps one per slot
    assert cache.cache_object("cpu", "a1") and cache.cache_object("cpu", "a2")
    assert not cache.cache_object("cpu", "a3")
    assert list(cache.flush_cached_objects()) == [] and cache.num_cached_objects == 2
    assert cache.pop_cached_object("cpu") == "a1" and cache.num_cached_objects == 1
    cache.increase_max("cpu", 3)  # three staged trials want actors: cached up to that
    assert cache.cache_object("cpu", "a4") and cache.cache_object("cpu", "a5")
    cache.decrease_max("cpu", 3)
    assert list(cache.flush_cached_objects()) == ["a2"]  # back to one per slot, oldest first
    assert sorted(cache.flush_cached_objects(force_all=True)) == ["a4", "a5"]
    assert cache.num_cached_objects == 0


@pytest.fixture(scope="module")
def ray_two_cpus():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def staged_searcher(stages: list[int]) -> Any:
    """Proposes stages[0] trials, then nothing until they are all done, then stages[1], ..."""
    from ray.tune.search import Searcher

    class Staged(Searcher):
        def __init__(self) -> None:
            super().__init__(metric="loss", mode="min")
            self.stage, self.issued, self.done = 0, 0, 0

        def suggest(self, trial_id: str) -> dict | None:
            if self.stage >= len(stages):
                return Searcher.FINISHED
            if self.issued == stages[self.stage]:
                return None  # the stage's results are not all in yet
            self.issued += 1
            return {"stage": self.stage}

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            self.done += 1
            if self.done == stages[self.stage]:
                self.stage, self.issued, self.done = self.stage + 1, 0, 0

    return Staged()


@pytest.mark.slow
def test_after_a_stage_both_slots_run_on_their_kept_actors(ray_two_cpus, tmp_path) -> None:
    from ray import tune

    def tiny_trial(config: dict) -> None:  # defined here: the workers cannot import this module
        time.sleep(0.3)  # shorter than a new actor's start on 2 loaded cores
        tune.report({"loss": 0.0, "pid": os.getpid(), "stage": config["stage"]})

    tuner = tune.Tuner(tune.with_resources(tiny_trial, {"cpu": 0.5}),
                       tune_config=tune.TuneConfig(search_alg=staged_searcher([2, 6, 6]), num_samples=-1,
                                                   max_concurrent_trials=2, reuse_actors=True),
                       run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0))
    with idle_actors_kept(2) as installed:
        grid = tuner.fit()
    assert installed and grid.num_errors == 0 and len(grid) == 14
    pids: dict[int, set[int]] = {}
    for result in grid:
        pids.setdefault(result.metrics["stage"], set()).add(result.metrics["pid"])
    # no actor was started after the first two: every later stage ran on both of them
    assert len(pids[0]) == 2 and pids[1] == pids[0] and pids[2] == pids[0]
