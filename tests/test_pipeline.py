"""`autoscale-ray run` end to end on real Ray (synthetic corpus, tiny proxies), its outputs, and
resuming a search whose driver was killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from autoscale_ray.config import load_config
from autoscale_ray.errors import BadInput
from autoscale_ray.storage import Store

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).with_name("autoscale-ray"))


def config(tmp: Path, name: str, file: str | None = None, **search) -> Path:
    cfg = {
        "name": name,
        "corpus": {"synthetic": True, "seq_len": 64, "val_tokens": 2048, "cache_dir": str(tmp / "cache")},
        "train": {"model": "gpt2-tiny", "global_batch_tokens": 1024, "micro_batch": 16, "eval_count": 6,
                  "eval_batches": 2},
        "search": {"probe_budgets": [1.2e4, 2.4e4], "target_budget": 2e5, "lr": 3e-3,
                   "verify_probe": False, **search},
        "resources": {"max_concurrent_trials": 2, "cpus_per_trial": 0.5, "max_failures": 1},
    }
    path = tmp / (file or f"{name}.yaml")
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_search_writes_recommendation_runs_and_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = run_cli("run", str(config(tmp_path, "e2e")), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads(proc.stdout)
    assert rec == json.loads((out / "recommendation.json").read_text())
    domains = ["templates", "markov", "zipf_small", "zipf_large"]
    assert sorted(rec["weights"]) == sorted(domains)
    assert abs(sum(rec["weights"].values()) - 1) < 1e-9 and rec["tokens"] == 200_000
    assert rec["lr"] > 0 and set(rec["expected_loss"]["per_domain"]) == set(domains)
    runs = pd.read_parquet(out / "runs.parquet")
    keys = runs["key"].unique()
    assert len(keys) == 2 * (2 * 4 + 1)  # two probes x (base + down/up per domain), nothing else
    assert (runs.groupby("key")["tokens"].nunique() == 6).all()  # every evaluation, once each
    assert sorted(rec["evidence"]["trials"]) == sorted(keys)
    util = rec["evidence"]["utilisation"]
    assert 0 < util["utilisation"] <= 1.0 and util["trials"] == len(keys)
    report = (out / "report.md").read_text()
    for png in ("loss_curves.png", "mixtures.png", "responses.png"):
        assert f"]({png})" in report and (out / png).stat().st_size > 1000
    # the report is rebuilt from the folder alone
    (out / "report.md").unlink()
    again = run_cli("report", str(out))
    assert again.returncode == 0, again.stderr and (out / "report.md").exists()


def test_killed_search_resumes_without_rerunning_finished_trials(tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = config(tmp_path, "resume")
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen([EXE, "run", str(cfg), "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    progress = out / "progress.json"
    deadline = time.time() + 600
    while time.time() < deadline:
        if progress.exists() and json.loads(progress.read_text())["done"] >= 5:
            break
        time.sleep(1)
    else:
        proc.kill()
        pytest.fail("the search made no progress: " + (tmp_path / "first.log").read_text()[-2000:])
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started, at once
    proc.wait()
    finished_before = [r["key"] for r in Store(str(out)).records("trained")]
    assert len(finished_before) >= 5

    resumed = run_cli("run", str(cfg), "--out", str(out), "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    runs = pd.read_parquet(out / "runs.parquet")
    assert runs["key"].nunique() == 2 * (2 * 4 + 1)
    assert not runs.duplicated(["key", "tokens"]).any()  # every trial exactly once
    trained = [r["key"] for r in Store(str(out)).records("trained")]
    assert sorted(trained) == sorted(set(trained))  # no finished trial was trained again
    assert set(trained) == set(runs["key"])


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    good = yaml.safe_load(config(tmp_path, "x").read_text())
    cases = [
        ({**good, "bogus": 1}, "unknown key(s) bogus"),
        ({**good, "search": {**good["search"], "target_budget": 1e3}}, "target_budget"),
        ({**good, "search": {**good["search"], "lr_grid": [1e-3, 2e-3]}}, "lr_grid"),
        ({**good, "train": {**good["train"], "lr": 1e-3}}, "train.lr is set by the search"),
        ({**good, "corpus": {"seq_len": 64}}, "exactly one of"),
        ({**good, "search": {**good["search"], "probe_budgets": "1e5"}}, "probe_budgets"),
    ]
    for obj, message in cases:
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(obj))
        with pytest.raises(BadInput, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_config(path)
    (tmp_path / "bad.yaml").write_text("name: [unclosed")
    proc = run_cli("run", str(tmp_path / "bad.yaml"))
    assert proc.returncode == 2 and "line" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_failed_trial_is_retried_then_left_out_with_a_warning(tmp_path: Path) -> None:
    """A trial that keeps failing is retried `max_failures` times, then left out of the fits; the
    recommendation names it and says its stage rests on fewer runs than designed."""
    out = tmp_path / "out"
    cfg = config(tmp_path, "faulty", lr_grid=[1e-3, 3e-3, 1e-2, 3e-2])
    obj = yaml.safe_load(cfg.read_text())
    obj["search"].pop("lr")
    cfg.write_text(yaml.safe_dump(obj))
    bad = "lr/2.4e+04/0.003"
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1", "AUTOSCALE_RAY_TESTING_FAIL_KEYS": bad}
    proc = subprocess.run([EXE, "run", str(cfg), "--out", str(out), "--json"], capture_output=True,
                          text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads(proc.stdout)
    attempts = [r["key"] for r in Store(str(out)).records("injected_failures")]
    assert attempts == [bad, bad]  # the first try + max_failures=1 retry
    runs = pd.read_parquet(out / "runs.parquet")
    assert bad not in set(runs["key"]) and runs["key"].nunique() == 2 * 4 - 1 + 2 * 9
    assert any(bad in note and "fewer runs than designed" in note for note in rec["evidence"]["notes"])
    assert bad in proc.stderr  # the warning on the terminal names it too
