"""The proxy pretraining loop, shared by the Ray Train workers, the in-process path and benchmarks.

It reads top to bottom like nanoGPT's train.py: build the optimiser and schedule, restore a
checkpoint if given, then take optimizer steps over micro-batches from `batches` (this worker's
part of the mixture stream), evaluate per-domain validation loss at log-spaced steps, and hand
each evaluation row to `report` together with a function that writes the training state. Where
the batches come from and where reports and checkpoints go are the caller's business (the edges:
`worker.py` for Ray Train, `runner.py` for the in-process path, the benchmarks for bare torch).
Multi-worker runs synchronise through torch.distributed (DDP) when it is initialised.
"""

from __future__ import annotations

import contextlib
import math
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from autoscale_ray.train.config import BatchLayout, TrainConfig
from autoscale_ray.train.evalpoints import checkpoint_steps, eval_steps
from autoscale_ray.train.flops import device_peak_flops, mfu, model_shape
from autoscale_ray.train.objective import TokenIds, causal_batch, generator_for, mlm_batch, token_loss_sum
from autoscale_ray.train.schedule import LRFactor
from autoscale_ray.train.state import TrainState, load_state, save_state

# report(row, save): called on every worker at each evaluation; `save(dir)` writes the training
# state into `dir` (call it on rank 0 only; it is None for rows that are not checkpointed).
Report = Callable[[dict[str, Any], Callable[[Path], None] | None], None]


@dataclass(frozen=True)
class RunInfo:
    """The run's identity, copied into every row of the runs table."""

    run_id: str
    domains: tuple[str, ...]
    weights: Mapping[str, float]
    epochs: Mapping[str, float] = field(default_factory=dict)


@dataclass
class Worker:
    """Where this worker runs: device, rank, world size, and how to wrap the model (DDP)."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    wrap: Callable[[nn.Module], nn.Module] = lambda m: m


@dataclass
class _Window:
    """Training loss and throughput since the last logged row (device tensors: no host sync)."""

    loss: torch.Tensor
    steps: int = 0
    seconds: float = 0.0

    def reset(self) -> None:
        self.loss.zero_()
        self.steps, self.seconds = 0, 0.0


def train_proxy(cfg: TrainConfig, *, model: nn.Module, objective: str, tokens: TokenIds,
                batches: Iterator[Mapping[str, Any]], validation: Mapping[str, np.ndarray],
                layout: BatchLayout, total_steps: int, run: RunInfo, report: Report,
                worker: Worker, resume_dir: Path | None = None) -> dict[str, Any]:
    """Train `model` for `total_steps` optimizer steps; returns the last reported row."""
    device = worker.device
    causal = objective == "causal"
    torch.manual_seed(cfg.seed)
    model.to(device)
    optimizer = _optimizer(cfg, model, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, LRFactor.for_run(
        total_steps, cfg.schedule, cfg.warmup_fraction, cfg.decay_fraction, cfg.min_lr_ratio))
    state = TrainState()
    if resume_dir is not None:
        state = load_state(resume_dir, model, optimizer, scheduler, device)
    forward = worker.wrap(model)
    if cfg.compile:
        forward = torch.compile(forward)

    shape = model_shape(model, layout.seq_len)
    flops_per_token, peak = shape.flops_per_token(), device_peak_flops(device)
    stop_step = math.ceil(cfg.stop_at_tokens / layout.global_tokens) if cfg.stop_at_tokens else 0
    evals = set(eval_steps(total_steps, cfg.eval_count, cfg.eval_first_fraction))
    checkpointed = checkpoint_steps(total_steps, evals, cfg.checkpoint_every)
    seen = torch.zeros(len(run.domains), dtype=torch.long, device=device)  # this worker's sequences
    state_seen = np.asarray(state.seen or [0] * len(run.domains), dtype=np.int64)  # before resume
    window = _Window(torch.zeros((), device=device))
    last_row: dict[str, Any] = {}
    _reset_peak_memory(device)

    forward.train()
    while state.step < total_steps:
        t0 = time.perf_counter()
        _optimizer_step(cfg, model, forward, optimizer, scheduler, batches, tokens, layout, causal,
                        state, worker.rank, seen, window, total_steps)
        evaluate_now = state.step in evals or state.step == total_steps
        stopping = stop_step and state.step >= stop_step and state.step < total_steps
        if not (evaluate_now or stopping or state.step % cfg.divergence_check_steps == 0):
            window.seconds += time.perf_counter() - t0
            continue
        # The only host-device syncs of the loop: a finiteness check, agreed across workers.
        diverged = _any_worker(~torch.isfinite(window.loss), device)
        window.seconds += time.perf_counter() - t0
        if not (evaluate_now or stopping or diverged):
            continue

        seen_all = _sum_over_workers(seen, device) + state_seen
        row = _row(cfg, run, state, layout, shape.non_embedding_params,
                   _mean_over_workers(window.loss, device) / max(1, window.steps),
                   scheduler.get_last_lr()[0], seen_all)
        tokens_per_s = window.steps * layout.global_tokens / max(window.seconds, 1e-9)
        # `device`: where it trained (a trial given a GPU share on a node without CUDA trains on CPU)
        row.update(tokens_per_s=tokens_per_s, mfu=mfu(tokens_per_s, flops_per_token, peak, worker.world_size),
                   peak_mem_bytes=_peak_memory(device), device=device.type)
        if diverged:
            row.update({f"loss.{d}": float("nan") for d in run.domains}, loss=float("nan"),
                       status="diverged")
            report(row, None)  # a diverged state is not worth resuming
            return row
        losses = evaluate(model, validation, run.domains, causal, tokens, cfg, layout, worker)
        row.update({f"loss.{d}": v for d, v in losses.items()},
                   loss=float(np.mean(list(losses.values()))),
                   status="completed" if state.step == total_steps else
                   "stopped" if stopping else "running")
        snapshot = TrainState(step=state.step, sequences=state.sequences,
                              seen=[int(x) for x in seen_all])
        if stopping or state.step in checkpointed:
            report(row, lambda d, s=snapshot: save_state(d, model, optimizer, scheduler, s))
        else:  # a crash before the next checkpoint retrains from the last one: rows are redone, not lost
            report(row, None)
        last_row = row
        window.reset()
        if stopping:
            break
    return last_row


def _optimizer(cfg: TrainConfig, model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """AdamW, no weight decay on biases and norms (1-D tensors), fused kernels on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                             fused=device.type == "cuda")


def _optimizer_step(cfg: TrainConfig, model: nn.Module, forward: nn.Module, optimizer: Any,
                    scheduler: Any, batches: Iterator[Mapping[str, Any]], tokens: TokenIds,
                    layout: BatchLayout, causal: bool, state: TrainState, rank: int,
                    seen: torch.Tensor, window: _Window, total_steps: int) -> None:
    """One optimizer step over `layout.accumulation` micro-batches (gradients accumulated)."""
    device = seen.device
    autocast = _autocast(cfg, device)
    for micro in range(layout.accumulation):
        batch = next(batches, None)
        if batch is None:  # the plan holds total_steps global batches; running dry is a bug
            raise RuntimeError(f"the mixture stream ended at step {state.step} of {total_steps}")
        ids = torch.as_tensor(batch["input_ids"]).to(device, torch.long, non_blocking=True)
        seen += torch.bincount(torch.as_tensor(batch["domain"]).to(device, torch.long),
                               minlength=len(seen))
        if causal:
            inputs, labels = causal_batch(ids, tokens)
        else:
            gen = generator_for(device, cfg.seed, state.step, rank, micro)
            inputs, labels = mlm_batch(ids, tokens, cfg.mlm_probability, gen)
        # DDP all-reduces gradients only on the last micro-batch of the step.
        sync = micro == layout.accumulation - 1 or not hasattr(forward, "no_sync")
        with (contextlib.nullcontext() if sync else forward.no_sync()), autocast:
            loss = forward(input_ids=inputs, labels=labels).loss / layout.accumulation
        loss.backward()
        window.loss += loss.detach()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    state.step += 1
    state.sequences += layout.global_sequences
    window.steps += 1


@torch.no_grad()
def evaluate(model: nn.Module, validation: Mapping[str, np.ndarray], domains: tuple[str, ...],
             causal: bool, tokens: TokenIds, cfg: TrainConfig, layout: BatchLayout,
             worker: Worker) -> dict[str, float]:
    """Validation cross-entropy (nats/token) per domain, averaged over tokens of all workers.

    Each worker scores every world_size-th sequence; masked-LM masks are fixed per domain and
    sequence chunk so every checkpoint is scored on the same positions."""
    device, rank, world = worker.device, worker.rank, worker.world_size
    was_training = model.training
    model.eval()
    sums = torch.zeros(len(domains), 2, dtype=torch.float64, device=device)
    for i, domain in enumerate(domains):
        rows = np.asarray(validation[domain])
        if cfg.eval_batches:
            rows = rows[: cfg.eval_batches * layout.micro_batch]
        rows = rows[rank::world]
        for j in range(0, len(rows), layout.micro_batch):
            ids = torch.as_tensor(rows[j: j + layout.micro_batch], dtype=torch.long, device=device)
            if causal:
                inputs, labels = causal_batch(ids, tokens)
            else:
                gen = generator_for(device, 7919, i, rank, j)
                inputs, labels = mlm_batch(ids, tokens, cfg.mlm_probability, gen)
            with _autocast(cfg, device):
                logits = model(input_ids=inputs).logits
            loss_sum, count = token_loss_sum(logits, labels, causal)
            sums[i, 0] += loss_sum.double()
            sums[i, 1] += count
    if world > 1 and dist.is_initialized():
        dist.all_reduce(sums)
    model.train(was_training)
    values = sums.cpu().numpy()
    return {d: float(values[i, 0] / values[i, 1]) if values[i, 1] > 0 else float("nan")
            for i, d in enumerate(domains)}


def _row(cfg: TrainConfig, run: RunInfo, state: TrainState, layout: BatchLayout, params: int,
         train_loss: float, lr_now: float, seen_all: np.ndarray) -> dict[str, Any]:
    total = float(sum(run.weights.values())) or 1.0
    row: dict[str, Any] = {
        "run_id": run.run_id, "tokens": state.step * layout.global_tokens,
        "budget": cfg.budget_tokens, "params": params, "lr": cfg.lr, "seed": cfg.seed,
        "step": state.step, "train_loss": train_loss, "lr_now": lr_now,
    }
    row.update({f"w.{d}": float(run.weights.get(d, 0.0)) / total for d in run.domains})
    row.update({f"epochs.{d}": float(run.epochs[d]) for d in run.domains if d in run.epochs})
    # `seen.<d>`: tokens of each domain trained on so far, counted from the stream itself.
    row.update({f"seen.{d}": int(seen_all[i]) * layout.seq_len for i, d in enumerate(run.domains)})
    return row


def _autocast(cfg: TrainConfig, device: torch.device) -> contextlib.AbstractContextManager:
    use_bf16 = cfg.dtype == "bfloat16" or (cfg.dtype == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _any_worker(flag: torch.Tensor, device: torch.device) -> bool:
    value = flag.to(device=device, dtype=torch.float32).reshape(1)
    if _distributed():
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def _mean_over_workers(value: torch.Tensor, device: torch.device) -> float:
    v = value.detach().to(device=device, dtype=torch.float64).reshape(1)
    if _distributed():
        dist.all_reduce(v)
        v /= dist.get_world_size()
    return float(v.item())


def _sum_over_workers(value: torch.Tensor, device: torch.device) -> np.ndarray:
    v = value.to(device=device, dtype=torch.float64).clone()
    if _distributed():
        dist.all_reduce(v)
    return v.cpu().numpy().round().astype(np.int64)


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory(device: torch.device) -> int:
    """Peak bytes: CUDA allocator peak on GPU; the process's max resident set size on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
