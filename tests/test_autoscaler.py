"""The autoscaler adds GPU workers for a search's queued GPU trials and removes them when idle: Ray's
fake multi-node provider (FakeMultiNodeProvider) under autoscaler v2, on a head this test starts
(`ray start --head --block --autoscaling-config=...`, RAY_FAKE_CLUSTER=1), the search run against
it as a driver (RAY_ADDRESS).

The provider starts each worker node as real Ray processes (raylet, agents) on this machine, with
the logical resources of its node type, from the head's autoscaler monitor. The worker type has the
shape of the GPU workers in cluster/aws-gpu.yaml and gcp-gpu.yaml (min_workers 0, 1 GPU each, an
idle timeout), sized to this machine. Its GPU is logical: a trial that reserves half of one trains
on the CPU, since there is no CUDA here, and says so in the runs table's `device` column."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest
import torch
from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID

from helpers import corpus_cache, experiment_config, write_config
from ray_head import RayHead

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).with_name("autoscale-ray"))
WORKER_TYPE = "gpu_worker"
IDLE_TIMEOUT_MIN = 0.1  # 6 s: idle workers go soon after the search
SYNTHETIC_DOMAINS = 4


# Autoscaler v2, which `ray up` runs since Ray 2.50 (RAY_UP_enable_autoscaler_v2=1 by default): the
# launcher passes the head its instance id and node type the same way. With the fake provider the
# head's node id is its fixed instance id, as in Ray's own AutoscalingCluster(autoscaler_v2=True).
HEAD_ENV = {"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_enable_autoscaler_v2": "1",
            "RAY_CLOUD_INSTANCE_ID": FAKE_HEAD_NODE_ID, "RAY_OVERRIDE_NODE_ID_FOR_TESTING": FAKE_HEAD_NODE_ID,
            "RAY_NODE_TYPE_NAME": "ray.head.default"}


def fake_cluster_config(gcs_port: int) -> dict[str, Any]:
    """The whole cluster config (the wheel lacks fake_multi_node/example.yaml, which Ray's own
    AutoscalingCluster reads): a 2-CPU head that takes no workers and one GPU worker type, 0 to 2."""
    return {
        "cluster_name": "fake-gpu",
        "max_workers": 2,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": IDLE_TIMEOUT_MIN,
        "provider": {
            # the fake multi-node provider by its module path: as `type: fake_multinode` the v2
            # monitor exits at start, merging in fake_multi_node/example.yaml, which the wheel lacks
            "type": "external",
            "module": "ray.autoscaler._private.fake_multi_node.node_provider.FakeMultiNodeProvider",
            # several nodes share this machine's IP: the autoscaler tells them apart by node id
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,  # no SSH, no setup commands: the provider starts Ray itself
            "disable_launch_config_check": True,
            # where its worker nodes join; the provider assumes 6379 otherwise
            "gcs_address": f"127.0.0.1:{gcs_port}",
            "launch_multiple": True,  # v2 asks for n nodes at once
            "head_node_id": FAKE_HEAD_NODE_ID,
        },
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 2}, "node_config": {}, "max_workers": 0},
            WORKER_TYPE: {"resources": {"CPU": 1, "GPU": 1, "object_store_memory": 200 * 2**20},
                          "node_config": {}, "min_workers": 0, "max_workers": 2},
        },
        "head_node_type": "ray.head.default",
        "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [],
        "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


def alive_workers(head: RayHead) -> set[str]:
    return {n["node_id"] for n in head.nodes() if n["state"] == "ALIVE" and not n["is_head_node"]}


def raylets(head: RayHead) -> int:
    """The cluster's raylet processes on this machine: one per live node."""
    count = 0
    for pid in head.processes():
        try:
            exe = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        count += exe.endswith(b"/raylet")
    return count


class NodeWatch(threading.Thread):
    """Samples the live worker nodes every second: (time, ids)."""

    def __init__(self, head: RayHead) -> None:
        super().__init__(daemon=True)
        self.head, self.stopping = head, threading.Event()
        self.samples: list[tuple[float, set[str]]] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.samples.append((time.time(), alive_workers(self.head)))
            except OSError:  # the dashboard busy for a moment on a loaded machine
                pass
            self.stopping.wait(1.0)

    def seen(self) -> set[str]:
        return set().union(*(ids for _, ids in self.samples))


@pytest.fixture(scope="module")
def scaled_search(tmp_path_factory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("autoscale")
    head = RayHead(tmp / "head.log", num_cpus=2, env=HEAD_ENV)
    head.autoscale(fake_cluster_config(head.gcs_port))
    try:
        head.start()
        (head_node,) = [n["node_id"] for n in head.nodes() if n["is_head_node"]]
        time.sleep(5)  # a few autoscaler rounds: min_workers 0 starts nothing
        before = alive_workers(head)
        # 2 trials at a time, each half a GPU: only a worker node can run them
        cfg = experiment_config("scaled", corpus_cache(tmp), drop=("resources",), search={"probe_budgets": [1.2e4]},
                                resources={"max_concurrent_trials": 2, "cpus_per_trial": 0.5,
                                           "trials_per_gpu": 2, "max_failures": 1})
        out = tmp / "out"
        watch = NodeWatch(head)
        watch.start()
        started = time.time()
        with open(tmp / "driver.log", "w") as log:
            driver = subprocess.run([EXE, "run", str(write_config(tmp / "scaled.yaml", cfg)), "--out", str(out),
                                     "--json"], env={**head.env, "RAY_ADDRESS": head.gcs_address()},
                                    stdout=subprocess.PIPE, stderr=log, text=True, timeout=900)
        ended = time.time()
        # after the search: the workers idle, then the autoscaler removes them
        deadline = ended + IDLE_TIMEOUT_MIN * 60 + 180
        while alive_workers(head) and time.time() < deadline:
            time.sleep(1)
        scaled_in = time.time()
        while raylets(head) > 1 and time.time() < scaled_in + 30:  # a removed node's raylet exiting
            time.sleep(1)
        watch.stopping.set()
        watch.join()
        monitor = (head.session_dir() / "logs" / "monitor.log").read_text()
        (tmp / "monitor.log").write_text(monitor)  # the temp dir goes at teardown
        yield {"rc": driver.returncode, "stdout": driver.stdout, "log": (tmp / "driver.log").read_text(),
               "out": out, "head_node": head_node, "before": before, "watch": watch, "started": started,
               "ended": ended, "scaled_in": scaled_in, "after": alive_workers(head), "raylets": raylets(head),
               "monitor": monitor}
    finally:
        left = head.stop()
        head.remove_temp_dir()
        assert not left, f"processes of the test's cluster still alive: {left}"


def test_gpu_trials_make_the_autoscaler_add_workers_and_remove_them_when_idle(scaled_search) -> None:
    s = scaled_search
    assert s["rc"] == 0, s["log"][-3000:]
    assert s["before"] == set(), "min_workers 0: no worker before the search"
    samples = s["watch"].samples
    assert samples and samples[0][1] == set(), "the search started on a cluster without workers"
    workers = s["watch"].seen()
    assert 1 <= len(workers) <= 2  # GPU trials queued -> GPU workers, up to the type's max_workers
    # the autoscaler's own account: it launched them for the demand and removed them as idle
    assert re.search(rf"Adding \d node\(s\) of type {WORKER_TYPE}\.", s["monitor"]), s["monitor"][-3000:]
    assert re.search(rf"Removing \d nodes of type {WORKER_TYPE} \(idle\)\.", s["monitor"]), s["monitor"][-3000:]
    # scale-in: every worker went away after the search, and its processes with it (the one
    # raylet left is the head's)
    assert s["after"] == set(), f"workers still up {s['scaled_in'] - s['ended']:.0f} s after the search"
    assert s["raylets"] == 1


def test_trials_ran_on_the_added_workers_on_cpu(scaled_search) -> None:
    s = scaled_search
    assert s["rc"] == 0, s["log"][-3000:]
    runs = pd.read_parquet(s["out"] / "runs.parquet")
    assert runs["key"].nunique() == 2 * SYNTHETIC_DOMAINS + 1
    assert set(runs["node"]) <= s["watch"].seen() and s["head_node"] not in set(runs["node"])
    # each trial reserved half a GPU in process, and trained on the CPU: no CUDA on this machine
    assert not torch.cuda.is_available()
    assert set(runs["device"]) == {"cpu"}
    params = [json.loads(p.read_text()) for p in (s["out"] / "tune").rglob("params.json")]
    assert params and all(p["contract"]["resources"] == {"cpu": 0.5, "gpu": 0.5} and p["contract"]["use_gpu"]
                          and p["contract"]["in_process"] for p in params)
    rec = json.loads(s["stdout"])
    assert rec == json.loads((s["out"] / "recommendation.json").read_text())

