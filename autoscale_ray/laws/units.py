"""Units and ranges of a runs table's numbers: values that are valid numbers but almost surely in
the wrong unit, as health findings (`autoscale_ray.laws.health.Finding`) that name the run and
column and say how to write the value.

- tokens: counts of tokens. A largest count below 1e4 (fewer tokens than a handful of sequences)
  is a count in billions or millions (`tokens: 1.2` for 1.2B).
- losses: cross-entropy in nats/token. A uniform guess over a vocabulary of V tokens has loss
  log V, so no trained model is above log(1.2M) ~= 14; a larger value is a perplexity (exp of
  the loss) or a typo. Perplexities are >= 1 (exp of a loss >= 0); a smaller one is a loss.
- weights: shares of the run's tokens; rows summing to ~100 are percent, rows summing to
  something else than 1 are normalised on read, which changes every domain's share.
- peak learning rates: AdamW's are below 1 (1e-4 to 1e-2 for LLMs); above 1 is a unit slip.

Pure numpy; the labels (run ids) are passed in.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike

from autoscale_ray.laws.health import Finding

TOKENS_MIN_COUNT = 1e4       # below this largest count, tokens are in billions or millions
LOSS_MAX = math.log(1.2e6)   # ~14.0: a uniform guess over a 1.2M-token vocabulary
WEIGHT_SUM_RTOL = 0.01       # raw weights summing within 1% of 1 are shares
LR_MAX = 1.0


def _named(labels: Sequence[str], rows: np.ndarray, values: np.ndarray, limit: int = 3) -> str:
    shown = ", ".join(f"`{labels[r]}` ({values[r]:.4g})" for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def tokens_findings(tokens: ArrayLike, *, column: str = "tokens") -> list[Finding]:
    """`tokens_units` when the largest token count is below 1e4."""
    t = np.asarray(tokens, dtype=float)
    t = t[np.isfinite(t)]
    if t.size == 0 or t.max() <= 0 or t.max() >= TOKENS_MIN_COUNT:
        return []
    return [Finding("tokens_units", f"`{column}` is at most {t.max():.4g}: counts that small look "
                                    "like billions (or millions) of tokens",
                    f"give `{column}` as token counts (1.2e9, not 1.2)")]


def loss_findings(values: ArrayLike, labels: Sequence[str], *, column: str) -> list[Finding]:
    """`loss_units` for losses above log(1.2M) nats/token: perplexities, or a typo."""
    v = np.asarray(values, dtype=float)
    high = np.flatnonzero(np.isfinite(v) & (v > LOSS_MAX))
    if high.size == 0:
        return []
    every = high.size == np.isfinite(v).sum()
    what = ("every value is" if every else f"run(s) {_named(labels, high, v)}:") + \
        f" above {LOSS_MAX:.3g} nats/token, the loss of a uniform guess over a 1.2M-token vocabulary"
    fix = ("give cross-entropy in nats/token: the log of a perplexity" if every else
           "check those values for a typo (37 for 3.7) or a perplexity among losses")
    return [Finding("loss_units", f"column `{column}`: {what}"
                    + ("; they look like perplexities" if every else ""), fix)]


def ppl_findings(values: ArrayLike, labels: Sequence[str], *, column: str) -> list[Finding]:
    """`ppl_units` for perplexities below 1 (a perplexity is exp of a loss >= 0): losses."""
    v = np.asarray(values, dtype=float)
    low = np.flatnonzero(np.isfinite(v) & (v < 1.0))
    if low.size == 0:
        return []
    return [Finding("ppl_units", f"column `{column}`: run(s) {_named(labels, low, v)} below 1, "
                                 "which no perplexity is; they look like losses",
                    "give perplexities (exp of the loss), or use the loss as the metric")]


def weight_sum_findings(sums: ArrayLike, labels: Sequence[str]) -> list[Finding]:
    """`weight_units` for rows of raw weights summing to ~100 (percent), `weight_sums` for rows
    summing to something else than 1 (normalised on read, so every share changes)."""
    s = np.asarray(sums, dtype=float)
    if s.size == 0:
        return []
    percent = np.flatnonzero(np.abs(s / 100.0 - 1.0) <= 0.05)
    other = np.flatnonzero((np.abs(s - 1.0) > WEIGHT_SUM_RTOL) & (np.abs(s / 100.0 - 1.0) > 0.05))
    out = []
    if percent.size:
        out.append(Finding("weight_units", f"the weights of run(s) {_named(labels, percent, s)} "
                                           "sum to ~100: they look like percent",
                           "nothing changes in the fit (weights are normalised per row), but "
                           "check the other columns' units; write shares summing to 1"))
    if other.size:
        out.append(Finding("weight_sums", f"the weights of run(s) {_named(labels, other, s)} do "
                                          "not sum to 1 and were normalised on read, which changes "
                                          "every domain's share (and its token quantity)",
                           "give each run's `w.<domain>` as shares of its own total tokens "
                           "(summing to 1), with `budget` that total"))
    return out


def lr_findings(lr: ArrayLike, labels: Sequence[str], *, column: str = "lr") -> list[Finding]:
    """`lr_units` for peak learning rates above 1."""
    v = np.asarray(lr, dtype=float)
    high = np.flatnonzero(np.isfinite(v) & (v > LR_MAX))
    if high.size == 0:
        return []
    return [Finding("lr_units", f"column `{column}`: run(s) {_named(labels, high, v)} have a peak "
                                "learning rate above 1",
                    "give the peak LR itself (3e-4), not scaled by 1e3 or in another unit")]
