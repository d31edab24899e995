"""Experiment trackers: Tune's logger callbacks for the trials, and the search's answer attached to
one more tracker run once it is written.

`loggers:` in the config (autoscale_ray.config.TrackerSpec) picks any of:

- tensorboard: Tune's TBXLoggerCallback, event files in each trial's folder under <out>/tune;
- mlflow: Ray's MLflowLoggerCallback, one MLflow run per trial (named by the trial's key, its
  suggestion as params, every numeric result as metrics at step = training_iteration) in the
  experiment `mlflow.experiment` (default: the search's name) at `mlflow.tracking_uri` (default
  sqlite:///<out>/mlruns/mlflow.db, with artifacts in <out>/mlruns/artifacts);
- wandb: Ray's WandbLoggerCallback, one W&B run per trial (named by its key, job_type "trial",
  grouped by the Tune experiment) in project `wandb.project` (default: the search's name), its files in <out>/wandb;
  WANDB_MODE=offline keeps them there (`wandb sync <out>/wandb/offline-run-*` uploads them later).

The trial results arrive as the trial reports them (autoscale_ray/train/loop.py): `loss.<domain>`,
`loss`, `tokens_per_s`, `mfu` (NaN where the device's peak is unknown), `train_loss`, `tokens`,
`w.<domain>`, ... After the search, recommendation.json, report.md and its plots go to one run per
tracker: MLflow `<name>-recommendation` (weights, LR, target tokens and expected losses as metrics,
the files as artifacts); W&B job_type "recommendation" (the same numbers in its summary, the files
as one artifact of type "recommendation").
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import numbers
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ray.tune import Callback
from ray.tune.logger import TBXLoggerCallback

from autoscale_ray.config import ExperimentConfig
from autoscale_ray.errors import BadInput, short
from autoscale_ray.tuning import layout
from autoscale_ray.storage import Store

log = logging.getLogger("autoscale_ray")

MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "artifacts"
KIND_TAG = "autoscale_ray.kind"   # "trial" | "recommendation" on every MLflow run this tool starts
NOT_PARAMS = ("contract",)        # the same for every trial (paths, train settings): not a param


class NoTensorBoard(TBXLoggerCallback):
    """Stands in for Tune's TensorBoard logger when `loggers` leaves tensorboard out: Tune adds a
    TBXLoggerCallback to every experiment that has none, so this one takes its place and writes
    no event files."""

    _SAVED_FILE_TEMPLATES: list[str] = []

    def __init__(self) -> None:  # no SummaryWriter: nothing is written
        self._trial_writer, self._trial_result = {}, {}

    def log_trial_start(self, trial: Any) -> None:
        return None

    def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
        return None

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        return None


def tensorboard_logger() -> TBXLoggerCallback:
    """Tune's TensorBoard logger, without torch in the driver: tensorboardX imports torch when it
    can, only to take torch tensors as values (its writer's `numpy_compatible`); Tune logs the
    trials' numbers, and torch's import was 1-2 s of a search's start and ~180 MB of the driver.
    While tensorboardX loads, `import torch` fails as if torch were not installed; it is left alone
    where torch or tensorboardX is already loaded (a notebook, the in-process API)."""
    if "torch" in sys.modules or "tensorboardX" in sys.modules:
        return TBXLoggerCallback()
    sys.modules["torch"] = None  # type: ignore[assignment]  # `import torch` raises ImportError
    try:
        return TBXLoggerCallback()
    finally:
        del sys.modules["torch"]


def tune_callbacks(cfg: ExperimentConfig, store: Store) -> list[Callback]:
    """The logger callbacks of the config's `loggers` for `tune.RunConfig(callbacks=...)`. The
    MLflow experiment is created here and W&B's credentials checked, so a tracker that cannot be
    written is one BadInput line before any trial runs."""
    loggers = cfg.trackers.loggers
    callbacks: list[Callback] = [tensorboard_logger() if "tensorboard" in loggers else NoTensorBoard()]
    if "mlflow" in loggers:
        uri, experiment = mlflow_experiment(cfg, store)
        callbacks.append(_mlflow_trials_class()(uri, experiment_name=experiment, tags={KIND_TAG: "trial"}))
    if "wandb" in loggers:
        _check_wandb_credentials(cfg)
        callbacks.append(_wandb_trials_class()(**wandb_init_kwargs(cfg, store), job_type="trial"))
    return callbacks


# -- MLflow ----------------------------------------------------------------------------------------
def mlflow_target(cfg: ExperimentConfig, store: Store) -> tuple[str, str, str | None]:
    """(tracking URI, experiment name, artifact location for a new experiment, None: the server's)."""
    settings = cfg.trackers.mlflow
    experiment = settings.get("experiment", cfg.name)
    # not MLFLOW_TRACKING_URI: mlflow.set_tracking_uri (which Ray's callback calls) sets it, so a
    # second search in the same process would log into the first one's database
    uri = settings.get("tracking_uri")
    if uri:
        return uri, experiment, None
    if not store.local:
        raise BadInput(f"the output {store.location} is object storage, where MLflow cannot keep its "
                       "database", f"{cfg.source}: mlflow.tracking_uri",
                       "set mlflow: {tracking_uri: <server URL or sqlite:///path>}")
    # MLflow 3 refuses a plain-folder store: a SQLite database, with the artifacts beside it (an
    # experiment created without a location would put them in the current directory)
    folder = Path(store.path) / layout.MLRUNS
    return f"sqlite:///{folder / MLFLOW_DB}", experiment, (folder / MLFLOW_ARTIFACTS).as_uri()


def mlflow_experiment(cfg: ExperimentConfig, store: Store) -> tuple[str, str]:
    """The search's MLflow experiment, created if new: (tracking URI, experiment name)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri, name, artifacts = mlflow_target(cfg, store)
    if uri.startswith("sqlite:///"):  # SQLite creates the database file, not its folder
        folder = Path(uri.removeprefix("sqlite:///")).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInput(f"cannot create the MLflow database's folder {folder} ({exc.strerror})",
                           f"{cfg.source}: mlflow.tracking_uri", "give a writable sqlite:///path") from None
    where = f"{cfg.source}: mlflow.experiment"
    try:
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(name)
        if found is None:
            client.create_experiment(name, artifact_location=artifacts)
        elif found.lifecycle_stage == "deleted":
            raise BadInput(f"the MLflow experiment `{name}` at {uri} was deleted", where,
                           f"restore it (mlflow experiments restore --experiment-id {found.experiment_id}) "
                           "or give mlflow.experiment another name")
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"MLflow at {uri} cannot be used ({first[:200]})", f"{cfg.source}: mlflow.tracking_uri",
                       "give a sqlite:///path or the URL of a tracking server") from None
    return uri, name


@functools.cache
def _mlflow_trials_class() -> type:
    """`MLflowTrials`, defined on first use: importing Ray's MLflow integration imports mlflow
    (seconds), which a search without the mlflow logger should not pay."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
    from ray.air.constants import TRAINING_ITERATION
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.tune.result import TIMESTEPS_TOTAL
    from ray.tune.utils import flatten_dict

    class MLflowTrials(MLflowLoggerCallback):
        """Ray's MLflow logger, with each trial's run named by its key and its params the
        suggestion only; each result is one `log_batch` (Ray logs metric by metric, each call a
        database transaction plus a lookup of the run: about half a second per result of ~60
        numbers, on the Tune driver's loop)."""

        def setup(self, *args: Any, **kwargs: Any) -> None:
            super().setup(*args, **kwargs)
            self._client = MlflowClient(tracking_uri=self.tracking_uri)

        def log_trial_start(self, trial: Any) -> None:
            config = {k: v for k, v in trial.config.items() if k not in NOT_PARAMS}
            if trial not in self._trial_runs:  # a retried trial logs to its run again
                tags = {**self.tags, "trial_name": str(trial), "key": _key(trial),
                        "stage": str(config.get("stage", ""))}
                run = self.mlflow_util.start_run(tags=tags, run_name=_key(trial))
                self._trial_runs[trial] = run.info.run_id
            params = [Param(k, str(v)) for k, v in flatten_dict(config).items()]
            log_batch(self._client, self._trial_runs[trial], params=params)

        def log_trial_result(self, iteration: int, trial: Any, result: dict) -> None:
            step = int(result.get(TIMESTEPS_TOTAL) or result[TRAINING_ITERATION])
            now = int(time.time() * 1000)
            flat = flatten_dict({k: v for k, v in result.items() if k != "config"})
            metrics = [Metric(k, float(v), now, step) for k, v in flat.items() if _is_number(v)]
            log_batch(self._client, self._trial_runs[trial], metrics=metrics)

    return MLflowTrials


@functools.cache
def _wandb_trials_class() -> type:
    """`WandbTrials`, defined on first use (Ray's W&B integration imports wandb)."""
    from ray.air.integrations.wandb import WandbLoggerCallback, _WandbLoggingActor

    class FlushedRun(_WandbLoggingActor):
        """Ray's logging actor, which also waits for W&B's writer after `wandb.finish()`: W&B
        writes a run's file from a child process when it is torn down, and Ray kills the actor
        (and that child) as soon as `run` returns, so without the wait a trial's run file could
        be left holding nothing (seen for the last trial of a search: a 7-byte run file)."""

        def run(self) -> None:
            super().run()
            self._wandb.teardown()

    class WandbTrials(WandbLoggerCallback):
        """Ray's W&B logger (one run per trial, opened in a Ray actor), each run named by the
        trial's key and tagged with its stage instead of Tune's `search_trial_<id>`."""

        _logger_actor_cls = FlushedRun

        def _start_logging_actor(self, trial: Any, exclude_results: list[str], **init: Any) -> None:
            init.update(name=_key(trial), tags=[str(trial.config.get("stage", "trial"))])
            super()._start_logging_actor(trial, exclude_results, **init)

    return WandbTrials


def _key(trial: Any) -> str:
    """The trial's search key (`ddo/1.2e+04/base`): what runs.parquet and the report call it."""
    return str(trial.config.get("key", trial))


def log_batch(client: Any, run_id: str, metrics: Sequence[Any] = (), params: Sequence[Any] = ()) -> None:
    """`client.log_batch` in pieces within MLflow's limits (1000 metrics, 100 params a call): a
    corpus of many domains reports more than that."""
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=list(metrics[i:i + 1000]))
    for i in range(0, len(params), 100):
        client.log_batch(run_id, params=list(params[i:i + 100]))


def _is_number(value: Any) -> bool:
    """A metric value: a real number (NaN too: MLflow keeps it), not a bool (numpy's bool is no
    numbers.Real) or a string."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _attach_mlflow(cfg: ExperimentConfig, store: Store, rec: Mapping[str, Any], files: list[Path]) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    uri, name = mlflow_experiment(cfg, store)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    run = client.create_run(experiment.experiment_id, run_name=f"{cfg.name}-recommendation",
                            tags={KIND_TAG: "recommendation"})
    now = int(time.time() * 1000)
    log_batch(client, run.info.run_id,
              metrics=[Metric(k, v, now, 0) for k, v in recommendation_numbers(rec).items()],
              params=[Param("output", store.location), Param("search", cfg.name)])
    for path in files:
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id, "FINISHED")


# -- W&B -------------------------------------------------------------------------------------------
def wandb_init_kwargs(cfg: ExperimentConfig, store: Store) -> dict[str, Any]:
    """`wandb.init` keywords shared by the trials' runs and the recommendation's. WANDB_MODE is
    passed on explicitly: the trials' runs are opened in Ray actors, whose environment is the one
    Ray started with, not necessarily the driver's."""
    settings = cfg.trackers.wandb
    kwargs: dict[str, Any] = {"project": settings.get("project", cfg.name),
                              # W&B's default is the working directory; a remote output has no folder
                              "dir": store.path if store.local else os.getcwd(),
                              # the CLI's stdout carries the JSON answer: W&B must not wrap it
                              "settings": {"console": "off"}}
    if settings.get("entity"):
        kwargs["entity"] = settings["entity"]
    if os.environ.get("WANDB_MODE"):
        kwargs["mode"] = os.environ["WANDB_MODE"]
    return kwargs


def _check_wandb_credentials(cfg: ExperimentConfig) -> None:
    """Online W&B needs an API key; without one Ray's callback fails inside Tune."""
    if os.environ.get("WANDB_MODE") in ("offline", "disabled") or os.environ.get("WANDB_API_KEY"):
        return
    import wandb

    if not wandb.login(prompt=False):
        raise BadInput("W&B has no API key here", f"{cfg.source}: loggers",
                       "run `wandb login`, set WANDB_API_KEY, or WANDB_MODE=offline to keep the runs local")


def _attach_wandb(cfg: ExperimentConfig, store: Store, rec: Mapping[str, Any], files: list[Path]) -> None:
    import wandb

    flat = recommendation_numbers(rec)
    run = wandb.init(**wandb_init_kwargs(cfg, store), job_type="recommendation",
                     name=f"{cfg.name}-recommendation", reinit="create_new",
                     config={"weights": dict(rec["weights"]), "lr": rec["lr"], "tokens": rec["tokens"],
                             "output": store.location})
    try:
        run.summary.update(flat)
        artifact = wandb.Artifact(f"{cfg.name}-recommendation", type="recommendation",
                                  metadata={"output": store.location, **flat})
        for path in files:
            artifact.add_file(str(path), name=path.name)
        run.log_artifact(artifact)
    finally:
        run.finish()


# -- after the search ------------------------------------------------------------------------------
def recommendation_numbers(rec: Mapping[str, Any]) -> dict[str, float]:
    """The recommendation as flat numbers: `w.<domain>`, `lr`, `tokens`, `expected_loss.<domain>`."""
    out = {f"w.{d}": float(w) for d, w in rec["weights"].items()}
    out.update(lr=float(rec["lr"]), tokens=float(rec["tokens"]))
    per_domain = (rec.get("expected_loss") or {}).get("per_domain") or {}
    out.update({f"expected_loss.{d}": float(v) for d, v in per_domain.items()
                if _is_number(v) and math.isfinite(v)})
    return out


@contextlib.contextmanager
def result_files(store: Store) -> Iterator[list[Path]]:
    """Local paths of recommendation.json, report.md and the report's plots (downloaded to a
    temporary folder when the output is object storage)."""
    names = [n for n in (layout.RECOMMENDATION, layout.REPORT, *layout.PLOTS) if store.exists(n)]
    if store.local:
        yield [Path(store.path) / n for n in names]
        return
    tmp = Path(tempfile.mkdtemp(prefix="autoscale-ray-attach-"))
    try:
        for n in names:
            (tmp / n).write_bytes(store.read_bytes(n))
        yield [tmp / n for n in names]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def attach_results(cfg: ExperimentConfig, store: Store, rec: Mapping[str, Any]) -> None:
    """Attach the written recommendation and report to a run of each configured tracker. A
    tracker that fails here is a warning: the answer is already in the output."""
    attach = {"mlflow": _attach_mlflow, "wandb": _attach_wandb}
    chosen = [name for name in cfg.trackers.loggers if name in attach]
    if not chosen:
        return
    with result_files(store) as files:
        for name in chosen:
            try:
                attach[name](cfg, store, rec, files)
            except Exception as exc:  # the tracker's own errors (network, server) vary by version
                log.warning("the recommendation was not attached to %s (%s: %s); it is in %s",
                            name, type(exc).__name__, short(str(exc)), store.location)
