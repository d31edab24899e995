"""Run one proxy (a `ProxyJob`) inside a Tune trial, reporting one Tune result per evaluation.

Each evaluation row of the run (see `autoscale_ray.train.loop`) becomes one Tune result, so the
searcher and the runs table see per-domain validation losses at every checkpoint. Ray Train V2 has
no `Tuner(TorchTrainer)`, so the trial function is the Train driver: `fit_proxy` builds a
`TorchTrainer` (stable name `train-trial_id=<run id>`, so a retried trial resumes from the run's
latest checkpoint) and forwards worker reports with `TuneReportCallback`. An `in_process` job (or
`num_workers=0`) runs the same loop in the trial's own process on `PackedCorpus.iter_plan`, which
skips Train's start-up cost for tiny proxies (on CPU, or on the GPU share Tune gave the trial);
multi-worker runs always go through Ray Train. `storage_path` may be a folder or an object-storage URI.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any, Callable

from autoscale_ray import chaos
from autoscale_ray.errors import BadInput
from autoscale_ray.storage import filesystem_for
from autoscale_ray.train.config import TrainConfig
from autoscale_ray.train.job import ProxyJob
from autoscale_ray.train.proxy import plan_for, train_in_process


def run_proxy(job: ProxyJob) -> None:
    """Train `job` inside the current Tune trial (call from a Tune function trainable)."""
    from ray import tune

    if job.in_process and job.train.num_workers > 1:
        raise BadInput("in_process runs need num_workers <= 1", "trial config",
                       "drop in_process to run on Ray Train")
    run_id = str(job.run_id or tune.get_context().get_trial_id())
    if not job.on_ray_train:
        _run_in_trial_process(job, run_id)
        return
    from ray.tune.integration.ray_train import TuneReportCallback
    result = fit_proxy(job, run_id, callbacks=[TuneReportCallback()])
    if result.error is not None:  # the trial must fail too, or Tune counts a partial run as done
        raise result.error


def _run_in_trial_process(job: ProxyJob, run_id: str) -> None:
    from ray import tune

    from autoscale_ray.data import PackedCorpus

    extras = dict(job.extras)

    def report(row: dict[str, Any], save: Callable[[Path], None] | None) -> None:
        row = {**row, **extras}
        if save is None:
            tune.report(row)
            return
        with tempfile.TemporaryDirectory() as tmp:
            save(Path(tmp))
            with chaos.during_upload(run_id, row):  # Tune copies it to storage, then registers it
                tune.report(row, checkpoint=tune.Checkpoint.from_directory(tmp))
        chaos.after_checkpoint(run_id, row)

    previous = tune.get_checkpoint()  # set when Tune restores or retries this trial
    corpus = PackedCorpus.load(job.corpus_dir)
    if previous is None:
        train_in_process(job.train, corpus, run_id=run_id, report=report)
    else:
        with previous.as_directory() as resume_dir:
            train_in_process(job.train, corpus, run_id=run_id, report=report, resume_dir=Path(resume_dir))


def fit_proxy(job: ProxyJob, run_id: str | None = None, *, callbacks: list[Any] | None = None) -> Any:
    """Run one proxy on Ray Train (`TorchTrainer.fit()`), resuming from the run's latest checkpoint
    in `storage_path`/train-trial_id=<run_id> if there is one. Returns the Train `Result`; its
    `return_value` is the list of rows rank 0 reported in this session."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from autoscale_ray.data import PackedCorpus, stream_data_config

    cfg = job.train
    run_id = str(run_id or job.run_id)
    corpus = PackedCorpus.load(job.corpus_dir)
    workers = max(1, cfg.num_workers)
    _, layout, plan = plan_for(cfg, corpus, workers, "trial config")
    name = f"train-trial_id={run_id}"
    fs, storage = filesystem_for(job.storage_path)
    start = _latest_step(storage, name, fs) * layout.global_sequences
    resources = {"CPU": float(job.cpus_per_worker)}
    if cfg.use_gpu:
        resources["GPU"] = float(job.gpus_per_worker)
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"train": _as_mapping(cfg), "corpus_dir": str(corpus.root),
                           "run_id": run_id, "data_start": start, "extras": dict(job.extras)},
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=cfg.use_gpu,
                                               resources_per_worker=resources),
        datasets={"train": corpus.mixture_dataset(plan, start)},
        dataset_config=stream_data_config(),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage, storage_filesystem=fs, callbacks=callbacks or [],
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            failure_config=ray.train.FailureConfig(max_failures=job.max_failures)),
    )
    return trainer.fit()


def _train_loop(config: dict[str, Any]) -> list[dict[str, Any]]:
    from autoscale_ray.train.worker import train_loop_per_worker

    return train_loop_per_worker(config)


def _as_mapping(cfg: TrainConfig) -> dict[str, Any]:
    values = dataclasses.asdict(cfg)
    values["weights"] = dict(cfg.weights)
    return values


def _latest_step(storage: str, name: str, fs: Any) -> int:
    """Optimizer step of the run's latest registered checkpoint, 0 when the run is new."""
    import ray.train

    path = storage.rstrip("/") + "/" + name
    try:
        result = ray.train.Result.from_path(path, storage_filesystem=fs)
    except RuntimeError:  # no such run folder or no checkpoint snapshot yet
        return 0
    return int((result.metrics or {}).get("step", 0)) if result.checkpoint else 0
