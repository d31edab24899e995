"""Data availability: a mixture at a target budget may not repeat any domain's data beyond a cap.

Muennighoff et al. 2023 (Scaling Data-Constrained Language Models, arXiv 2305.16264) find that up
to about 4 epochs repeated tokens are worth almost as much as fresh ones, and that their value
decays quickly beyond. A mixture w at target budget T repeats domain i's U_i available tokens
w_i T / U_i times, so the cap is w_i <= u_i = E_max U_i / T. Capped domains are held at u_i and the
budget they cannot take goes to the others in proportion to their weights (water filling: repeated
until no domain exceeds its cap). When sum_i u_i < 1 no mixture respects the cap: every domain is
held at its cap share u_i / sum_j u_j, i.e. all domains repeat T / sum_i U_i epochs, and the result
says infeasible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_EPOCHS = 4.0  # Muennighoff et al. 2023: repeated data keeps most of its value up to ~4 epochs


@dataclass(frozen=True)
class EpochCap:
    weights: np.ndarray      # the capped mixture, summing to 1
    capped: np.ndarray       # mask: domains held at their cap
    epochs: np.ndarray       # epochs of each domain's data at the target (inf: no data known)
    feasible: bool           # False: the data cannot fill T within the cap


def cap_epochs(weights: np.ndarray, target: float, available: np.ndarray,
               max_epochs: float = MAX_EPOCHS) -> EpochCap:
    """Hold every w_i <= max_epochs U_i / T and redistribute the rest (module docstring).
    `available` U_i in tokens; np.inf for a domain whose size is not known (never capped)."""
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    u_tokens = np.asarray(available, dtype=float)
    cap = max_epochs * u_tokens / float(target)
    if cap.sum() < 1.0:  # not enough data for any mixture: spread the overshoot evenly in epochs
        out = cap / cap.sum()
        return EpochCap(out, np.ones(len(w), dtype=bool), out * target / u_tokens, False)
    capped = np.zeros(len(w), dtype=bool)
    out = w.copy()
    for _ in range(len(w)):  # the capped set only grows
        new = capped | (out > cap * (1 + 1e-12))
        if (new == capped).all():
            break
        capped = new
        free = ~capped
        rest = 1.0 - cap[capped].sum()
        out = np.where(capped, cap, w * rest / w[free].sum() if w[free].sum() > 0 else 0.0)
    with np.errstate(divide="ignore"):
        epochs = np.where(np.isfinite(u_tokens), out * target / u_tokens, 0.0)
    return EpochCap(out, capped, epochs, True)
