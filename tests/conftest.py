"""Suite-wide settings.

Ray Train's controller checks its workers every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (default 2 s) and
only then sees a run start, report or finish, so a tiny proxy's `TorchTrainer.fit` waits up to 2 s at
each of those steps; the tests' fits train for seconds, and at 0.2 s they take about a third less
(tests/test_train_ray.py: 27 s -> 19 s for the two-worker run). Set here, before any test starts Ray,
so every Ray instance the tests start (ray.init, `ray start` heads, cluster_utils nodes) inherits it;
a value already in the environment is kept. The tool itself leaves Ray's default alone.

The searches share one corpus cache (below)."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")


@pytest.fixture(scope="session", autouse=True)
def shared_corpus_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One corpus cache for the suite's searches (tests/helpers.py `corpus_cache`): the same small
    synthetic corpus is packed once instead of once per search. Tests of the cache itself use their
    own folders."""
    from helpers import CORPUS_CACHE_ENV

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CORPUS_CACHE_ENV, str(tmp_path_factory.mktemp("corpus") / "cache"))
        yield
