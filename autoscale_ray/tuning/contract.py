"""The trial contract: what every trial of one search shares, built once from the config.

A trial trains in its own process (tiny CPU proxies, or a GPU fraction so several proxies share
one GPU) or on Ray Train workers with one GPU each; it reads the packed corpus from this node's
cache or, on a node without it, from the output store; it writes its records to the output store
(`search/layout.py`) and Ray Train's checkpoints to `train_storage`. The searcher's suggestion
(key, stage, budget, weights, LR, seed) is the only thing that differs between trials.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from autoscale_ray.config import ExperimentConfig
from autoscale_ray.tuning import layout
from autoscale_ray.storage import Store
from autoscale_ray.train.presets import TINY_PRESETS



@dataclass(frozen=True)
class TrialContract:
    train: Mapping[str, Any]          # the config's train section (TrainConfig fields)
    corpus_dir: str                   # the packed corpus in the driver node's cache
    corpus_uri: str | None            # its copy in the output store (object storage), else None
    output: str                       # the output store's location
    train_storage: str                # Ray Train's run folders (checkpoints of multi-worker trials)
    in_process: bool                  # train in the trial's process, not on Ray Train workers
    use_gpu: bool
    cpus_per_worker: float
    gpus_per_worker: float            # per Ray Train worker (or the trial's share in process)
    resources: Mapping[str, float] = field(default_factory=dict)  # what Tune reserves per trial

    def to_config(self) -> dict[str, Any]:
        """Plain values for Tune's param_space (kept readable in Tune's params.json)."""
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> "TrialContract":
        return cls(**values)


def json_ready(values: dict[str, Any]) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in values.items()}


def trial_resources(cfg: ExperimentConfig) -> dict[str, float]:
    """What Tune reserves per trial: the proxy's CPUs and GPU share when it trains in the trial's
    process (a fraction packs several tiny proxies on one GPU); its driver's CPUs only when it runs
    on Ray Train, whose workers reserve their own GPUs."""
    resources = cfg.resources
    if in_process(cfg) and resources.gpus_per_trial > 0:
        return {"cpu": resources.cpus_per_trial, "gpu": resources.gpus_per_trial}
    return {"cpu": resources.cpus_per_trial}


def in_process(cfg: ExperimentConfig) -> bool:
    resources = cfg.resources
    if resources.in_process != "auto":
        return resources.in_process == "always"
    single = int(cfg.train.get("num_workers", 1)) <= 1
    tiny_cpu = all(m in TINY_PRESETS for m in cfg.models) and resources.gpus_per_trial == 0
    return single and (tiny_cpu or resources.trials_per_gpu > 0 or 0 < resources.gpus_per_trial < 1)


def build_contract(cfg: ExperimentConfig, corpus_root: Path, store: Store) -> TrialContract:
    """The contract of a search whose packed corpus is `corpus_root` and output store `store`
    (on object storage the corpus is uploaded there once, for nodes without it)."""
    resources = cfg.resources
    workers = max(1, int(cfg.train.get("num_workers", 1)))
    return TrialContract(
        # absolute: a trial runs in its own working folder, so a relative cache_dir would miss
        train=dict(cfg.train), corpus_dir=str(Path(corpus_root).resolve()),
        corpus_uri=layout.share_corpus(store, corpus_root), output=store.location,
        train_storage=layout.train_storage(store), in_process=in_process(cfg),
        use_gpu=resources.gpus_per_trial > 0, cpus_per_worker=max(resources.cpus_per_trial / 2, 0.25),
        gpus_per_worker=resources.gpus_per_trial / workers if resources.gpus_per_trial > 0 else 0.0,
        resources=trial_resources(cfg))
