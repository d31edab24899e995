"""Training objectives on packed token sequences: causal LM and masked LM (BERT's 80/10/10).

Both turn a batch of token ids into (model inputs, labels) with -100 at positions that carry no
loss; `token_loss_sum` gives the summed cross-entropy and the count of predicted tokens, so losses
average exactly over tokens across micro-batches and workers. Masks are drawn from explicit
generators (seeded by run seed, step, worker and micro-batch) so training is reproducible and a
resumed run draws the same masks; validation masks are fixed per domain so every checkpoint of
every run is scored on the same positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE = -100


@dataclass(frozen=True)
class TokenIds:
    vocab_size: int   # the tokenizer's vocabulary (the model's may be padded above it)
    pad_id: int
    eod_id: int
    mask_id: int


def causal_batch(ids: torch.Tensor, tokens: TokenIds) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels = inputs (transformers shifts them inside the model); padding carries no loss."""
    return ids, ids.masked_fill(ids == tokens.pad_id, IGNORE)


def mlm_batch(ids: torch.Tensor, tokens: TokenIds, probability: float,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose `probability` of the non-special positions; of those 80% -> [MASK], 10% -> a random
    token, 10% unchanged (Devlin et al. 2019). Labels are the original ids at chosen positions."""
    special = (ids == tokens.pad_id) | (ids == tokens.eod_id)
    draw = torch.rand(ids.shape, generator=generator, device=ids.device)
    chosen = (draw < probability) & ~special
    labels = ids.masked_fill(~chosen, IGNORE)
    how = torch.rand(ids.shape, generator=generator, device=ids.device)
    random_ids = torch.randint(0, tokens.vocab_size, ids.shape, generator=generator, device=ids.device)
    inputs = torch.where(chosen & (how < 0.8), torch.full_like(ids, tokens.mask_id), ids)
    inputs = torch.where(chosen & (how >= 0.8) & (how < 0.9), random_ids, inputs)
    return inputs, labels


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of cross-entropy in nats, number of predicted tokens); causal LMs predict token t+1."""
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
    labels = labels.reshape(-1)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels,
                           ignore_index=IGNORE, reduction="sum")
    return loss, (labels != IGNORE).sum()


def generator_for(device: torch.device, *keys: int) -> torch.Generator:
    """A generator seeded from integer keys (run seed, step, rank, micro-batch ...)."""
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k) + 1) % (2**63 - 1)
    return torch.Generator(device=device).manual_seed(seed)
