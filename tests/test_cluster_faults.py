"""`autoscale-ray run` on a two-node Ray cluster on one machine (`ray.cluster_utils.Cluster`):
trials on both nodes, results in an S3-compatible store on loopback (moto), a trial's worker
SIGKILLed mid-run, a worker node removed mid-search, and no credential in any output.

The driver is the real CLI in a subprocess connected through RAY_ADDRESS. `AUTOSCALE_RAY_TESTING_
PAUSE_DIR` (autoscale_ray/chaos.py) holds a trial right after it reported a checkpoint, so the
kill and the node loss happen at a known point mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest

from autoscale_ray.chaos import PAUSE_DIR_ENV
from helpers import corpus_cache, experiment_config
from helpers import write_config as write_yaml

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).with_name("autoscale-ray"))
FAKE_SECRET = "autoscaleFAKEsecret0000do-not-leak"
BUCKET = "results"
SYNTHETIC_DOMAINS = 4


def write_config(tmp: Path, name: str, **search: Any) -> Path:
    """The small config without its LR (the caller gives `lr` or `lr_grid`), one trial per node:
    the head and the worker node have one CPU each."""
    cfg = experiment_config(name, corpus_cache(tmp), drop=("search.lr", "resources"), search=search,
                            resources={"max_concurrent_trials": 2, "cpus_per_trial": 1, "max_failures": 2})
    return write_yaml(tmp / f"{name}.yaml", cfg)


def wait_for(predicate, timeout: float, what: str, log: Path | None = None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}\n{tail}")


def paused(folder: Path, pattern: str = "[!u]*.json") -> list[dict]:
    """The chaos hook's markers: trials held after a checkpoint, or (upload-*.json) mid-upload."""
    return [json.loads(p.read_text()) for p in sorted(folder.glob(pattern))]


class TwoNodes:
    """A head and one worker node, one CPU each, started from this process: their workers inherit
    its environment (the S3 endpoint, the fake credentials, `pause_dir` for the chaos hook)."""

    def __init__(self, pause_dir: Path) -> None:
        from ray.cluster_utils import Cluster

        os.environ[PAUSE_DIR_ENV] = str(pause_dir)
        try:
            self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
            self.worker = self.cluster.add_node(num_cpus=1)
        finally:
            os.environ.pop(PAUSE_DIR_ENV)
        self.head_id = self.cluster.head_node.node_id
        self.worker_id = self.worker.node_id

    def session_dir(self) -> Path:
        return Path(self.cluster.head_node.get_session_dir_path())

    def shutdown(self) -> None:
        self.cluster.shutdown()


@pytest.fixture(scope="module")
def environment(tmp_path_factory) -> Iterator[dict[str, str]]:
    """moto's S3 server on loopback and the environment a cluster user has (endpoint, keys)."""
    pytest.importorskip("moto")
    import boto3
    from moto.server import ThreadedMotoServer

    from data_fixtures import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": FAKE_SECRET, "AWS_DEFAULT_REGION": "us-east-1",
           "RAY_DATA_DISABLE_PROGRESS_BARS": "1", "OMP_NUM_THREADS": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def s3_objects(prefix: str) -> dict[str, bytes]:
    import boto3

    client = boto3.client("s3")
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
            for o in page.get("Contents", [])]
    return {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}


@pytest.fixture(scope="module")
def s3_search(environment, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The demo's search shape (LR sweep at two probes, then DDO at both with 2 base replicates: 30 trials) on two nodes,
    --out on S3; the first trial to checkpoint while the gate is up is SIGKILLed."""
    tmp = tmp_path_factory.mktemp("s3search")
    pause = tmp / "pause"
    pause.mkdir()
    (pause / "gate").touch()
    nodes = TwoNodes(pause)
    log = tmp / "driver.log"
    env = {**os.environ, "RAY_ADDRESS": nodes.cluster.address}
    try:
        # real Ray measuring the noise; 20 redraws per interval, not 100: the fits are half of a
        # replicated search's CPU time, and the faults, not the intervals' precision, are under test
        cfg = write_config(tmp, "demo2n", lr_grid=[1e-3, 3e-3, 1e-2, 3e-2],
                           ddo={"rounds": 1, "replicates": 2}, bootstrap=20)
        with open(log, "w") as err, open(tmp / "stdout.json", "w") as out:
            proc = subprocess.Popen([EXE, "run", str(cfg), "--out", f"s3://{BUCKET}/demo2n", "--json"],
                                    env=env, stdout=out, stderr=err, cwd=tmp)
            victim = wait_for(lambda: paused(pause), 600, "a trial to report a checkpoint", log)[0]
            cmdline = Path(f"/proc/{victim['pid']}/cmdline").read_bytes()
            os.kill(victim["pid"], signal.SIGKILL)
            (pause / "upload-gate").touch()  # next: a trial killed halfway through uploading a checkpoint
            (pause / "gate").unlink()
            cut = wait_for(lambda: paused(pause, "upload-*.json"), 600, "a trial to upload a checkpoint", log)[0]
            partial = {k: len(v) for k, v in s3_objects(cut["path"].split("/", 1)[1] + "/").items()}
            os.kill(cut["pid"], signal.SIGKILL)
            (pause / "upload-gate").unlink()
            rc = proc.wait(timeout=900)
        result = {"rc": rc, "victim": victim, "victim_cmdline": cmdline, "log": log.read_text(),
                  "cut": cut, "partial": partial,
                  "stdout": (tmp / "stdout.json").read_text(), "nodes": nodes, "cwd": tmp,
                  "objects": s3_objects("demo2n/"), "ray_session": nodes.session_dir()}
    finally:
        nodes.shutdown()  # its logs stay on disk; later tests start their own Ray
    yield result


def test_search_runs_on_both_nodes_and_writes_to_s3(s3_search) -> None:
    assert s3_search["rc"] == 0, s3_search["log"][-3000:]
    objects = s3_search["objects"]
    for name in ("recommendation.json", "runs.parquet", "report.md", "progress.json", "mixtures.png"):
        assert f"demo2n/{name}" in objects, sorted(objects)[:20]
    rec = json.loads(objects["demo2n/recommendation.json"])
    assert rec == json.loads(s3_search["stdout"])
    assert objects["demo2n/report.md"].startswith(b"# autoscale-ray report: demo2n\n")
    assert abs(sum(rec["weights"].values()) - 1) < 1e-9 and rec["lr"] > 0
    # the base replicates were real trials: each probe's noise is measured, the weights carry
    # intervals that hold them, and the report opens with how far to trust them
    for probe in rec["trust"]["noise"].values():
        assert probe["noise"]["measured_from"] == "replicates" and probe["noise"]["replicates"] == 3
    assert all(o["bootstrap"]["draws"] == 20 for o in rec["evidence"]["probe_optima"].values())
    assert all(lo <= rec["weights"][d] <= hi for d, (lo, hi) in rec["weights_interval"].items())
    assert b"## How far to trust this" in objects["demo2n/report.md"]
    runs = pd.read_parquet(__import__("io").BytesIO(objects["demo2n/runs.parquet"]))
    # LR sweep + DDO with the default 2 replicate seeds of each probe's base run
    assert runs["key"].nunique() == 2 * 4 + 2 * (2 * SYNTHETIC_DOMAINS + 1 + 2)
    nodes = s3_search["nodes"]
    assert set(runs["node"]) == {nodes.head_id, nodes.worker_id}  # trials trained on both nodes
    # Tune's experiment (trial results, checkpoints, searcher state) is on S3 too, nothing local
    assert any(k.startswith("demo2n/tune/demo2n/") and "checkpoint_" in k for k in objects)
    assert any(k.startswith("demo2n/tune/demo2n/searcher-state") for k in objects)
    assert not (s3_search["cwd"] / "results").exists()


def test_sigkilled_trial_worker_resumes_from_its_checkpoint(s3_search) -> None:
    assert s3_search["rc"] == 0, s3_search["log"][-3000:]
    victim = s3_search["victim"]
    assert s3_search["victim_cmdline"].startswith(b"ray::")  # a Ray worker process, not the driver
    rec = json.loads(s3_search["objects"]["demo2n/recommendation.json"])
    util = rec["evidence"]["utilisation"]
    assert util["retries"] >= 1 and util["errors"] == 0
    assert util["trials"] == 30  # the same number of trials as without the kill
    done = json.loads(s3_search["objects"]["demo2n/done/" + victim["key"].replace("/", "_") + ".json"])
    rows = sorted(done["rows"], key=lambda r: r["tokens"])
    before = [r for r in rows if r["pid"] == victim["pid"]]
    after = [r for r in rows if r["pid"] != victim["pid"]]
    assert before and after and max(r["tokens"] for r in before) == victim["tokens"]
    # the retry started from the checkpoint: Tune restored its iteration count, and training
    # continued after the checkpoint's tokens instead of starting over
    assert all(r["iterations_since_restore"] < r["training_iteration"] for r in after)
    assert min(r["tokens"] for r in after) > victim["tokens"]
    assert len(rows) == 6 and rows[-1]["status"] == "completed"
    assert victim["key"] in s3_search["log"] and "retries it from its last checkpoint" in s3_search["log"]


def test_trial_killed_mid_upload_restarts_from_its_last_complete_checkpoint(s3_search) -> None:
    """The kill left a checkpoint on S3 that looks complete (position.json whole) but is not
    (state.pt cut in half); Tune had not registered it, so the retry starts from the one before."""
    assert s3_search["rc"] == 0, s3_search["log"][-3000:]
    cut, victim = s3_search["cut"], s3_search["victim"]
    assert cut["key"] != victim["key"] and cut["last_complete_tokens"] < cut["tokens"]
    partial = {k.rsplit("/", 1)[1]: size for k, size in s3_search["partial"].items()
               if not k.endswith("/")}  # not the folder's own marker object
    assert set(partial) == {"position.json", "state.pt"}
    done = json.loads(s3_search["objects"]["demo2n/done/" + cut["key"].replace("/", "_") + ".json"])
    rows = sorted(done["rows"], key=lambda r: r["tokens"])
    before = [r for r in rows if r["pid"] == cut["pid"]]
    after = [r for r in rows if r["pid"] != cut["pid"]]
    # the rows after the last complete checkpoint, the cut one's included, were trained again
    assert before and max(r["tokens"] for r in before) == cut["last_complete_tokens"]
    assert min(r["tokens"] for r in after) > cut["last_complete_tokens"]
    assert cut["tokens"] in {r["tokens"] for r in after}
    assert all(r["iterations_since_restore"] < r["training_iteration"] for r in after)
    assert len(rows) == 6 and rows[-1]["status"] == "completed"
    # the cut state.pt was half of a whole one (every trial trains the same model)
    objects = s3_search["objects"]
    whole = max(len(v) for k, v in objects.items() if k.endswith("/state.pt"))
    assert partial["state.pt"] == whole // 2
    util = json.loads(objects["demo2n/recommendation.json"])["evidence"]["utilisation"]
    assert util["retries"] >= 2 and util["errors"] == 0


def test_no_credentials_in_outputs_logs_or_reports(s3_search) -> None:
    """The fake secret was in the environment of the driver and of both nodes throughout."""
    secret = FAKE_SECRET.encode()
    leaked = [k for k, data in s3_search["objects"].items() if secret in data]
    assert not leaked
    assert FAKE_SECRET not in s3_search["log"] and FAKE_SECRET not in s3_search["stdout"]
    ray_logs = [p for p in s3_search["ray_session"].rglob("*") if p.is_file() and p.stat().st_size < 50e6]
    assert ray_logs
    assert not [str(p) for p in ray_logs if secret in p.read_bytes()]


def pid_alive(pid: int) -> bool:
    """Running (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_node_loss_reschedules_its_trials_on_the_head(environment, tmp_path: Path) -> None:
    """Remove the worker node while one of its trials is mid-run: the trial is retried on the head
    from its checkpoint, and the search completes with every trial."""
    pause = tmp_path / "pause"
    pause.mkdir()
    (pause / "gate").touch()
    nodes = TwoNodes(pause)
    log = tmp_path / "driver.log"
    out = tmp_path / "out"
    env = {**os.environ, "RAY_ADDRESS": nodes.cluster.address}
    try:
        cfg = write_config(tmp_path, "nodeloss", probe_budgets=[2.4e4], lr=3e-3)
        with open(log, "w") as err:
            proc = subprocess.Popen([EXE, "run", str(cfg), "--out", str(out), "--json"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=err)
            on_worker = wait_for(lambda: [p for p in paused(pause) if p["node"] == nodes.worker_id],
                                 600, "a trial on the worker node to checkpoint", log)[0]
            nodes.cluster.remove_node(nodes.worker, allow_graceful=False)
            # the paused trial's process outlives its raylet for a moment; lifting the gate before
            # it is gone lets it train (and report) past the checkpoint on the removed node
            wait_for(lambda: not pid_alive(on_worker["pid"]), 120, "the removed node's trial process to exit", log)
            (pause / "gate").unlink()
            rc = proc.wait(timeout=900)
    finally:
        nodes.shutdown()
    assert rc == 0, log.read_text()[-3000:]
    rec = json.loads((out / "recommendation.json").read_text())
    assert rec["evidence"]["utilisation"]["retries"] >= 1
    runs = pd.read_parquet(out / "runs.parquet")
    assert runs["key"].nunique() == 2 * SYNTHETIC_DOMAINS + 1
    lost = runs[runs["key"] == on_worker["key"]].sort_values("tokens")
    assert len(lost) == 6 and lost["status"].iloc[-1] == "completed"
    # trained on the worker up to its checkpoint, finished on the head from there
    assert set(lost[lost["tokens"] <= on_worker["tokens"]]["node"]) == {nodes.worker_id}
    assert set(lost[lost["tokens"] > on_worker["tokens"]]["node"]) == {nodes.head_id}


def test_report_is_rebuilt_from_the_s3_output(s3_search) -> None:
    import boto3

    from autoscale_ray.cli import main

    assert s3_search["rc"] == 0, s3_search["log"][-3000:]
    client = boto3.client("s3")
    client.delete_object(Bucket=BUCKET, Key="demo2n/report.md")
    assert main(["report", f"s3://{BUCKET}/demo2n"]) == 0
    report = client.get_object(Bucket=BUCKET, Key="demo2n/report.md")["Body"].read().decode()
    assert report == s3_search["objects"]["demo2n/report.md"].decode()


def test_resume_from_s3_trains_nothing_again(s3_search) -> None:
    """`--resume` restores the experiment and the searcher from s3:// (here on a fresh local Ray)."""
    assert s3_search["rc"] == 0, s3_search["log"][-3000:]
    trained = [k for k in s3_search["objects"] if k.startswith("demo2n/trained/")]
    proc = subprocess.run([EXE, "run", str(s3_search["cwd"] / "demo2n.yaml"), "--out", f"s3://{BUCKET}/demo2n",
                           "--resume", "--json"], capture_output=True, text=True, timeout=900,
                          cwd=s3_search["cwd"], env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec, first = json.loads(proc.stdout), json.loads(s3_search["stdout"])
    assert rec["weights"] == first["weights"] and rec["lr"] == first["lr"]
    assert sorted(k for k in s3_objects("demo2n/trained/")) == sorted(trained)  # no trial retrained
