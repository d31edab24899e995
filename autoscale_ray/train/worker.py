"""`train_loop_per_worker` for Ray Train's `TorchTrainer`: the Ray edges around the shared loop.

In: this worker's shard of the mixture stream (`get_dataset_shard("train")`), the latest
checkpoint (`get_checkpoint()`), its rank and device. Out: each evaluation row through
`ray.train.report`, with the training state as a checkpoint from rank 0. The loop in between is
`autoscale_ray.train.loop.train_proxy`, the same one the in-process path and benchmarks run.
"""

from __future__ import annotations

import contextlib
import tempfile
from itertools import islice
from pathlib import Path
from typing import Any, Callable

import ray.train
import ray.train.torch
import torch

from autoscale_ray.train.config import TrainConfig
from autoscale_ray.train.loop import Worker, train_proxy
from autoscale_ray.train.proxy import setup_proxy, start_position


def train_loop_per_worker(config: dict[str, Any]) -> list[dict[str, Any]]:
    """config: `train` (TrainConfig fields), `corpus_dir`, `run_id`, `data_start` (the stream
    position the "train" dataset starts at), `extras` (columns copied into rows).
    Returns the rows this worker reported (rank 0's become `Result.return_value`)."""
    from autoscale_ray.data import PackedCorpus

    cfg = TrainConfig.from_mapping(config["train"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    proxy = setup_proxy(cfg, PackedCorpus.load(config["corpus_dir"]), config["run_id"], world)
    device = ray.train.torch.get_device()

    rows: list[dict[str, Any]] = []
    extras = dict(config.get("extras") or {})

    def report(row: dict[str, Any], save: Callable[[Path], None] | None) -> None:
        row = {**row, **extras}
        rows.append(row)
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if save is not None and rank == 0:  # the state is identical on every DDP worker
                save(Path(tmp))
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(row, checkpoint=checkpoint,
                             checkpoint_dir_name=f"checkpoint_step={row['step']:08d}")

    shard = ray.train.get_dataset_shard("train")
    batches = iter(shard.iter_torch_batches(
        batch_size=proxy.layout.micro_batch, drop_last=True,
        dtypes={"input_ids": torch.long, "domain": torch.long}, device=device))
    with contextlib.ExitStack() as stack:
        checkpoint = ray.train.get_checkpoint()
        resume_dir = Path(stack.enter_context(checkpoint.as_directory())) if checkpoint else None
        # The driver started the stream at the checkpoint it saw; if the worker group restarted
        # from a later one within the same fit(), skip this worker's share of the difference.
        behind = start_position(resume_dir) - int(config.get("data_start", 0))
        if behind < 0:
            raise RuntimeError(f"checkpoint at sequence {behind + config['data_start']} is behind "
                               f"the stream start {config['data_start']}")
        skip = behind // (world * proxy.layout.micro_batch)
        batches = islice(batches, skip, None)
        train_proxy(cfg, model=proxy.model, objective=proxy.objective, tokens=proxy.tokens,
                    batches=batches, validation=proxy.validation(), layout=proxy.layout,
                    total_steps=proxy.total_steps, run=proxy.run, report=report,
                    worker=Worker(device=device, rank=rank, world_size=world,
                                   wrap=ray.train.torch.prepare_model),
                    resume_dir=resume_dir)
    return rows
