"""Where a run evaluates (log-spaced optimizer steps, the last one at the end of the budget) and
which of those evaluations carry a checkpoint.

Scaling-law fits use intermediate checkpoints as data points (Choshen et al. 2024), and they are
spread evenly in log(tokens), so the steps are a geometric sequence from about
`first_fraction` x total to total, rounded to whole optimizer steps and kept strictly increasing.
"""

from __future__ import annotations

import numpy as np


def eval_steps(total_steps: int, count: int, first_fraction: float = 0.02) -> list[int]:
    """`count` strictly increasing optimizer steps in [1, total_steps], log-spaced, last = total.

    A step s means "after s optimizer steps", i.e. after s x global_batch_tokens tokens.
    """
    if count < 1 or total_steps < count:
        raise ValueError(f"cannot place {count} evaluations in {total_steps} steps")
    first = max(1.0, first_fraction * total_steps)
    raw = np.geomspace(first, total_steps, count) if count > 1 else np.array([float(total_steps)])
    steps = [int(round(s)) for s in raw]
    # Rounding can collide: push collisions forward, then cap so the tail still fits before the end
    # (both bounds are strictly increasing, so their minimum is too).
    for i in range(1, count):
        steps[i] = max(steps[i], steps[i - 1] + 1)
    return [min(s, total_steps - (count - 1 - i)) for i, s in enumerate(steps)]


def checkpoint_steps(total_steps: int, evals: set[int], every: int) -> set[int]:
    """The evaluation steps that carry a checkpoint: every `every`-th evaluation in order (by
    position, so a resumed run picks the same ones) and always the last, at `total_steps`."""
    ordered = sorted(evals | {total_steps})
    return {s for i, s in enumerate(ordered, 1) if i % every == 0} | {total_steps}
