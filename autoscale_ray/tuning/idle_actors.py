"""Keep each slot's trial actor between the search's stages.

With `reuse_actors=True` Tune caches a finished trial's actor only while a staged trial wants its
resources, plus one spare. A search has stages (the LR sweep, then DDO's designs; each DDO round)
and between them the searcher proposes nothing until the stage's last results are in, so at every
stage end Tune keeps one actor and stops the others. The next stage then asks for new actors, and
a new actor takes seconds to start (a fresh worker process that imports torch); when trials are
shorter than that, each freed actor is handed to the trial waiting on a new one and the new one is
dropped, so the trials run one at a time (benchmarks/stage_transition.py: utilisation 0.47 against
0.70 with no stage end). Keeping up to one idle actor per slot between stages costs nothing: the
slots are the search's own, and Tune flushes the cache when the experiment ends.

Tune has no setting for this, so Tune's controller is wrapped once per process: one built by a search's
`Tuner.fit()` (inside `idle_actors_kept`, in that thread) gets an actor cache that keeps `slots` idle
actors; any other Tune experiment is untouched. On a Ray without these internals the search runs with
Tune's own cache (slower between stages, same results).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator

_LOCK = threading.Lock()
_SLOTS = threading.local()  # the slots of the search this thread runs, if any
_INSTALLED: bool | None = None


def _cache_class() -> Any:
    from ray.tune.utils.object_cache import _ObjectCache

    class SlotCache(_ObjectCache):
        """Tune's actor cache, which also keeps up to `slots` actors that no staged trial wants."""

        def __init__(self, slots: int) -> None:
            super().__init__(may_keep_one=True)
            self.slots = slots

        def cache_object(self, key: Any, obj: Any) -> bool:
            if super().cache_object(key, obj):
                return True
            if self.num_cached_objects >= self.slots:
                return False
            self._cached_objects[key].append(obj)
            self._num_cached_objects += 1
            return True

        def flush_cached_objects(self, force_all: bool = False) -> Iterator[Any]:
            if force_all:
                yield from super().flush_cached_objects(force_all=True)
                return
            for key, objs in self._cached_objects.items():
                while len(objs) > max(self._max_num_objects[key], self.slots):
                    self._num_cached_objects -= 1
                    yield objs.pop(0)

    return SlotCache


def _install() -> bool:
    """Wrap TuneController.__init__ once per process: a controller built in a thread inside
    `idle_actors_kept` gets the slot cache, any other exactly Tune's own."""
    global _INSTALLED
    with _LOCK:
        if _INSTALLED is None:
            try:
                from ray.tune.execution.tune_controller import TuneController

                cache = _cache_class()
            except ImportError:
                _INSTALLED = False
                return False
            original = TuneController.__init__

            def init(self: Any, *args: Any, **kwargs: Any) -> None:
                original(self, *args, **kwargs)
                slots = getattr(_SLOTS, "value", None)
                current = getattr(self, "_actor_cache", None)  # absent: another Tune, left alone
                if slots and current is not None and not current.num_cached_objects:
                    self._actor_cache = cache(slots)

            TuneController.__init__ = init
            _INSTALLED = True
        return _INSTALLED


@contextlib.contextmanager
def idle_actors_kept(slots: int) -> Iterator[bool]:
    """Within the block, the Tune experiments this thread runs keep up to `slots` idle trial
    actors between stages. Yields whether that could be set up (False: Tune's internals changed,
    its own cache is used)."""
    if not _install():
        yield False
        return
    before = getattr(_SLOTS, "value", None)
    _SLOTS.value = slots
    try:
        yield True
    finally:
        _SLOTS.value = before
