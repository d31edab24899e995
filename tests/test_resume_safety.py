"""Interrupting, resuming and sharing a search folder, end to end on real Ray (findings 2-5 of the
safety issue): SIGINT after k finished trials exits 130 with the resume hint and no result files;
`--resume` finishes without training a finished trial again and without reading any pickle from the
output (a planted one would run code); a changed config is refused on resume; a second run in a
busy folder is refused; `--restart` removes only what the search wrote."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from autoscale_ray.storage import Store
from data_fixtures import cli  # noqa: F401  (a fixture: the command in this process)
from helpers import corpus_cache, experiment_config, write_config

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).with_name("autoscale-ray"))
ENV = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
PLANNED = 2 * (2 * 4 + 1)


def config(tmp: Path, name: str = "safe", file: str | None = None, **search) -> Path:
    """The tests' config with gpt2-tiny proxies: the SIGINT test needs the search still running
    after 3 finished trials and two more commands (gpt2-nano's search can be over by then)."""
    cfg = experiment_config(name, corpus_cache(tmp), train={"model": "gpt2-tiny"}, search=search)
    return write_config(tmp / (file or f"{name}.yaml"), cfg)


def run_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


class Payload:
    """Unpickling this writes a file: proof that code from the output store ran."""

    def __init__(self, proof: Path) -> None:
        self.proof = str(proof)

    def __reduce__(self):
        return (os.system, (f"touch {self.proof}",))


def plant_pickles(tune_folder: Path, proof: Path) -> list[Path]:
    tune_folder.mkdir(parents=True, exist_ok=True)
    planted = []
    for name in ("tuner.pkl", "searcher-state-2026-01-01_00-00-00.pkl", "trainable.pkl"):
        path = tune_folder / name
        path.write_bytes(pickle.dumps(Payload(proof)))
        planted.append(path)
    return planted


def wait_for_done(out: Path, k: int, proc: subprocess.Popen, log: Path, limit: float = 600) -> None:
    deadline = time.time() + limit
    while time.time() < deadline:
        if len(list((out / "done").glob("*.json"))) >= k:
            return
        if proc.poll() is not None:
            pytest.fail("the search ended early: " + log.read_text()[-3000:])
        time.sleep(0.5)
    proc.kill()
    pytest.fail("the search made no progress: " + log.read_text()[-3000:])


def test_sigint_resume_changed_config_busy_folder_and_crafted_state(tmp_path: Path, cli) -> None:  # noqa: F811
    """The first search runs in a subprocess (it gets SIGINT; a second process contends for its
    lock); the other commands run in this process."""
    out, cfg = tmp_path / "out", config(tmp_path)
    canary = tmp_path / "victim"
    canary.mkdir()
    (canary / "keep.txt").write_text("precious")
    log = tmp_path / "first.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([EXE, "run", str(cfg), "--out", str(out)], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=err)
    wait_for_done(out, 3, proc, log)

    # a second run into the busy folder: refused by the marker, and with --restart by the lock
    code, _, stderr = cli("run", str(cfg), "--out", str(out))
    assert code == 2 and "holds a search (running)" in stderr, stderr[-2000:]
    assert len(stderr.strip().splitlines()) == 1
    # (a second process: with --restart, or --resume, it gets as far as the lock, which it only
    # looks at: refused in one line before it starts Ray or packs a corpus)
    for flag in ("--restart", "--resume"):
        busy = run_cli("run", str(cfg), "--out", str(out), flag)
        assert busy.returncode == 2 and "another autoscale-ray run is using this folder" in busy.stderr, \
            busy.stderr[-2000:]
        assert len(busy.stderr.strip().splitlines()) == 1 and "Ray:" not in busy.stderr

    proc.send_signal(signal.SIGINT)  # Ctrl-C
    assert proc.wait(timeout=300) == 130, log.read_text()[-3000:]
    text = log.read_text()
    last = text.strip().splitlines()[-1]
    assert "interrupted" in last and "--resume" in last and str(out) in last, text[-3000:]
    assert "internal error" not in text and "\x1b[" not in last and "Tuner.restore" not in text
    for name in ("runs.parquet", "recommendation.json", "report.md"):
        assert not (out / name).exists(), name  # nothing that looks like a result
    marker = json.loads((out / "autoscale-ray-search.json").read_text())
    assert marker["state"] == "interrupted" and marker["experiments"] == ["safe"]
    finished = {json.loads(p.read_text())["key"] for p in (out / "done").glob("*.json")}
    assert len(finished) >= 3
    for p in (out / "done").glob("*.json"):  # every record is a whole trial, not one cut short
        assert len(json.loads(p.read_text())["rows"]) == 6

    # --resume with another target and LR: refused, naming what differs
    changed = config(tmp_path, file="changed.yaml", target_budget=4e5, lr=1e-3)
    code, _, refused = cli("run", str(changed), "--out", str(out), "--resume")
    assert code == 2, refused[-2000:]
    assert "config differs" in refused and "search.target_budget: 200000 -> 400000" in refused
    assert "--restart" in refused and len(refused.strip().splitlines()) == 1

    # a crafted Tune state in the output cannot run code on --resume
    proof = tmp_path / "PWNED"
    planted = plant_pickles(out / "tune" / "safe", proof)
    code, resumed, stderr = cli("run", str(cfg), "--out", str(out), "--resume", "--json")
    assert code == 0, stderr[-3000:]
    assert not proof.exists(), "a pickle from the output store was loaded"
    assert all(p.exists() for p in planted)  # left as they were, never read
    runs = pd.read_parquet(out / "runs.parquet")
    assert runs["key"].nunique() == PLANNED and not runs.duplicated(["key", "tokens"]).any()
    trained = [r["key"] for r in Store(str(out)).records("trained")]
    assert sorted(trained) == sorted(set(trained)), "a finished trial was trained again"
    assert finished <= set(trained) and set(trained) == set(runs["key"])
    marker = json.loads((out / "autoscale-ray-search.json").read_text())
    assert marker["state"] == "complete" and marker["experiments"] == ["safe", "safe-resume1"]
    rec = json.loads(resumed)
    assert rec == json.loads((out / "recommendation.json").read_text())

    # a finished search is not overwritten by accident; --restart removes only what it wrote
    (out / "my-notes.txt").write_text("mine")
    code, _, again = cli("run", str(cfg), "--out", str(out))
    assert code == 2 and "holds a search (complete)" in again
    assert (canary / "keep.txt").read_text() == "precious"


def test_restart_removes_only_what_the_search_wrote(tmp_path: Path) -> None:
    """`clear` on a folder with the marker: the owned names go, a user's file and a Tune folder
    that does not carry this output's owner file stay."""
    from autoscale_ray.config import load_config
    from autoscale_ray.tuning import folder as folder

    cfg = load_config(config(tmp_path))
    store = Store(tmp_path / "out")
    tune = store.child("tune")
    experiment = folder.begin(store, tune, cfg, None)
    assert experiment == "safe" and tune.exists("safe/.autoscale-ray-owner")
    store.write_json("done/ddo_1e+05_base.json", {"rows": []})
    store.write_json("recommendation.json", {})
    store.write_text("notes.txt", "mine")
    tune.write_text("safe/experiment_state.json", "{}")
    tune.write_text("safe-resume1/experiment_state.json", "{}")  # listed nowhere, no owner file
    marker = json.loads(store.read_text(folder.MARKER))
    marker["experiments"].append("safe-resume1")
    gone = folder.clear(store, tune, marker, "safe")
    assert not store.exists("done") and not store.exists("recommendation.json") and not tune.exists("safe")
    assert store.exists("notes.txt") and tune.exists("safe-resume1")
    assert not store.exists(folder.MARKER) and any(g.endswith("tune/safe") for g in gone)


def test_a_tune_folder_of_another_search_is_never_taken_over(tmp_path: Path) -> None:
    from autoscale_ray.config import load_config
    from autoscale_ray.tuning import folder as folder
    from autoscale_ray.errors import BadInput

    cfg = load_config(config(tmp_path))
    shared = Store(tmp_path / "shared-tune")
    shared.write_text("safe/experiment_state.json", "{}")  # someone else's experiment
    with pytest.raises(BadInput, match="did not start"):
        folder.begin(Store(tmp_path / "out"), shared, cfg, None)
    assert shared.exists("safe/experiment_state.json")


def test_state_signed_by_another_process_is_refused(tmp_path: Path) -> None:
    """searchers/persist.py loads only what this process saved (Tune's searcher checkpoint)."""
    from autoscale_ray.errors import BadInput
    from autoscale_ray.searchers.baselines import RandomMixtureSearcher

    proof = tmp_path / "PWNED"
    crafted = tmp_path / "searcher-state.pkl"
    crafted.write_bytes(pickle.dumps(Payload(proof)))
    searcher = RandomMixtureSearcher(("a", "b"), n_trials=2, budget=1000, lr=1e-3)
    with pytest.raises(BadInput, match="not written by this process"):
        searcher.restore(str(crafted))
    assert not proof.exists()
    searcher.save(str(tmp_path / "own.pkl"))
    searcher.restore(str(tmp_path / "own.pkl"))  # its own state loads


def test_lock_refuses_a_second_holder(tmp_path: Path) -> None:
    from autoscale_ray.tuning import folder as folder
    from autoscale_ray.tuning.layout import LOCK
    from autoscale_ray.errors import BadInput

    store = Store(tmp_path / "out")
    folder.check_unlocked(store)  # a new folder: free, and looking writes nothing
    assert not (tmp_path / "out").exists()
    with folder.SearchLock(store):
        held = (tmp_path / "out" / LOCK).read_bytes()
        for call in ("SearchLock(Store({path!r})).__enter__()", "check_unlocked(Store({path!r}))"):
            code = ("import sys; from autoscale_ray.storage import Store; from autoscale_ray.tuning import folder as f\n"
                    f"try:\n  f.{call.format(path=str(store.path))}\nexcept Exception as e:\n"
                    "  print(e); sys.exit(3)\n")
            other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
            assert other.returncode == 3 and "another autoscale-ray run" in other.stdout, (call, other.stderr)
        assert (tmp_path / "out" / LOCK).read_bytes() == held  # looking left the holder's record
    folder.check_unlocked(store)  # released: free again, and still not taken
    with folder.SearchLock(store):
        pass
    with pytest.raises(BadInput, match="exclude each other"):  # an error inside the block...
        with folder.SearchLock(store):
            folder.check_resumable(None, None, store, resume=True, restart=True)  # type: ignore[arg-type]
    with folder.SearchLock(store):  # ...releases the lock: it can be taken again
        pass


def test_first_signal_asks_tune_to_stop_second_aborts() -> None:
    """autoscale_ray.interrupt: while Tune runs, SIGINT/SIGTERM go to Tune's own graceful stop
    (its SIGUSR1 handler) once and set STOPPING; a second one, or one outside Tune, aborts."""
    from autoscale_ray import interrupt

    calls = []
    before = signal.getsignal(signal.SIGINT)  # an earlier Tune run in this process may have left its own
    old_usr1 = signal.signal(signal.SIGUSR1, lambda s, f: calls.append(s))
    try:
        with interrupt.graceful_stop() as stopping:
            assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1"
            interrupt.TUNE_RUNNING.set()
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            assert stopping.is_set() and calls == [signal.SIGTERM]
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)
        with interrupt.graceful_stop() as stopping:  # Tune not running: stop where we are
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.1)
            assert stopping.is_set() and calls == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGUSR1, old_usr1)
    assert signal.getsignal(signal.SIGINT) is before  # restored
    assert "TUNE_DISABLE_SIGINT_HANDLER" not in os.environ
