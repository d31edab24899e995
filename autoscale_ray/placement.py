"""Where a trial trains and what it reserves: in the trial's own process (tiny CPU proxies, or a
GPU fraction so several proxies share one GPU) or on Ray Train workers with one GPU each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoscale_ray.config import ExperimentConfig
from autoscale_ray.storage import Store

TINY_PRESETS = ("gpt2-tiny", "llama-tiny", "bert-tiny")


def trial_resources(cfg: ExperimentConfig) -> dict[str, float]:
    """What Tune reserves per trial: the proxy's CPUs and GPU share when it trains in the trial's
    process (a fraction packs several tiny proxies on one GPU); its driver's CPUs only when it runs
    on Ray Train, whose workers reserve their own GPUs."""
    r = cfg.resources
    if in_process(cfg) and r.gpus_per_trial > 0:
        return {"cpu": r.cpus_per_trial, "gpu": r.gpus_per_trial}
    return {"cpu": r.cpus_per_trial}


def in_process(cfg: ExperimentConfig) -> bool:
    r = cfg.resources
    if r.in_process != "auto":
        return r.in_process == "always"
    single = int(cfg.train.get("num_workers", 1)) <= 1
    tiny_cpu = cfg.train.get("model", "gpt2-tiny") in TINY_PRESETS and r.gpus_per_trial == 0
    return single and (tiny_cpu or r.trials_per_gpu > 0 or 0 < r.gpus_per_trial < 1)


def trial_options(cfg: ExperimentConfig, corpus_dir: Path, out: Store) -> dict[str, Any]:
    r = cfg.resources
    options = {**cfg.train, "corpus_dir": str(corpus_dir), "storage_path": out.uri("train"),
               "out": out.location, "in_process": in_process(cfg),
               "cpus_per_worker": max(r.cpus_per_trial / 2, 0.25)}
    if not out.local:
        options["corpus_uri"] = out.uri(f"corpus/{corpus_dir.name}")
    if r.gpus_per_trial > 0:
        options["use_gpu"] = True
        workers = max(1, int(cfg.train.get("num_workers", 1)))
        options["gpus_per_worker"] = r.gpus_per_trial / workers
    return options
