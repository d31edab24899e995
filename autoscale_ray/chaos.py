"""Fault injection for the fault-tolerance tests (inert unless its environment variables are set).

* `AUTOSCALE_RAY_TESTING_FAIL_KEYS=k1,k2`: those trials raise on every attempt.
* `AUTOSCALE_RAY_TESTING_PAUSE_DIR=DIR`: while `DIR/gate` exists, a trial that has just reported a
  checkpoint writes `DIR/<run_id>.json` ({pid, node, key, tokens}) and waits for the gate to go, so
  a test can SIGKILL that process or remove its node at a known point mid-run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

FAIL_KEYS_ENV = "AUTOSCALE_RAY_TESTING_FAIL_KEYS"
PAUSE_DIR_ENV = "AUTOSCALE_RAY_TESTING_PAUSE_DIR"
MAX_PAUSE_S = 300.0


def should_fail(key: str) -> bool:
    return key in os.environ.get(FAIL_KEYS_ENV, "").split(",")


def after_checkpoint(run_id: str, row: Mapping[str, Any]) -> None:
    folder = os.environ.get(PAUSE_DIR_ENV)
    if not folder or not (Path(folder) / "gate").exists():
        return
    import ray

    marker = Path(folder) / f"{run_id}.json"
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                               "key": row.get("key", run_id), "tokens": row.get("tokens")}))
    os.replace(tmp, marker)
    deadline = time.time() + MAX_PAUSE_S
    while (Path(folder) / "gate").exists() and time.time() < deadline:
        time.sleep(0.2)
