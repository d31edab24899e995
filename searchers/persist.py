"""Tune's searcher checkpoint as a pickle of `get_state()` (what `Tuner.restore` needs to resume)."""

from __future__ import annotations

import pickle


class PickledState:
    """Mixin for `ray.tune.search.Searcher` subclasses that define get_state/set_state."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))
