"""The exact-quota mixture plan of one trial, in pure numpy.

For a budget N tokens, weights w and sequence length L, domain i gets q_i = round(w_i N / L)
sequences (so its tokens are w_i N to within half a sequence). Its sequences are drawn from a fresh
seeded permutation of its training sequences per epoch, so a quota larger than the domain repeats it
(epochs_i = q_i / n_i), and the q_i of all domains are interleaved in a seeded random order.

Each domain's draw depends only on (seed, domain name, epoch), not on the other domains' weights:
for one seed, a smaller quota of a domain is a prefix of a larger one, so perturbation runs of the
same seed differ only in how much of each domain they see.
"""

from __future__ import annotations

import hashlib
import logging
import math
import numbers
import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from autoscale_ray.checks import as_number, check_known, check_mapping, mixture_weights
from autoscale_ray.errors import BadInput

log = logging.getLogger("autoscale_ray")

DEFAULT_MAX_EPOCHS = 4.0
_INTERLEAVE_STREAM = 0x6D6978  # "mix": the interleaving's own random stream


@dataclass(frozen=True)
class MixturePlan:
    """Which training sequence of which domain a trial sees at each position.

    `order` is held compactly as two arrays: `domain_of[k]` (index into `domains`) and
    `index_of[k]` (row in that domain's packed training sequences).
    """

    budget_tokens: int
    seed: int
    weights: Mapping[str, float]      # normalised, every corpus domain (0 where not given)
    quotas: Mapping[str, int]         # sequences per domain
    epochs: Mapping[str, float]       # quota / available training sequences
    n_sequences: int
    seq_len: int
    domains: tuple[str, ...]
    corpus_key: str
    domain_of: np.ndarray = field(repr=False, compare=False)
    index_of: np.ndarray = field(repr=False, compare=False)

    def tokens(self) -> int:
        return self.n_sequences * self.seq_len

    @property
    def order(self) -> np.ndarray:
        """int64 [n_sequences, 2]: (domain index, sequence index) per position."""
        return np.stack([self.domain_of.astype(np.int64), self.index_of.astype(np.int64)], axis=1)

    def quota_tokens(self) -> dict[str, int]:
        return {d: q * self.seq_len for d, q in self.quotas.items()}

    def repeated(self, max_epochs: float = DEFAULT_MAX_EPOCHS) -> list[str]:
        """Domains repeated more than `max_epochs` times (their laws are no longer those of fresh data)."""
        return [d for d, e in self.epochs.items() if e > max_epochs]

    def digest(self) -> str:
        """Hash of the order: equal plans give equal digests."""
        h = hashlib.blake2b(digest_size=16)
        h.update(self.corpus_key.encode())
        h.update(np.ascontiguousarray(self.domain_of, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(self.index_of, dtype=np.int64).tobytes())
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts for a trial's results: quotas, epochs per domain, tokens."""
        return {"budget_tokens": self.budget_tokens, "seed": self.seed, "seq_len": self.seq_len,
                "tokens": self.tokens(), "n_sequences": self.n_sequences,
                "weights": dict(self.weights), "quota_tokens": self.quota_tokens(),
                "epochs": dict(self.epochs)}


def _domain_stream(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def check_budget_and_seed(budget_tokens: Any, seed: Any) -> tuple[int, int]:
    budget = as_number(budget_tokens)
    if budget is None or not (math.isfinite(budget) and budget > 0):
        raise BadInput(f"token budget {budget_tokens!r} is not a positive number", "budget_tokens")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise BadInput(f"seed {seed!r} is not an integer >= 0", "seed")
    return int(round(budget_tokens)), int(seed)


def make_plan(budget_tokens: Any, weights: Mapping[str, Any], seed: Any, *,
              domains: Sequence[str], n_train: Sequence[int], seq_len: int, corpus_key: str,
              max_epochs: float = DEFAULT_MAX_EPOCHS) -> MixturePlan:
    """Plan a trial's stream: exact per-domain quotas, per-epoch permutations, seeded interleaving."""
    budget, seed = check_budget_and_seed(budget_tokens, seed)
    check_mapping(weights, "weights", "weights must be a mapping {domain: weight}", empty=True)
    check_known(weights, domains, "weights")
    w = mixture_weights(weights, "weights")
    w = {d: w.get(d, 0.0) for d in domains}
    # round half up (not numpy's half-to-even) so the rule is the one written in the docs
    quotas = {d: int(math.floor(w[d] * budget / seq_len + 0.5)) for d in domains}
    total = sum(quotas.values())
    if total == 0:
        raise BadInput(f"a budget of {budget} tokens gives no domain a whole sequence of "
                       f"{seq_len} tokens", "budget_tokens", f"use a budget >= {seq_len} tokens")

    per_domain: list[np.ndarray] = []
    for d, n in zip(domains, n_train):
        q = quotas[d]
        if q and n <= 0:
            raise BadInput(f"domain `{d}` has no training sequences", f"weights.{d}",
                           "give it weight 0 or add data")
        reps = -(-q // n) if q else 0
        draws = [np.random.default_rng([seed, _domain_stream(d), e]).permutation(n) for e in range(reps)]
        per_domain.append(np.concatenate(draws)[:q] if draws else np.empty(0, dtype=np.int64))

    labels = np.repeat(np.arange(len(domains), dtype=np.int64), [quotas[d] for d in domains])
    labels = labels[np.random.default_rng([seed, _INTERLEAVE_STREAM]).permutation(total)]
    index_of = np.empty(total, dtype=np.int64)
    for i, seqs in enumerate(per_domain):
        index_of[labels == i] = seqs  # k-th slot of domain i takes its k-th drawn sequence
    dom_dtype = np.uint8 if len(domains) < 256 else np.uint16
    idx_dtype = np.int32 if max(n_train, default=0) < 2**31 else np.int64
    epochs = {d: (quotas[d] / n if n else 0.0) for d, n in zip(domains, n_train)}
    plan = MixturePlan(budget, seed, w, quotas, epochs, total, seq_len, tuple(domains), corpus_key,
                       labels.astype(dom_dtype), index_of.astype(idx_dtype))
    for d in plan.repeated(max_epochs):
        log.warning("domain `%s` is repeated %.1f times for a budget of %d tokens (limit %.1f): "
                    "repetition changes the scaling laws; add data or lower its weight",
                    d, epochs[d], budget, max_epochs)
    return plan
