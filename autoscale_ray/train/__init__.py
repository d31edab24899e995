"""Proxy pretraining on Ray Train: models, the training loop, and running one proxy in a Tune trial.

- `TrainConfig` (config.py): every knob of one proxy run.
- `PRESETS` (presets.py): the model presets as plain data; `model_spec` (models.py): transformers
  models from presets or config files.
- `train_proxy` (loop.py): the loop shared by Ray Train workers, the in-process path and benchmarks.
- `train_loop_per_worker` (worker.py): the `TorchTrainer` entry point.
- `ProxyJob` (job.py): one run as a trainable hands it over (config, corpus, storage, in-process or workers).
- `run_proxy` / `fit_proxy` (runner.py): run a job inside a Tune trial, in-process or on Ray Train.
"""

import importlib
from typing import Any

# name -> the module that defines it, imported on first use (PEP 562): the command line's config
# checks and a Tune trial actor unpickling its trainable import this package, and importing
# torch and transformers here made a bad config's one-line error take 5.6 s instead of 1.9 s.
_WHERE = {
    "BatchLayout": "config", "TrainConfig": "config", "eval_steps": "evalpoints",
    "ModelShape": "flops", "device_peak_flops": "flops", "mfu": "flops", "model_shape": "flops",
    "RunInfo": "loop", "Worker": "loop", "evaluate": "loop", "train_proxy": "loop",
    "PRESETS": "presets", "ModelSpec": "models", "model_spec": "models",
    "TokenIds": "objective", "LRFactor": "schedule", "lr_factor": "schedule",
}


__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value  # resolved once: later lookups skip this function
    return value
