"""`ProxyJob`: one proxy run as a trainable hands it to the training layer, typed and frozen.

The search builds it from its trial contract and the searcher's suggestion
(`autoscale_ray.tuning.trial`); a user's own Tune function can build one directly:

    def trainable(config):
        run_proxy(ProxyJob(TrainConfig(model="gpt2-tiny", lr=config["lr"]), corpus_dir=root))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from autoscale_ray.train.config import TrainConfig


def default_train_storage() -> str:
    return os.path.join(os.path.expanduser("~"), "ray_results", "autoscale-ray-train")


@dataclass(frozen=True)
class ProxyJob:
    train: TrainConfig
    corpus_dir: str                      # a PackedCorpus folder on this node
    run_id: str | None = None            # None: the Tune trial id
    storage_path: str = field(default_factory=default_train_storage)  # Ray Train run folders
    in_process: bool = False             # train in the trial's own process (no Ray Train)
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 1.0         # GPUs per Ray Train worker, used when train.use_gpu
    max_failures: int = 0                # Ray Train's own retries of a worker group
    extras: Mapping[str, Any] = field(default_factory=dict)  # columns copied into every row

    @property
    def on_ray_train(self) -> bool:
        return not self.in_process and self.train.num_workers > 0
