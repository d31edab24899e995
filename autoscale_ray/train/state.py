"""Training state on disk: model, optimiser, LR schedule, stream position, RNG.

A checkpoint directory holds `state.pt` (torch tensors) and `position.json` (the step and the
number of sequences of the mixture stream consumed, readable without torch). Resuming loads all of
it, and the caller restarts the stream at `sequences` (`PackedCorpus.mixture_dataset(plan, start)`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from autoscale_ray.atomic import write_json

STATE_FILE = "state.pt"
POSITION_FILE = "position.json"


@dataclass
class TrainState:
    step: int = 0                 # optimizer steps taken
    sequences: int = 0            # sequences of the mixture stream consumed (all workers)
    seen: list[int] = field(default_factory=list)  # sequences consumed per domain (all workers)


def save_state(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, state: TrainState) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "position": asdict(state),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    torch.save(payload, directory / STATE_FILE)
    write_json(directory / POSITION_FILE, asdict(state))  # written last: marks a complete state


def read_position(directory: Path) -> TrainState:
    """Where a checkpoint stands, without loading tensors."""
    data = json.loads((Path(directory) / POSITION_FILE).read_text())
    return TrainState(**data)


def load_state(directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
               scheduler: torch.optim.lr_scheduler.LRScheduler, device: torch.device) -> TrainState:
    if not (Path(directory) / POSITION_FILE).exists():  # written last: without it the state is partial
        raise RuntimeError(f"checkpoint {directory} is incomplete (no {POSITION_FILE}); "
                           "resume from an earlier checkpoint")
    # weights_only: a checkpoint on shared storage is data, never code to run
    payload = torch.load(Path(directory) / STATE_FILE, map_location=device, weights_only=True)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["rng_cpu"].cpu())
    if payload["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in payload["rng_cuda"]])
    return TrainState(**payload["position"])
