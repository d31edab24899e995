"""Proxy pretraining on Ray Train: models, the training loop, and running one proxy in a Tune trial.

- `TrainConfig` (config.py): every knob of one proxy run.
- `model_spec` / `PRESETS` (models.py): transformers models from presets or config files.
- `train_proxy` (loop.py): the loop shared by Ray Train workers, the in-process path and benchmarks.
- `train_loop_per_worker` (worker.py): the `TorchTrainer` entry point.
- `ProxyJob` (job.py): one run as a trainable hands it over (config, corpus, storage, in-process or workers).
- `run_proxy` / `fit_proxy` (runner.py): run a job inside a Tune trial, in-process or on Ray Train.
"""

from autoscale_ray.train.config import BatchLayout, TrainConfig
from autoscale_ray.train.evalpoints import eval_steps
from autoscale_ray.train.flops import ModelShape, device_peak_flops, mfu, model_shape
from autoscale_ray.train.loop import RunInfo, Worker, evaluate, train_proxy
from autoscale_ray.train.models import PRESETS, ModelSpec, model_spec
from autoscale_ray.train.objective import TokenIds
from autoscale_ray.train.schedule import LRFactor, lr_factor

__all__ = [
    "BatchLayout", "LRFactor", "ModelShape", "ModelSpec", "PRESETS", "RunInfo",
    "TokenIds", "TrainConfig", "device_peak_flops", "eval_steps", "evaluate", "lr_factor", "mfu",
    "model_shape", "model_spec", "train_proxy", "Worker",
]
