"""Tune's searcher checkpoint, signed by the process that wrote it.

Tune calls `save` to snapshot a searcher and `restore` to load one back. A pickle runs code when
loaded, and the snapshot lives in the output store (a shared bucket, a team's mount), so the state
is signed with a key that exists only in this process's memory: `restore` loads only what this
very process saved and refuses anything else, a crafted file included. (`autoscale-ray run
--resume` never restores a searcher: it replays finished trials from `done/*.json`.)
"""

from __future__ import annotations

import hashlib
import hmac
import pickle
import secrets

from autoscale_ray.errors import BadInput

_KEY = secrets.token_bytes(32)  # never written anywhere
_MAGIC = b"autoscale-ray-state-v1\n"


def _mac(data: bytes) -> bytes:
    return hmac.new(_KEY, data, hashlib.sha256).digest()


class PickledState:
    """Mixin for `ray.tune.search.Searcher` subclasses that define get_state/set_state."""

    def save(self, checkpoint_path: str) -> None:
        data = pickle.dumps(self.get_state())
        with open(checkpoint_path, "wb") as f:
            f.write(_MAGIC + _mac(data) + data)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            blob = f.read()
        head, mac, data = blob[:len(_MAGIC)], blob[len(_MAGIC):len(_MAGIC) + 32], blob[len(_MAGIC) + 32:]
        if head != _MAGIC or not hmac.compare_digest(mac, _mac(data)):
            raise BadInput("searcher state was not written by this process: refusing to load it "
                           "(a pickle runs code)", checkpoint_path,
                           "resume a search with `autoscale-ray run CONFIG --out DIR --resume`")
        self.set_state(pickle.loads(data))
