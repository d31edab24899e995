"""`TrainConfig`: every knob of one proxy pretraining run in one frozen object (nanoGPT style).

A run is (model, token budget, mixture weights, peak LR, seed); everything else here has a default
that suits small proxies. `TrainConfig.from_mapping` builds one from a Tune trial config (unknown
keys are rejected so a typo never silently falls back to a default) and `validate` checks it
against the corpus (sequence length, batch divisibility) with one-line `BadInput` errors.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from autoscale_ray.checks import as_number, check_bool, check_mapping, first_bad_weight, is_whole
from autoscale_ray.errors import BadInput, short

SCHEDULES = ("cosine", "constant", "wsd")
DTYPES = ("auto", "float32", "bfloat16")
OBJECTIVES = ("auto", "causal", "mlm")


@dataclass(frozen=True)
class TrainConfig:
    """One proxy run. Tokens are counted globally (all workers together)."""

    # model: a preset name (autoscale_ray.train.presets.PRESETS) or a transformers config.json path
    model: str = "gpt2-tiny"
    objective: str = "auto"            # auto (from the model) | causal | mlm
    mlm_probability: float = 0.15      # masked-LM: fraction of positions predicted
    # data
    budget_tokens: int = 1_000_000     # tokens to train on (the run's horizon D)
    weights: Mapping[str, float] = field(default_factory=dict)  # mixture; empty = uniform
    seed: int = 0
    # batch: global_batch_tokens = world_size * micro_batch * accumulation * seq_len
    global_batch_tokens: int = 16_384
    micro_batch: int = 8               # sequences per worker per forward pass
    # optimiser (AdamW) and schedule
    lr: float = 1e-3                   # peak learning rate
    schedule: str = "cosine"           # cosine | constant | wsd (warmup-stable-decay)
    warmup_fraction: float = 0.05      # of the optimizer steps
    decay_fraction: float = 0.2        # wsd: last fraction of steps decays linearly
    min_lr_ratio: float = 0.1          # final LR / peak LR (cosine, wsd)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0             # max global grad norm; 0 = no clipping
    # evaluation at log-spaced token checkpoints (the last at the budget)
    eval_count: int = 8
    eval_first_fraction: float = 0.02  # first evaluation at about this fraction of the run
    eval_batches: int = 0              # micro-batches of validation per domain; 0 = all
    checkpoint_every: int = 2          # checkpoint every k-th evaluation (and always the last)
    # execution
    dtype: str = "auto"                # auto = bfloat16 autocast on CUDA, float32 on CPU
    compile: bool = False              # torch.compile the model
    num_workers: int = 1               # Ray Train workers (DDP); 0 = in the trial's process
    use_gpu: bool = False
    divergence_check_steps: int = 10   # check loss finiteness every this many steps
    stop_at_tokens: int = 0            # end this session (checkpointed) here; 0 = run to budget

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], where: str = "train config") -> "TrainConfig":
        """Build from a dict (a Tune trial config or YAML section); unknown keys are bad input."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise BadInput(f"unknown key(s) {', '.join(map(repr, unknown))}", where,
                           f"use only: {', '.join(known)}")
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            default = known[key].default
            if key == "weights":
                given = {} if value is None else check_mapping(
                    value, where, f"weights={short(value)} is not a mapping",
                    "give weights as {domain: weight, ...}", empty=True)
                kwargs[key] = {str(k): _as_float(v, f"weights.{k}", where) for k, v in given.items()}
            elif isinstance(default, bool):
                kwargs[key] = _as_bool(value, key, where)
            elif isinstance(default, int):
                kwargs[key] = _as_int(value, key, where)
            elif isinstance(default, float):
                kwargs[key] = _as_float(value, key, where)
            elif isinstance(value, os.PathLike):
                kwargs[key] = os.fspath(value)
            elif not isinstance(value, str):
                raise BadInput(f"{key}={short(value)} is not a string", where, f"give {key} as text")
            else:
                kwargs[key] = value
        return cls(**kwargs).checked(where)

    def checked(self, where: str = "train config") -> "TrainConfig":
        """Checks that need no corpus; returns self so it chains."""
        def bad(key: str, what: str, fix: str) -> BadInput:
            return BadInput(f"{key}={short(getattr(self, key))} {what}", where, fix)

        for f in dataclasses.fields(self):  # NaN passes every comparison below: refuse it first
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise bad(f.name, "is not a finite number", f"give {f.name} as a finite number")

        for key in ("budget_tokens", "global_batch_tokens", "micro_batch", "eval_count",
                    "divergence_check_steps", "checkpoint_every"):
            if getattr(self, key) <= 0:
                raise bad(key, "must be positive", f"give {key} > 0")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise bad("lr", "must be a positive finite number", "give a peak LR such as 1e-3")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", "is unknown", f"use one of {', '.join(SCHEDULES)}")
        if self.dtype not in DTYPES:
            raise bad("dtype", "is unknown", f"use one of {', '.join(DTYPES)}")
        if self.objective not in OBJECTIVES:
            raise bad("objective", "is unknown", f"use one of {', '.join(OBJECTIVES)}")
        for key in ("warmup_fraction", "decay_fraction", "min_lr_ratio", "eval_first_fraction"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise bad(key, "must be in [0, 1]", f"give {key} between 0 and 1")
        if not 0.0 < self.mlm_probability < 1.0:
            raise bad("mlm_probability", "must be in (0, 1)", "use e.g. 0.15")
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            raise BadInput(f"betas ({self.beta1}, {self.beta2}) must be in [0, 1)", where,
                           "use e.g. beta1=0.9, beta2=0.95")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.eps <= 0:
            raise BadInput("weight_decay and grad_clip must be >= 0 and eps > 0", where,
                           "fix the optimiser settings")
        if self.num_workers < 0 or self.eval_batches < 0 or self.stop_at_tokens < 0:
            raise BadInput("num_workers, eval_batches and stop_at_tokens must be >= 0", where,
                           "fix the execution settings")
        bad_weight = first_bad_weight(self.weights)
        if bad_weight is not None:
            raise BadInput(f"weight of domain {bad_weight!r} is {self.weights[bad_weight]}", where,
                           "give finite non-negative mixture weights")
        if self.weights and sum(self.weights.values()) <= 0:
            raise BadInput("all mixture weights are zero", where, "give at least one positive weight")
        return self

    def batch_layout(self, seq_len: int, world_size: int, where: str = "train config") -> "BatchLayout":
        """Split the global batch into workers x micro-batches x accumulation steps."""
        if self.global_batch_tokens % seq_len:
            raise BadInput(f"global_batch_tokens={self.global_batch_tokens} is not a multiple of "
                           f"the sequence length {seq_len}", where,
                           f"use a multiple of {seq_len}, e.g. {seq_len * max(1, self.global_batch_tokens // seq_len)}")
        sequences = self.global_batch_tokens // seq_len
        per_step = world_size * self.micro_batch
        if sequences % per_step:
            raise BadInput(f"the global batch of {sequences} sequences does not split into "
                           f"{world_size} worker(s) x micro_batch={self.micro_batch}", where,
                           f"make global_batch_tokens / seq_len a multiple of {per_step}")
        return BatchLayout(seq_len=seq_len, world_size=world_size, micro_batch=self.micro_batch,
                           accumulation=sequences // per_step)

    def total_steps(self, seq_len: int, where: str = "train config") -> int:
        """Optimizer steps for the budget (rounded to whole global batches)."""
        steps = round(self.budget_tokens / self.global_batch_tokens)
        if steps < self.eval_count:
            raise BadInput(f"budget_tokens={self.budget_tokens} gives {steps} optimizer steps of "
                           f"{self.global_batch_tokens} tokens, fewer than eval_count={self.eval_count}",
                           where, f"raise budget_tokens to >= {self.eval_count * self.global_batch_tokens} "
                           "or lower global_batch_tokens")
        return steps


@dataclass(frozen=True)
class BatchLayout:
    seq_len: int
    world_size: int
    micro_batch: int      # sequences per worker per forward pass
    accumulation: int     # micro-batches per worker per optimizer step

    @property
    def global_sequences(self) -> int:
        return self.world_size * self.micro_batch * self.accumulation

    @property
    def global_tokens(self) -> int:
        return self.global_sequences * self.seq_len


# Tune configs carry numbers as numbers or numeric strings; NaN and inf parse here and are refused
# by `checked` with its own message.
def _as_int(value: Any, key: str, where: str) -> int:
    x = as_number(value, text=True)
    if x is None or not is_whole(x):
        raise BadInput(f"{key}={short(value)} is not an integer", where, f"give {key} as a whole number")
    return int(value) if isinstance(value, int) else int(x)


def _as_float(value: Any, key: str, where: str) -> float:
    x = as_number(value, text=True)
    if x is None:
        raise BadInput(f"{key}={short(value)} is not a number", where, f"give {key} as a number")
    return x


def _as_bool(value: Any, key: str, where: str) -> bool:
    # booleans are booleans: the string "no" is truthy in Python and must not be guessed at
    return check_bool(value, where, label=f"{key}=", fix=f"give {key} as true or false (unquoted)")
