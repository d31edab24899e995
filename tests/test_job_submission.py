"""`autoscale-ray run` submitted as a Ray job to a head this test starts (`ray start --head
--block`), with the `ray job` CLI that cluster/README.md shows: submit, follow the logs, wait for
SUCCEEDED and read the outputs; then a second search stopped with `ray job stop` mid-search and
resubmitted with `--resume`, which trains none of the finished trials again.

The job's working dir is a folder holding only the config (Ray uploads it and runs the entrypoint
there); the package comes from the head's environment, as it does from `pip install` on a
cluster's nodes. `--out` is an absolute local folder, which every process of this one-node cluster
sees."""

from __future__ import annotations

import collections
import json
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest

from autoscale_ray.tuning import folder, layout
from autoscale_ray.storage import Store
from helpers import experiment_config, write_config
from ray_head import RayHead

pytestmark = pytest.mark.slow

SYNTHETIC_DOMAINS = 4
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> Iterator[RayHead]:
    tmp = tmp_path_factory.mktemp("jobhead")
    # `ray job stop` SIGTERMs the entrypoint and SIGKILLs it after RAY_JOB_STOP_WAIT_TIME_S (3 s
    # by default); the job supervisor reads it from the head's environment. A search needs longer
    # to let Tune save its state and exit cleanly (cluster/README.md says to set it).
    node = RayHead(tmp / "head.log", num_cpus=2, env={"RAY_JOB_STOP_WAIT_TIME_S": "120"})
    try:
        yield node.start()
    finally:
        left = node.stop()
        node.remove_temp_dir()
        assert not left, f"processes of the test's cluster still alive: {left}"


def search_dir(tmp: Path, name: str) -> Path:
    """The job's working dir: just the config (its corpus cached outside it, shared by the jobs):
    the small search at one probe budget, 2m+1 = 9 trials."""
    wd = tmp / f"{name}-wd"
    wd.mkdir()
    cfg = experiment_config(name, tmp.parent / "jobcache", search={"probe_budgets": [1.2e4]})
    write_config(wd / "search.yaml", cfg)
    return wd


def submit(head: RayHead, submission_id: str, working_dir: Path, out: Path, *extra: str) -> None:
    head.job("submit", "--submission-id", submission_id, "--working-dir", str(working_dir), "--no-wait",
             "--", "autoscale-ray", "run", "search.yaml", "--out", str(out), *extra)


def follow(head: RayHead, submission_id: str, log: Path) -> subprocess.Popen:
    """`ray job logs --follow`: streams the job's output until it ends."""
    with open(log, "w") as sink:
        return subprocess.Popen(head.job_command("logs", "--follow", submission_id), env=head.env,
                                stdout=sink, stderr=subprocess.STDOUT)


def wait_terminal(head: RayHead, submission_id: str, timeout: float) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = head.job_status(submission_id)
        if status in TERMINAL:
            return status
        time.sleep(1)
    pytest.fail(f"job {submission_id} not finished after {timeout:.0f} s: "
                f"{head.job('logs', submission_id, check=False).stdout[-3000:]}")


def head_node_id(head: RayHead) -> str:
    (node,) = [n for n in head.nodes() if n["is_head_node"]]
    return node["node_id"]


def test_submitted_search_succeeds_with_its_outputs(head: RayHead, tmp_path: Path) -> None:
    out = tmp_path / "out"
    submit(head, "search-full", search_dir(tmp_path, "jobfull"), out)
    logs = follow(head, "search-full", tmp_path / "logs.txt")
    assert wait_terminal(head, "search-full", 900) == "SUCCEEDED", (tmp_path / "logs.txt").read_text()[-3000:]
    assert logs.wait(timeout=120) == 0
    followed = (tmp_path / "logs.txt").read_text()
    # the job ran the CLI in the uploaded working dir and printed its summary to the job's log
    assert "Running entrypoint for job search-full: autoscale-ray run search.yaml" in followed
    assert f"recommendation.json, runs.parquet and report.md in {out}" in followed
    info = head.get("/api/jobs/search-full")
    assert info["driver_exit_code"] == 0 and info["runtime_env"]["working_dir"].startswith("gcs://_ray_pkg_")

    rec = json.loads((out / "recommendation.json").read_text())
    assert abs(sum(rec["weights"].values()) - 1) < 1e-9 and rec["lr"] > 0
    runs = pd.read_parquet(out / "runs.parquet")
    keys = sorted(runs["key"].unique())
    assert len(keys) == 2 * SYNTHETIC_DOMAINS + 1  # the base run + down/up per domain at one probe
    assert sorted(rec["evidence"]["trials"]) == keys
    per_trial = runs.groupby("key")
    assert (per_trial["tokens"].nunique() == 6).all()  # every evaluation of every trial
    assert (per_trial["status"].last() == "completed").all()
    assert set(runs["node"]) == {head_node_id(head)}  # trained on this cluster, its only node
    assert (out / "report.md").read_text().startswith("# autoscale-ray report: out\n")
    assert json.loads((out / layout.MARKER).read_text())["state"] == "complete"


def test_stopped_job_resumes_without_training_finished_trials_again(head: RayHead, tmp_path: Path) -> None:
    out = tmp_path / "out"
    wd = search_dir(tmp_path, "jobstop")
    planned = 2 * SYNTHETIC_DOMAINS + 1
    store = Store(str(out))
    submit(head, "search-stop", wd, out)
    deadline = time.time() + 600
    while layout.count_done(store) < 2:  # done/: the trials the searcher recorded as finished
        assert head.job_status("search-stop") not in TERMINAL, head.job("logs", "search-stop").stdout[-3000:]
        if time.time() > deadline:
            pytest.fail("no 2 trials finished in 600 s: " + head.job("logs", "search-stop").stdout[-3000:])
        time.sleep(0.5)
    stop = head.job("stop", "search-stop", timeout=300)  # waits until the job has ended
    assert "stopped" in (stop.stdout + stop.stderr).lower()
    assert head.job_status("search-stop") == "STOPPED"
    # the job supervisor's own account: the entrypoint exited on SIGTERM, it was not SIGKILLed
    ray_logs = [p.read_text(errors="replace") for p in (head.session_dir() / "logs").glob("*") if p.is_file()]
    assert any("Job search-stop has been terminated gracefully with SIGTERM" in text for text in ray_logs)
    first = head.job("logs", "search-stop").stdout
    (tmp_path / "stop.txt").write_text(first)
    # SIGTERM reached the search, which stopped cleanly (Tune saved its state) before the
    # supervisor's SIGKILL: it says how to continue, and the folder is marked for --resume
    assert "SIGTERM received: stopping the search" in first, first[-3000:]
    assert "--resume" in first and "finished trial(s) kept in" in first, first[-3000:]
    assert json.loads((out / layout.MARKER).read_text())["state"] == "interrupted"
    with folder.SearchLock(store):  # the stopped driver let go of the folder
        pass
    trained_before = [r["key"] for r in store.records(layout.TRAINED)]
    assert 2 <= len(trained_before) < planned, trained_before  # stopped mid-search

    submit(head, "search-resume", wd, out, "--resume")
    logs = follow(head, "search-resume", tmp_path / "resume.txt")
    status = wait_terminal(head, "search-resume", 900)
    assert status == "SUCCEEDED", (tmp_path / "resume.txt").read_text()[-3000:]
    assert logs.wait(timeout=120) == 0
    runs = pd.read_parquet(out / "runs.parquet")
    assert runs["key"].nunique() == planned
    assert not runs.duplicated(["key", "tokens"]).any()  # every evaluation exactly once
    trained = collections.Counter(r["key"] for r in store.records(layout.TRAINED))
    assert max(trained.values()) == 1  # no trial trained twice, across both jobs
    assert set(trained) == set(runs["key"]) and set(trained_before) <= set(trained)
    assert json.loads((out / layout.MARKER).read_text())["state"] == "complete"
