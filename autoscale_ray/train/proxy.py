"""One proxy run assembled from a `TrainConfig` and a packed corpus, and its in-process runner.

`setup_proxy` is what every path does before the loop (check the config against the corpus, make
the mixture plan, build the model with the seed); `train_in_process` runs the shared loop on the
corpus's `iter_plan` stream without Ray, for tiny CPU proxies and for bare-torch baselines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autoscale_ray.checks import check_known
from autoscale_ray.errors import BadInput
from autoscale_ray.train.config import BatchLayout, TrainConfig
from autoscale_ray.train.loop import Report, RunInfo, Worker, train_proxy
from autoscale_ray.train.models import model_spec
from autoscale_ray.train.objective import TokenIds
from autoscale_ray.train.state import read_position


@dataclass
class Proxy:
    cfg: TrainConfig
    corpus: Any            # autoscale_ray.data.PackedCorpus
    plan: Any              # autoscale_ray.data.MixturePlan
    model: nn.Module
    objective: str
    tokens: TokenIds
    layout: BatchLayout
    total_steps: int
    run: RunInfo

    def validation(self) -> dict[str, Any]:
        return {d: self.corpus.validation(d) for d in self.corpus.domains}


def setup_proxy(cfg: TrainConfig, corpus: Any, run_id: str, world_size: int,
                where: str = "train config") -> Proxy:
    """Check `cfg` against `corpus`, plan the mixture stream and build the seeded model."""
    weights, layout, plan = plan_for(cfg, corpus, world_size, where)
    # Per-domain quotas are rounded, so the plan may hold a few sequences less than asked for.
    total_steps = min(cfg.total_steps(corpus.seq_len, where), plan.n_sequences // layout.global_sequences)
    if total_steps < cfg.eval_count:
        raise BadInput(f"the mixture plan holds {plan.n_sequences} sequences, fewer than "
                       f"eval_count={cfg.eval_count} global batches", where, "raise budget_tokens")
    spec = model_spec(cfg.model, vocab_size=corpus.vocab_size, seq_len=corpus.seq_len,
                      objective=cfg.objective,
                      special_ids={"pad_token_id": corpus.pad_id, "bos_token_id": corpus.eod_id,
                                   "eos_token_id": corpus.eod_id})
    torch.manual_seed(cfg.seed)  # same initial weights on every worker and every resume
    model = spec.build()
    tokens = TokenIds(vocab_size=corpus.vocab_size, pad_id=corpus.pad_id, eod_id=corpus.eod_id,
                      mask_id=corpus.mask_id)
    run = RunInfo(run_id=run_id, domains=tuple(corpus.domains), weights=weights,
                  epochs=dict(plan.epochs))
    return Proxy(cfg=cfg, corpus=corpus, plan=plan, model=model, objective=spec.objective,
                 tokens=tokens, layout=layout, total_steps=total_steps, run=run)


def plan_for(cfg: TrainConfig, corpus: Any, world_size: int,
             where: str = "train config") -> tuple[dict[str, float], BatchLayout, Any]:
    """(weights, batch layout, mixture plan) of a run: the plan covers the whole global batches
    of the budget, so every path (driver, workers, in-process) streams the same sequences."""
    check_known(sorted(cfg.weights), corpus.domains, where, what="mixture weights name unknown domain(s)")
    weights = dict(cfg.weights) or {d: 1.0 for d in corpus.domains}
    layout = cfg.batch_layout(corpus.seq_len, world_size, where)
    budget = cfg.total_steps(corpus.seq_len, where) * layout.global_tokens
    return weights, layout, corpus.plan(budget_tokens=budget, weights=weights, seed=cfg.seed)


def start_position(resume_dir: Path | None) -> int:
    """Sequences of the stream already consumed by the checkpoint in `resume_dir` (0 if none)."""
    return read_position(resume_dir).sequences if resume_dir is not None else 0


def train_in_process(cfg: TrainConfig, corpus: Any, *, run_id: str, report: Report,
                     resume_dir: Path | None = None, device: torch.device | None = None) -> dict[str, Any]:
    """Run one proxy in this process on `corpus.iter_plan` (no Ray); returns the last row."""
    proxy = setup_proxy(cfg, corpus, run_id, world_size=1)
    start = start_position(resume_dir)
    batches = iter(corpus.iter_plan(proxy.plan, proxy.layout.micro_batch, start=start))
    return train_proxy(cfg, model=proxy.model, objective=proxy.objective, tokens=proxy.tokens,
                       batches=batches, validation=proxy.validation(), layout=proxy.layout,
                       total_steps=proxy.total_steps, run=proxy.run, report=report,
                       worker=Worker(device or default_device(cfg)), resume_dir=resume_dir)


def default_device(cfg: TrainConfig) -> torch.device:
    return torch.device("cuda") if cfg.use_gpu and torch.cuda.is_available() else torch.device("cpu")
