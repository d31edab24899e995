"""Fault injection for the fault-tolerance tests (inert unless its environment variables are set).

* `AUTOSCALE_RAY_TESTING_FAIL_KEYS=k1,k2`: those trials raise on every attempt.
* `AUTOSCALE_RAY_TESTING_PAUSE_DIR=DIR`: while `DIR/gate` exists, a trial that has just reported a
  checkpoint writes `DIR/<run_id>.json` ({pid, node, key, tokens}) and waits for the gate to go, so
  a test can SIGKILL that process or remove its node at a known point mid-run.
* Same DIR, while `DIR/upload-gate` exists: a trial uploading its second (or later) checkpoint of
  this process, and not paused by `gate` before, writes some of the checkpoint's files (all but
  one truncated to half), then `DIR/upload-<run_id>.json` ({pid, key, tokens, last_complete_tokens,
  path}) and waits, so a test can kill it mid-upload.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

FAIL_KEYS_ENV = "AUTOSCALE_RAY_TESTING_FAIL_KEYS"
PAUSE_DIR_ENV = "AUTOSCALE_RAY_TESTING_PAUSE_DIR"
MAX_PAUSE_S = 300.0
_uploaded: dict[str, Any] = {}  # run id -> tokens of its last complete upload in this process


def should_fail(key: str) -> bool:
    return key in os.environ.get(FAIL_KEYS_ENV, "").split(",")


def _gate(name: str) -> Path | None:
    folder = os.environ.get(PAUSE_DIR_ENV)
    return Path(folder) if folder and (Path(folder) / name).exists() else None


def _hold(folder: Path, gate: str, marker: str, payload: Mapping[str, Any]) -> None:
    tmp = folder / f"{marker}.tmp"
    tmp.write_text(json.dumps(dict(payload)))
    os.replace(tmp, folder / marker)
    deadline = time.time() + MAX_PAUSE_S
    while (folder / gate).exists() and time.time() < deadline:
        time.sleep(0.2)


def after_checkpoint(run_id: str, row: Mapping[str, Any]) -> None:
    _uploaded[run_id] = row.get("tokens")
    folder = _gate("gate")
    if folder is None:
        return
    import ray

    _hold(folder, "gate", f"{run_id}.json", {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                                            "key": row.get("key", run_id), "tokens": row.get("tokens")})


@contextlib.contextmanager
def during_upload(run_id: str, row: Mapping[str, Any]) -> Iterator[None]:
    """Around `tune.report(..., checkpoint=...)`: Tune copies the checkpoint to storage in it."""
    folder = _gate("upload-gate")
    if folder is None or run_id not in _uploaded or (folder / f"{run_id}.json").exists():
        yield
        return
    from ray.train._internal import storage

    def partial_copy(source: str, destination: str, source_filesystem: Any = None,
                     destination_filesystem: Any = None, **_: Any) -> None:
        names = sorted(os.listdir(source))
        for i, name in enumerate(names):
            data = Path(source, name).read_bytes()
            with destination_filesystem.open_output_stream(f"{destination}/{name}") as out:
                out.write(data if i < len(names) - 1 else data[: len(data) // 2])
        _hold(folder, "upload-gate", f"upload-{run_id}.json",
              {"pid": os.getpid(), "key": row.get("key", run_id), "tokens": row.get("tokens"),
               "last_complete_tokens": _uploaded[run_id], "path": destination})

    original = storage._pyarrow_fs_copy_files
    storage._pyarrow_fs_copy_files = partial_copy
    try:
        yield
    finally:
        storage._pyarrow_fs_copy_files = original
