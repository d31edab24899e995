"""How a search meets Ray, as a Ray user sees it: the first line names the cluster and the dashboard
(reachable), no Tune banner, a TensorBoard hint into the output folder, a live progress bar in a
terminal, a registered cluster that does not answer refused in seconds, and the Python API
`autoscale_ray.search` inside an existing `ray.init()`."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator

import pandas as pd
import pytest

from autoscale_ray.storage import Store
from data_fixtures import free_port
from helpers import config_file

EXE = str(Path(sys.executable).with_name("autoscale-ray"))


def first_line_with(lines: list[str], text: str) -> str | None:
    return next((line for line in lines if text in line), None)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """The small search run by the command in its own process (a fresh local Ray, the default
    dashboard); the dashboard URL of its first line is fetched while the search runs."""
    tmp = tmp_path_factory.mktemp("session")
    cfg = config_file(tmp, "session")
    out = tmp / "out"
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1", "RAY_ADDRESS": ""}
    proc = subprocess.Popen([EXE, "run", str(cfg), "--out", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp)
    lines: list[str] = []
    status = None
    assert proc.stderr is not None
    for line in proc.stderr:  # the first line comes before any trial starts
        lines.append(line.rstrip("\n"))
        if "dashboard http" in line:
            url = line.rsplit("dashboard ", 1)[1].strip()
            with urllib.request.urlopen(url, timeout=30) as page:
                status = (url, page.status, page.read(200))
            break
    rest, err = proc.communicate(timeout=900)
    lines += err.splitlines()
    yield {"rc": proc.returncode, "stderr": lines, "stdout": rest, "dashboard": status, "cfg": cfg,
           "out": out}


@pytest.mark.slow
def test_first_line_names_the_ray_instance_and_its_dashboard_answers(finished) -> None:
    assert finished["rc"] == 0, "\n".join(finished["stderr"][-40:])
    ours = [line for line in finished["stderr"] if line.startswith("[autoscale-ray]")]
    assert re.match(r"\[autoscale-ray\] Ray: a fresh local Ray instance, \d+ CPU; dashboard http://127\.0\.0\.1:\d+$",
                    ours[0]), ours[0]
    assert finished["stderr"][0] == ours[0]  # Ray's own start-up lines say nothing more
    url, code, body = finished["dashboard"]
    assert code == 200 and body  # the dashboard's page, fetched while the search ran
    assert url in ours[0]


def test_only_ray_inits_own_start_up_lines_are_left_out_and_only_while_it_runs() -> None:
    import logging

    from autoscale_ray.tuning.cluster import one_line_start

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    worker = logging.getLogger("ray._private.worker")
    auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
    levels = [worker.level, auth.level]
    for logger in (worker, auth):
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)

    def say() -> None:
        worker.info("Started a local Ray instance. View the dashboard at http://127.0.0.1:8265")
        worker.warning("a warning of ray.init")
        auth.warning("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out.")
        auth.warning("Token authentication is disabled for this Ray cluster. Anyone with network access ...")
    try:
        with one_line_start():
            say()
        assert seen == ["a warning of ray.init",
                        "Token authentication is disabled for this Ray cluster. Anyone with network access ..."]
        seen.clear()
        say()  # after it: every line again
        assert len(seen) == 4
    finally:
        for logger, level in zip((worker, auth), levels):
            logger.removeHandler(handler)
            logger.setLevel(level)


@pytest.mark.slow
def test_no_tune_banner_and_the_tensorboard_hint_points_into_the_output(finished) -> None:
    text = "\n".join(finished["stderr"])
    assert "Number of trials" not in text and "9223372036854775807" not in text
    assert "Configuration for experiment" not in text and "/tmp/ray/session_" not in text
    hint = first_line_with(finished["stderr"], "TensorBoard:")
    assert hint is not None and hint.endswith(f"tensorboard --logdir {finished['out'] / 'tune'}")
    assert list((finished["out"] / "tune").rglob("events.out.tfevents.*"))  # where the hint points
    # not a terminal: one plain line per finished trial, no bar redraws
    assert "\r" not in text and text.count("[autoscale-ray] stage ddo:") == 18
    progress = json.loads((finished["out"] / "progress.json").read_text())
    assert progress["done"] == 18 and progress["failed"] == 0 and progress["eta_s"] == 0
    assert progress["best"]["budget"] == 24_000 and 0 < progress["best"]["objective"] < 10


@pytest.mark.slow
def test_python_api_in_an_existing_ray_resumes_the_finished_search(finished, capfd) -> None:
    import ray

    import autoscale_ray

    store = Store(str(finished["out"]))
    trained = sorted(r["key"] for r in store.records("trained"))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # a notebook's Ray
    try:
        result = autoscale_ray.search(finished["cfg"], out=finished["out"], resume=True)
    finally:
        ray.shutdown()
    assert isinstance(result, autoscale_ray.SearchResult)
    assert result.recommendation == json.loads((finished["out"] / "recommendation.json").read_text())
    pd.testing.assert_frame_equal(result.runs, pd.read_parquet(finished["out"] / "runs.parquet"))
    assert result.runs["key"].nunique() == 18
    assert Path(result.report_path).read_text().startswith("# autoscale-ray report")
    assert sorted(r["key"] for r in store.records("trained")) == trained  # nothing trained again
    assert autoscale_ray.SearchResult.load(finished["out"]) == result
    err = capfd.readouterr().err
    assert re.search(r"\[autoscale-ray\] Ray: the Ray instance this process started \(ray.init\), 2 CPU; "
                     r"no dashboard\n", err)


def _refused(env: dict[str, str], tmp: Path) -> tuple[int, str, float]:
    cfg = config_file(tmp, "stale")
    began = time.time()
    proc = subprocess.run([EXE, "run", str(cfg), "--out", str(tmp / "out")], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, cwd=tmp)
    return proc.returncode, proc.stderr, time.time() - began


def test_a_registered_cluster_that_died_is_one_line_in_seconds(tmp_path: Path) -> None:
    """`ray start` registered a cluster that then died without `ray stop`: its address file stays."""
    # a short folder of its own, as a real RAY_TMPDIR is (Ray's socket paths must stay short); removed after
    ray_tmp = Path(tempfile.mkdtemp(prefix="ar-stale-"))
    (ray_tmp / "ray").mkdir()
    port = free_port()  # nothing listens there
    (ray_tmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
    try:
        code, err, took = _refused({"RAY_TMPDIR": str(ray_tmp), "RAY_ADDRESS": ""}, tmp_path)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert code == 2 and took < 30, (code, took, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"the Ray cluster registered on this machine at 127.0.0.1:{port} does not answer" in lines[0]
    assert "ray stop" in lines[0] and "RAY_ADDRESS=local" in lines[0]
    assert not (tmp_path / "out").exists()  # nothing written


def test_an_address_nobody_answers_is_one_line(tmp_path: Path) -> None:
    port = free_port()
    code, err, took = _refused({"RAY_ADDRESS": f"127.0.0.1:{port}"}, tmp_path)
    assert code == 2 and took < 30, (code, took, err)
    assert err.strip().splitlines() == [err.strip()]
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in err and "RAY_ADDRESS" in err


def _trial(key: str, budget: int, loss: float | None, status: str = "ok") -> Any:
    return SimpleNamespace(trial_id=key, config={"key": key, "stage": "ddo", "budget": 3 * budget, "probe": budget},
                           last_result={"loss": loss, "status": status})


def test_progress_bar_redraws_in_a_terminal_and_keeps_failures(tmp_path: Path, monkeypatch) -> None:
    from autoscale_ray.tuning.progress import ProgressCallback

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    cb = ProgressCallback(Store(str(tmp_path)), slots=2, planned=lambda: 4, live=True)
    trials = [_trial("a", 100, 3.0), _trial("b", 100, 2.5), _trial("c", 300, 2.9),
              _trial("d", 300, float("nan"), "diverged")]
    for t in trials[:2]:
        cb.on_trial_start(0, [], t)
    cb.on_trial_complete(0, [], trials[0])
    cb.on_trial_complete(0, [], trials[1])
    for t in trials[2:]:
        cb.on_trial_start(0, [], t)
    cb.on_trial_complete(0, [], trials[2])
    cb.on_trial_complete(0, [], trials[3])
    cb.on_experiment_end([])
    text = err.getvalue()
    frames = text.split("\r\x1b[2K")
    assert frames[-1].startswith("[autoscale-ray] [########################] 4/4 ddo: 0 running, 1 failed")
    assert "best 2.9 at the 300-token probe" in frames[-1] and text.endswith("\n")
    assert "[autoscale-ray] [############------------] 2/4" in text
    assert "[autoscale-ray] d FAILED\n" in text  # a line that stays above the bar
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["done"] == 4 and progress["failed"] == 1 and progress["last"] == "d"
    assert progress["best"] == {"budget": 300, "objective": 2.9}  # the diverged trial left out
