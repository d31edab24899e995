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
from autoscale_ray.tuning.layout import DONE, read_done, trained_keys
from data_fixtures import cli, ray_running  # noqa: F401  (cli: the command in this process)
from helpers import config_file as config

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).with_name("autoscale-ray"))


def test_search_writes_recommendation_runs_and_report(tmp_path: Path, cli) -> None:  # noqa: F811
    out = tmp_path / "out"
    code, stdout, stderr = cli("run", str(config(tmp_path, "e2e", ddo={"rounds": 2, "replicates": 0})), "--out", str(out),
                               "--json")
    assert code == 0, stderr[-3000:]
    rec = json.loads(stdout)
    assert rec == json.loads((out / "recommendation.json").read_text())
    domains = ["templates", "markov", "zipf_small", "zipf_large"]
    assert sorted(rec["weights"]) == sorted(domains)
    assert abs(sum(rec["weights"].values()) - 1) < 1e-9 and rec["tokens"] == 200_000
    assert rec["lr"] > 0 and set(rec["expected_loss"]["per_domain"]) == set(domains)
    runs = pd.read_parquet(out / "runs.parquet")
    keys = runs["key"].unique()
    first = [k for k in keys if "/r2/" not in k]
    assert len(first) == 2 * (2 * 4 + 1)  # two probes x (base + down/up per domain)
    # the refinement round: the same design centred at each probe's first optimum, unless it settled
    for probe in ("1.2e+04", "2.4e+04"):
        refined = sorted(k for k in keys if k.startswith(f"ddo/{probe}/r2/"))
        settled = any(f"DDO at {float(probe):.4g} tokens: no round 2" in n for n in rec["evidence"]["notes"])
        assert len(refined) == (0 if settled else 9), (probe, refined)
        if refined:
            centre = runs[runs["key"] == f"ddo/{probe}/r2/base"].iloc[-1]
            assert centre["w.markov"] != pytest.approx(0.25)  # not the base mixture again
    assert (runs.groupby("key")["tokens"].nunique() == 6).all()  # every evaluation, once each
    # the runs table holds the mixtures as the trials trained them, bit for bit (a refit of it
    # then gets the search's own answer, not one moved by a second normalisation)
    store = Store(str(out))
    for key, g in runs.groupby("key"):
        trained = read_done(store, key)[0]
        assert [g[f"w.{d}"].iloc[0] for d in domains] == [trained[f"w.{d}"] for d in domains], key
    assert sorted(rec["evidence"]["trials"]) == sorted(keys)
    util = rec["evidence"]["utilisation"]
    assert 0 < util["utilisation"] <= 1.0 and util["trials"] == len(keys)
    # the slots' idle time from the driver's view: gaps between trials, the start and end apart
    assert 0 <= util["median_gap_s"] <= util["p90_gap_s"] and util["gap_slot_seconds"] >= 0
    assert 0 < util["start_s"] < util["wall_seconds"] and 0 <= util["end_s"] < util["wall_seconds"]
    # the predictor's fits (each probe's DDO optimum, the answer), which the slots wait for
    assert 0 < util["fit_seconds"] < util["wall_seconds"] + 60
    # per trial: its span, what it trained, the rest of its span, the idle time before it
    per = util["per_trial"]
    assert sorted(per) == sorted(keys)
    assert sum(t["idle_before_s"] is None for t in per.values()) == 2  # each slot's first trial
    for t in per.values():
        assert t["trained_s"] > 0 and t["span_s"] >= t["trained_s"] - 0.05
        assert t["beyond_training_s"] == pytest.approx(max(0.0, t["span_s"] - t["trained_s"]))
    assert sum(t["idle_before_s"] or 0 for t in per.values()) == pytest.approx(util["gap_slot_seconds"])
    assert sum(t["trained_s"] for t in per.values()) == pytest.approx(util["busy_trial_seconds"])
    report = (out / "report.md").read_text()
    plots = ("loss_curves.png", "mixtures.png", "responses.png")
    for png in plots:
        assert f"]({png})" in report and (out / png).stat().st_size > 1000
    # the report states the recommendation's numbers
    assert report.startswith("# autoscale-ray report: out\n")
    assert f"idle between trials in a slot: median {util['median_gap_s']:.2f} s" in report
    assert f"; fits {util['fit_seconds']:.1f} s (the slots wait" in report
    longest = max(per, key=lambda k: (per[k]["beyond_training_s"], k))
    assert f"; the longest span beyond training: {longest}, {per[longest]['beyond_training_s']:.1f} s" in report
    assert f"Recommendation for a {float(rec['tokens']):.4g}-token run" in report
    assert f"from {len(keys)} proxy trials" in report and f"Peak LR: **{rec['lr']:.4g}**" in report
    assert all(d in report and format(rec["weights"][d], ".4g") in report for d in domains)
    # the report and its plots are rebuilt from the folder alone, the same report
    (out / "report.md").unlink()
    for png in plots:
        (out / png).unlink()
    code, stdout, stderr = cli("report", str(out))
    assert code == 0, stderr
    assert (out / "report.md").read_text() == report
    for png in plots:
        assert (out / png).stat().st_size > 1000


def test_killed_search_resumes_without_rerunning_finished_trials(tmp_path: Path, cli) -> None:  # noqa: F811
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
    # finished = recorded in done/ by the searcher; a trial can have trained (its `trained` record)
    # and been killed before its result reached the searcher: that one is trained again, rightly
    finished_before = {json.loads(p.read_text())["key"] for p in (out / DONE).iterdir()}
    assert len(finished_before) >= 5

    # the driver was SIGKILLed (a subprocess); the resume runs in this process
    code, stdout, stderr = cli("run", str(cfg), "--out", str(out), "--resume", "--json")
    assert code == 0, stderr[-3000:]
    assert json.loads(stdout) == json.loads((out / "recommendation.json").read_text())
    runs = pd.read_parquet(out / "runs.parquet")
    assert runs["key"].nunique() == 2 * (2 * 4 + 1)
    assert not runs.duplicated(["key", "tokens"]).any()  # every trial exactly once
    trained = trained_keys(Store(str(out)))
    again = {k for k in trained if trained.count(k) > 1}
    assert not again & finished_before  # no finished trial trained again
    assert len(again) <= 2  # at most the trials in flight at the kill (2 slots)
    assert set(trained) == set(runs["key"])


def test_config_errors_are_one_line(tmp_path: Path, cli) -> None:  # noqa: F811
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
    code, stdout, stderr = cli("run", str(tmp_path / "bad.yaml"))
    assert code == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1
    assert stderr.startswith("autoscale-ray run: error: ") and "bad.yaml, line" in stderr


def test_failed_trial_is_retried_then_left_out_with_a_warning(tmp_path: Path, cli, monkeypatch) -> None:  # noqa: F811
    """A trial that keeps failing is retried `max_failures` times, then left out of the fits; the
    recommendation names it and says its stage rests on fewer runs than designed."""
    out = tmp_path / "out"
    cfg = config(tmp_path, "faulty", lr_grid=[1e-3, 3e-3, 1e-2, 3e-2])
    obj = yaml.safe_load(cfg.read_text())
    obj["search"].pop("lr")
    cfg.write_text(yaml.safe_dump(obj))
    bad = "lr/2.4e+04/0.003"
    # set before the search starts Ray in this process: its workers inherit the environment
    assert not ray_running()
    monkeypatch.setenv("AUTOSCALE_RAY_TESTING_FAIL_KEYS", bad)
    code, stdout, stderr = cli("run", str(cfg), "--out", str(out), "--json")
    assert code == 0, stderr[-3000:]
    rec = json.loads(stdout)
    attempts = [r["key"] for r in Store(str(out)).records("injected_failures")]
    assert attempts == [bad, bad]  # the first try + max_failures=1 retry
    runs = pd.read_parquet(out / "runs.parquet")
    assert bad not in set(runs["key"]) and runs["key"].nunique() == 2 * 4 - 1 + 2 * 9
    assert any(bad in note and "fewer runs than designed" in note for note in rec["evidence"]["notes"])
    assert bad in stderr  # the warning on the terminal names it too
