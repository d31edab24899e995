"""`loggers:`: the config's checks, and one real search logged to TensorBoard, MLflow and W&B
(offline), read back with each tool's own client."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import logging
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pytest

from autoscale_ray.config import load_config
from autoscale_ray.errors import BadInput
from autoscale_ray.tuning import folder, layout
from autoscale_ray.tuning.trackers import (attach_results, log_batch, mlflow_target, recommendation_numbers,
                                          tune_callbacks)
from autoscale_ray.storage import Store
from data_fixtures import cli, ray_local, ray_running  # noqa: F401  (fixtures)
from helpers import corpus_cache, experiment_config, write_config

DOMAINS = ["templates", "markov", "zipf_small", "zipf_large"]


def config_file(tmp: Path, **top: Any) -> Path:
    """The small end-to-end config at one probe budget (the 2m+1 = 9 DDO trials) with 3
    evaluations per trial, and the given top-level keys (`loggers`, `mlflow`, ...)."""
    cfg = experiment_config("trk", corpus_cache(tmp), search={"probe_budgets": [1.2e4]}, train={"eval_count": 3})
    return write_config(tmp / "trk.yaml", {**cfg, **top})


# -- the config -------------------------------------------------------------------------------------
def test_loggers_default_to_tensorboard(tmp_path: Path) -> None:
    trackers = load_config(config_file(tmp_path)).trackers
    assert trackers.loggers == ("tensorboard",) and not trackers.mlflow and not trackers.wandb
    trackers = load_config(config_file(tmp_path, loggers=["mlflow", "wandb", "mlflow"],
                                       mlflow={"experiment": "mix"}, wandb={"project": "p"})).trackers
    assert trackers.loggers == ("mlflow", "wandb") and trackers.mlflow == {"experiment": "mix"}
    assert trackers.wandb == {"project": "p"}


@pytest.mark.parametrize("top, message", [
    ({"loggers": ["tensorboard", "neptune"]},
     "trk.yaml: loggers: unknown logger 'neptune'; use any of tensorboard, mlflow, wandb"),
    ({"loggers": "mlflow"}, "`loggers` must be a list of names, not 'mlflow'; write e.g. [tensorboard, mlflow]"),
    ({"mlflow": {"tracking_uri": "sqlite:///x.db"}}, "`mlflow:` is set but mlflow is not in loggers"),
    ({"loggers": ["mlflow"], "mlflow": {"uri": "x"}}, "trk.yaml: mlflow: unknown key(s) uri; allowed: experiment, tracking_uri"),
    ({"loggers": ["mlflow"], "mlflow": {"experiment": 3}}, "mlflow.experiment: experiment 3 is not a non-empty string"),
    ({"loggers": ["wandb"], "wandb": {"project": "a/b"}}, "wandb.project: project 'a/b' is not a W&B name"),
])
def test_bad_logger_settings_are_one_line(tmp_path: Path, top: dict, message: str) -> None:
    with pytest.raises(BadInput) as err:
        load_config(config_file(tmp_path, **top))
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("package", ["mlflow", "wandb"])
def test_a_missing_package_names_its_extra_before_ray_starts(tmp_path: Path, cli, monkeypatch,  # noqa: F811
                                                             package: str) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # what `import <package>` sees when it is not installed
    path = config_file(tmp_path, loggers=["tensorboard", package])
    with pytest.raises(BadInput, match=rf"logger {package} needs the `{package}` package"):
        load_config(path)
    code, stdout, stderr = cli("run", str(path), "--out", str(tmp_path / "out"))
    assert code == 2 and stdout == "" and len(stderr.strip().splitlines()) == 1
    assert stderr.strip().endswith(f"pip install 'autoscale-ray[{package}]'")
    assert not ray_running() and not (tmp_path / "out").exists()


def test_mlflow_target(tmp_path: Path, monkeypatch) -> None:
    cfg = load_config(config_file(tmp_path, loggers=["mlflow"]))
    out = tmp_path / "out"
    # MLflow itself sets MLFLOW_TRACKING_URI (to the last search's database): it is not followed
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere/mlflow.db")
    assert mlflow_target(cfg, Store(out)) == (f"sqlite:///{out}/mlruns/mlflow.db", "trk",
                                              (out / "mlruns" / "artifacts").as_uri())
    with pytest.raises(BadInput, match="is object storage, where MLflow cannot keep its database"):
        mlflow_target(cfg, Store("s3://bucket/out"))
    cfg = load_config(config_file(tmp_path, loggers=["mlflow"],
                                  mlflow={"tracking_uri": "http://mlflow.internal:5000", "experiment": "mix"}))
    assert mlflow_target(cfg, Store("s3://bucket/out")) == ("http://mlflow.internal:5000", "mix", None)


def test_online_wandb_without_a_key_is_refused(tmp_path: Path, monkeypatch) -> None:
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))              # no ~/.netrc: no `wandb login` here
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    cfg = load_config(config_file(tmp_path, loggers=["wandb"]))
    with pytest.raises(BadInput, match="W&B has no API key here; run `wandb login`, set WANDB_API_KEY, "
                                       "or WANDB_MODE=offline"):
        tune_callbacks(cfg, Store(tmp_path / "out"))


def test_a_trials_wandb_actor_waits_for_the_writer_before_it_returns(tmp_path: Path, monkeypatch) -> None:
    """Ray kills a trial's logging actor (and W&B's writer, its child process) as soon as `run`
    returns; W&B writes the run file when torn down, so `run` must tear W&B down after finishing
    the run, or the file can hold nothing (a full-suite run once left a trial's at 7 bytes)."""
    from ray.air.integrations.wandb import _QueueItem

    from autoscale_ray.tuning.trackers import _wandb_trials_class

    calls: list[str] = []

    class Queue:
        items = [(_QueueItem.RESULT, {"loss": 1.0, "training_iteration": 1}), (_QueueItem.END, None)]

        def get(self):
            return self.items.pop(0)

    class FakeWandb:
        class config:  # noqa: N801  (wandb.config's interface)
            @staticmethod
            def update(*args, **kwargs):
                calls.append("config")

        def init(self, **kwargs):
            calls.append("init")
            return type("Run", (), {"config": type("Config", (), {})()})()

        def log(self, values, step=None):
            calls.append(f"log {values['loss']}")

        def finish(self):
            calls.append("finish")

        def teardown(self):
            calls.append("teardown")

    monkeypatch.chdir(tmp_path)  # the actor changes into the trial's folder
    actor = _wandb_trials_class()._logger_actor_cls(logdir=str(tmp_path), queue=Queue(), exclude=[],
                                                    to_config=[], name="ddo/1.2e+04/base")
    actor._wandb = FakeWandb()
    actor.run()
    assert calls == ["init", "config", "log 1.0", "finish", "teardown"]


def test_recommendation_numbers() -> None:
    rec = {"weights": {"a": 0.25, "b": 0.75}, "lr": 1e-3, "tokens": 2e5,
           "expected_loss": {"per_domain": {"a": 2.5, "b": float("nan")}}}
    assert recommendation_numbers(rec) == {"w.a": 0.25, "w.b": 0.75, "lr": 1e-3, "tokens": 2e5,
                                           "expected_loss.a": 2.5}


def test_mlflow_batches_stay_within_its_limits(tmp_path: Path) -> None:
    """A corpus of many domains reports more numbers than one MLflow log_batch call takes."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    run = client.create_run(client.create_experiment("x", artifact_location=(tmp_path / "a").as_uri()))
    log_batch(client, run.info.run_id, metrics=[Metric(f"loss.d{i}", float(i), 0, 1) for i in range(1200)],
              params=[Param(f"weights/d{i}", str(i)) for i in range(150)])
    data = client.get_run(run.info.run_id).data
    assert len(data.metrics) == 1200 and data.metrics["loss.d1199"] == 1199.0
    assert len(data.params) == 150 and data.params["weights/d149"] == "149"


def test_a_tracker_that_fails_after_the_search_is_a_warning(tmp_path: Path, caplog, monkeypatch) -> None:
    """The answer is written before it is attached: an MLflow that cannot be written then costs a
    warning, not the search; before the search it is a one-line error."""
    (tmp_path / "not-a-folder").write_text("")
    cfg = load_config(config_file(tmp_path, loggers=["mlflow"],
                                  mlflow={"tracking_uri": f"sqlite:///{tmp_path}/not-a-folder/mlflow.db"}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "recommendation.json").write_text("{}")
    with pytest.raises(BadInput, match="mlflow.tracking_uri: cannot create the MLflow database's folder"):
        tune_callbacks(cfg, Store(out))
    monkeypatch.setattr(logging.getLogger("autoscale_ray"), "propagate", True)  # the CLI turns it off
    with caplog.at_level(logging.WARNING, logger="autoscale_ray"):
        attach_results(cfg, Store(out), {"weights": {"a": 1.0}, "lr": 1e-3, "tokens": 1e6})
    assert "the recommendation was not attached to mlflow (BadInput: " in caplog.text
    assert caplog.text.rstrip().endswith(f"it is in {out}")


def test_restart_clears_the_trackers_folders(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for name in ("mlruns/artifacts", "wandb/offline-run-1", "elsewhere"):
        (out / name).mkdir(parents=True)
    (out / "autoscale-ray-search.json").write_text("{}")
    store = Store(out)
    gone = folder.clear(store, store.child("tune"), {"experiments": []}, "trk")
    assert {"mlruns", "wandb"} <= set(gone) and sorted(p.name for p in out.iterdir()) == ["elsewhere"]


# -- one search, logged to all three ------------------------------------------------------------------
@dataclass
class Searched:
    out: Path
    stdout: str
    keys: list[str]                          # the trials, as runs.parquet names them
    reported: dict[str, list[dict[str, Any]]]  # key -> the results its trial gave Tune, in order
    rec: dict[str, Any]

    def values(self, key: str, column: str) -> list[float]:
        """`column` of each result the trial reported (one per evaluation)."""
        return [row[column] for row in self.reported[key]]


@pytest.fixture(scope="module")
def tracker_env(tmp_path_factory) -> Iterator[Path]:
    """W&B offline, its staging and config folders in the test's folder; set before Ray starts,
    so the trials' logging actors have them too."""
    tmp = tmp_path_factory.mktemp("trackers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        for name in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
            mp.setenv(name, str(tmp / name.lower()))
        mp.setenv("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        yield tmp


@pytest.fixture(scope="module")
def searched(tracker_env: Path, ray_local: None) -> Searched:  # noqa: F811
    """`autoscale-ray run --json` in this process (as the `cli` fixture does), on the module's Ray."""
    from autoscale_ray.cli import main

    out = tracker_env / "out"
    path = config_file(tracker_env, loggers=["tensorboard", "mlflow", "wandb"])
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["run", str(path), "--out", str(out), "--json"])
    assert code == 0
    keys = sorted(pd.read_parquet(out / "runs.parquet")["key"].unique())
    # done/<key>.json: every result the trial reported to Tune, as the callbacks received it
    reported = {k: sorted(layout.read_done(Store(out), k), key=lambda r: r["training_iteration"]) for k in keys}
    assert all(len(rows) == 3 for rows in reported.values())
    return Searched(out, stdout.getvalue(), keys, reported, json.loads((out / "recommendation.json").read_text()))


@pytest.mark.slow
def test_the_answer_on_stdout_is_unchanged(searched: Searched) -> None:
    assert json.loads(searched.stdout) == searched.rec  # W&B's messages stayed off stdout
    assert len(searched.keys) == 2 * 4 + 1


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of the event files in `folder` (TFRecord framing: length, its CRC,
    the Event proto, its CRC), read with tensorboardX's own protos."""
    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            for v in event.summary.value:
                scalars.setdefault(v.tag, []).append((event.step, v.simple_value))
    return scalars


@pytest.mark.slow
def test_tensorboard_event_files_per_trial(searched: Searched) -> None:
    trial_dirs = [p for p in (searched.out / "tune" / "trk").iterdir() if p.is_dir()]
    assert len(trial_dirs) == len(searched.keys)
    for d in trial_dirs:  # each trial's losses, as it reported them (the driver has no torch)
        key = json.loads((d / "params.json").read_text())["key"]
        scalars = tensorboard_scalars(d)
        assert [v for _, v in scalars["ray/tune/loss"]] == pytest.approx(searched.values(key, "loss"), rel=1e-6)
        assert [s for s, _ in scalars["ray/tune/loss"]] == [1, 2, 3]


def test_the_tensorboard_logger_keeps_torch_out_of_the_driver(tmp_path: Path) -> None:
    """tensorboardX imports torch if it can; the driver's logger is built without it (1-2 s of a
    search's start, ~180 MB of its driver), writes Tune's numbers all the same, and torch imports normally
    afterwards."""
    code = ("import sys, numpy as np; from autoscale_ray.tuning.trackers import tensorboard_logger; "
            "cb = tensorboard_logger(); "
            "print(type(cb).__name__, 'torch' in sys.modules, 'tensorboardX' in sys.modules); "
            "from tensorboardX import SummaryWriter; w = SummaryWriter(sys.argv[1]); "
            "w.add_scalar('loss', 2.5, 1); w.add_scalar('loss', np.float32(1.25), 2); w.close(); "
            "import torch, tensorboardX.writer as tw; print(torch.ones(1).item(), tw.numpy_compatible.__module__)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.split() == ["TBXLoggerCallback", "False", "True", "1.0", "numpy"]
    assert tensorboard_scalars(tmp_path)["loss"] == [(1, 2.5), (2, 1.25)]
    code = ("import sys, torch; from autoscale_ray.tuning.trackers import tensorboard_logger; tensorboard_logger(); "
            "import tensorboardX.writer as w; print(w.numpy_compatible is torch.Tensor)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "True"  # torch already there: tensorboardX takes its tensors


@pytest.mark.slow
def test_mlflow_has_a_run_per_trial_with_its_losses_and_throughput(searched: Searched) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{searched.out}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("trk")
    trials = client.search_runs([experiment.experiment_id], "tags.`autoscale_ray.kind` = 'trial'",
                                max_results=100)
    assert sorted(r.info.run_name for r in trials) == searched.keys
    for run in trials:
        key = run.info.run_name
        assert run.info.status == "FINISHED" and run.data.params["key"] == key
        assert float(run.data.params["lr"]) == pytest.approx(3e-3) and run.data.params["stage"] == "ddo"
        for column in [f"loss.{d}" for d in DOMAINS] + ["loss", "tokens_per_s", "mfu", "tokens"]:
            history = sorted(client.get_metric_history(run.info.run_id, column), key=lambda m: m.step)
            assert [m.step for m in history] == [1, 2, 3], (key, column)
            assert [m.value for m in history] == pytest.approx(searched.values(key, column), nan_ok=True), \
                (key, column)
        assert run.data.metrics["tokens_per_s"] > 0


@pytest.mark.slow
def test_mlflow_recommendation_run_holds_the_answer_and_the_files(searched: Searched, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{searched.out}/mlruns/mlflow.db")
    experiment = client.get_experiment_by_name("trk")
    assert experiment.artifact_location == (searched.out / "mlruns" / "artifacts").as_uri()
    (run,) = client.search_runs([experiment.experiment_id], "tags.`autoscale_ray.kind` = 'recommendation'")
    assert run.info.run_name == "trk-recommendation" and run.info.status == "FINISHED"
    assert run.data.metrics == pytest.approx(recommendation_numbers(searched.rec))
    assert {f"w.{d}" for d in DOMAINS} | {"lr", "tokens"} <= set(run.data.metrics)
    assert run.data.metrics["lr"] == pytest.approx(searched.rec["lr"])
    listed = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"recommendation.json", "report.md", "mixtures.png"} <= listed
    for name in ("recommendation.json", "report.md"):
        local = client.download_artifacts(run.info.run_id, name, str(tmp_path))
        assert Path(local).read_bytes() == (searched.out / name).read_bytes()


def wandb_records(path: Path) -> Iterator[Any]:
    """The records of a `.wandb` file, as wandb.proto Records. The file is W&B's transaction log in
    LevelDB's log format (a 7-byte header, then 32 KiB blocks of chunks, each with a CRC-32, its
    length and whether it is a whole record or its first/middle/last part); wandb no longer ships
    a Python reader for it, so the framing is read here and every record checked against its CRC."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B transaction log"
    block, pos, record = 32768, 7, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a chunk header is padding
            pos += block - pos % block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0:  # zero padding to the block's end
            pos += -pos % block
            continue
        assert zlib.crc32(bytes([kind]) + chunk) == crc, f"corrupt chunk in {path}"
        record += chunk
        if kind in (1, 4):  # a whole record, or the last part of one
            parsed = wandb_internal_pb2.Record()
            parsed.ParseFromString(record)
            yield parsed
            record = b""


@dataclass
class WandbRun:
    run: Any                      # the run record: id, job_type, display name, project, config
    config: dict[str, Any]
    history: list[dict[str, Any]]  # one dict per wandb.log call
    artifacts: list[Any]


def wandb_runs(folder_: Path) -> list[WandbRun]:
    found = []
    for path in sorted(folder_.glob("offline-run-*/run-*.wandb")):
        records = list(wandb_records(path))
        kinds = [r.WhichOneof("record_type") for r in records]
        run = next(r.run for r, k in zip(records, kinds) if k == "run")
        history = [{"/".join(item.nested_key) or item.key: json.loads(item.value_json) for item in r.history.item}
                   for r, k in zip(records, kinds) if k == "history"]
        found.append(WandbRun(run, {u.key: json.loads(u.value_json) for u in run.config.update}, history,
                              [r.artifact for r, k in zip(records, kinds) if k == "artifact"]))
    return found


@pytest.mark.slow
def test_wandb_offline_runs_hold_each_trials_metrics(searched: Searched) -> None:
    trials = [r for r in wandb_runs(searched.out / "wandb") if r.run.job_type == "trial"]
    assert sorted(r.run.display_name for r in trials) == searched.keys
    for trial in trials:
        key = trial.run.display_name
        assert trial.run.project == "trk" and trial.run.run_group == "trk" and trial.config["key"] == key
        assert list(trial.run.tags) == ["ddo"]
        for column in [f"loss.{d}" for d in DOMAINS] + ["loss", "tokens_per_s", "mfu"]:
            logged = [h[column] for h in sorted(trial.history, key=lambda h: h["_step"])]
            assert logged == pytest.approx(searched.values(key, column), nan_ok=True), (key, column)


@pytest.mark.slow
def test_wandb_recommendation_run_has_the_files_as_an_artifact(searched: Searched) -> None:
    (run,) = [r for r in wandb_runs(searched.out / "wandb") if r.run.job_type == "recommendation"]
    assert run.run.display_name == "trk-recommendation" and run.run.project == "trk"
    assert run.config["weights"] == pytest.approx(searched.rec["weights"])
    assert run.config["lr"] == pytest.approx(searched.rec["lr"])
    (artifact,) = run.artifacts
    assert (artifact.type, artifact.name) == ("recommendation", "trk-recommendation")
    digests = {e.path: e.digest for e in artifact.manifest.contents}
    for name in ("recommendation.json", "report.md"):  # W&B's digest: the base64 MD5 of the bytes
        assert digests[name] == base64.b64encode(hashlib.md5((searched.out / name).read_bytes()).digest()).decode()


@pytest.mark.slow
def test_leaving_tensorboard_out_writes_no_event_files(tracker_env: Path, ray_local: None,  # noqa: F811
                                                       tmp_path: Path) -> None:
    """A Tune experiment with `loggers: [mlflow]` alone (on the module's Ray): MLflow gets the
    trial's results, and Tune's default TensorBoard logger is not added behind our back."""
    from mlflow import MlflowClient
    from ray import tune

    cfg = load_config(config_file(tmp_path, loggers=["mlflow"]))
    store = Store(tmp_path / "out")

    def trainable(config: dict) -> None:
        for i in range(2):
            tune.report({"loss.a": 3.0 - i, "tokens_per_s": 100.0 * (i + 1), "status": "running"})

    tuner = tune.Tuner(trainable, param_space={"key": "probe/base", "stage": "ddo", "contract": {"x": 1}},
                       run_config=tune.RunConfig(name="notb", storage_path=str(tmp_path / "tune"),
                                                 verbose=0, callbacks=tune_callbacks(cfg, store)))
    assert not tuner.fit().errors
    assert not list((tmp_path / "tune").rglob("events.out.tfevents.*"))
    assert list((tmp_path / "tune").rglob("result.json"))  # Tune's own JSON/CSV loggers still run
    uri, experiment, _ = mlflow_target(cfg, store)
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.run_name == "probe/base" and run.data.params == {"key": "probe/base", "stage": "ddo"}
    history = client.get_metric_history(run.info.run_id, "loss.a")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(1, 3.0), (2, 2.0)]
    assert "status" not in run.data.metrics
