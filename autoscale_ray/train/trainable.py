"""The Tune trainable: one trial = one proxy pretraining run.

    tuner = tune.Tuner(
        tune.with_resources(run_proxy_trial, {"cpu": 0.5}),
        param_space={"corpus_dir": corpus.root, "model": "gpt2-tiny", "budget_tokens": 2_000_000,
                     "weights": {...}, "lr": 1e-3, "num_workers": 1, "cpus_per_worker": 1},
        ...)

Each evaluation row of the run (see `autoscale_ray.train.loop`) becomes one Tune result, so the
searcher and the runs table see per-domain validation losses at every checkpoint. Ray Train V2 has
no `Tuner(TorchTrainer)`, so the trial function is the Train driver: it builds a `TorchTrainer`
(stable name `train-trial_id=<id>`, so a retried trial resumes from the run's latest checkpoint)
and forwards worker reports with `TuneReportCallback`. With `num_workers=0` (or `in_process`) the
same loop runs in the trial's own process on `PackedCorpus.iter_plan`, which skips Train's start-up
cost for tiny proxies (on CPU, or on the GPU share Tune gave the trial); multi-worker runs always
go through Ray Train. `storage_path` may be a folder or an object-storage URI.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from autoscale_ray import chaos
from autoscale_ray.errors import BadInput
from autoscale_ray.storage import filesystem_for
from autoscale_ray.train.config import TrainConfig
from autoscale_ray.train.proxy import plan_for, row_extras, train_in_process

# Trial-config keys that are not TrainConfig fields.
TRIAL_KEYS = ("corpus_dir", "storage_path", "in_process", "cpus_per_worker", "gpus_per_worker",
              "max_failures", "run_id", "stage", "meta")


def split_trial_config(config: Mapping[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    """(TrainConfig, trial options) from a flat Tune trial config."""
    options = {k: config[k] for k in TRIAL_KEYS if k in config}
    train = {k: v for k, v in config.items() if k not in TRIAL_KEYS}
    cfg = TrainConfig.from_mapping(train, "trial config")
    if "corpus_dir" not in options:
        raise BadInput("no `corpus_dir`", "trial config",
                       "give the folder of a packed corpus (autoscale_ray.data.prepare_corpus)")
    if options.get("in_process") and cfg.num_workers > 1:
        raise BadInput("in_process runs need num_workers <= 1", "trial config",
                       "drop in_process to run on Ray Train")
    return cfg, options


def run_proxy_trial(config: dict[str, Any]) -> None:
    """Tune function trainable (use with `tune.with_resources`); reports one row per evaluation."""
    from ray import tune

    cfg, options = split_trial_config(config)
    run_id = str(options.get("run_id") or tune.get_context().get_trial_id())
    if options.get("in_process") or cfg.num_workers == 0:
        _run_in_trial_process(cfg, options, run_id)
    else:
        from ray.tune.integration.ray_train import TuneReportCallback
        result = fit_proxy(cfg, options, run_id, callbacks=[TuneReportCallback()])
        if result.error is not None:  # the trial must fail too, or Tune counts a partial run as done
            raise result.error


def _run_in_trial_process(cfg: TrainConfig, options: Mapping[str, Any], run_id: str) -> None:
    from ray import tune

    from autoscale_ray.data import PackedCorpus

    extras = row_extras(options)

    def report(row: dict[str, Any], save: Callable[[Path], None] | None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if save is not None:
                save(Path(tmp))
                checkpoint = tune.Checkpoint.from_directory(tmp)
            tune.report({**row, **extras}, checkpoint=checkpoint)
        if checkpoint is not None:
            chaos.after_checkpoint(run_id, {**row, **extras})

    previous = tune.get_checkpoint()  # set when Tune restores or retries this trial
    corpus = PackedCorpus.load(options["corpus_dir"])
    if previous is None:
        train_in_process(cfg, corpus, run_id=run_id, report=report)
    else:
        with previous.as_directory() as resume_dir:
            train_in_process(cfg, corpus, run_id=run_id, report=report, resume_dir=Path(resume_dir))


def fit_proxy(cfg: TrainConfig, options: Mapping[str, Any], run_id: str, *,
              callbacks: list[Any] | None = None) -> Any:
    """Run one proxy on Ray Train (`TorchTrainer.fit()`), resuming from the run's latest checkpoint
    in `storage_path`/train-trial_id=<run_id> if there is one. Returns the Train `Result`; its
    `return_value` is the list of rows rank 0 reported in this session."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from autoscale_ray.data import PackedCorpus, stream_data_config

    corpus = PackedCorpus.load(options["corpus_dir"])
    workers = max(1, cfg.num_workers)
    _, layout, plan = plan_for(cfg, corpus, workers, "trial config")
    name = f"train-trial_id={run_id}"
    fs, storage = filesystem_for(str(options.get("storage_path") or _default_storage()))
    start = _latest_step(storage, name, fs) * layout.global_sequences
    resources = {"CPU": float(options.get("cpus_per_worker", 1.0))}
    if cfg.use_gpu:
        resources["GPU"] = float(options.get("gpus_per_worker", 1.0))
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"train": _as_mapping(cfg), "corpus_dir": str(corpus.root),
                           "run_id": run_id, "data_start": start, "extras": row_extras(options)},
        scaling_config=ray.train.ScalingConfig(num_workers=workers, use_gpu=cfg.use_gpu,
                                               resources_per_worker=resources),
        datasets={"train": corpus.mixture_dataset(plan, start)},
        dataset_config=stream_data_config(),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage, storage_filesystem=fs, callbacks=callbacks or [],
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            failure_config=ray.train.FailureConfig(max_failures=int(options.get("max_failures", 0)))),
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


def _default_storage() -> str:
    return os.path.join(os.path.expanduser("~"), "ray_results", "autoscale-ray-train")
