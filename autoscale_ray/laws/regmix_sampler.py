"""RegMix's random-mixture sampler (Liu et al. 2024, arXiv 2407.01492; sail-sg/regmix,
mixture_config/synthesize_mixture.py): the proxy-run design of the regression baseline."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

# RegMix's sampler settings (sail-sg/regmix, mixture_config/synthesize_mixture.py)
REGMIX_TEMPERATURE = 0.5      # prior ** 0.5, renormalised: smooths a skewed token prior
REGMIX_STRENGTHS = tuple(float(s) for s in np.logspace(math.log10(0.1), math.log10(5.0), 15))
REGMIX_MAX_USAGE = 15.0       # a domain's weight may not exceed 15x its token share (epochs bound)
REGMIX_MINIMUM = 2e-4         # weights below this are set to zero


def regmix_dirichlet(prior: np.ndarray, n: int, rng: np.random.Generator, *,
                     temperature: float = REGMIX_TEMPERATURE,
                     strengths: Sequence[float] = REGMIX_STRENGTHS,
                     max_usage: float = REGMIX_MAX_USAGE,
                     minimum: float = REGMIX_MINIMUM) -> np.ndarray:
    """`n` random mixtures as RegMix draws them (Liu et al. 2024): w ~ Dirichlet(s * p_T) with
    p_T = prior^temperature / sum, the strength s drawn uniformly from a log grid over [0.1, 5]
    (small s: sparse mixtures; large s: close to p_T); a draw with some w_i > min(max_usage * prior_i, 1)
    is rejected; weights below `minimum` are zeroed and the row renormalised. Domains with a zero
    prior stay at zero. (RegMix also rounds to multiples of `minimum` and drops duplicates before
    writing configs; here the weights stay continuous.)"""
    prior = np.asarray(prior, dtype=float)
    live = prior > 0
    tempered = np.zeros_like(prior)
    tempered[live] = prior[live] ** temperature
    tempered /= tempered.sum()
    bound = np.minimum(max_usage * prior, 1.0)
    grid = np.asarray(strengths, dtype=float)
    out: list[np.ndarray] = []
    while len(out) < n:
        need = n - len(out)
        s = grid[rng.integers(len(grid), size=2 * need + 8)]
        w = np.zeros((len(s), len(prior)))
        w[:, live] = rng.gamma(s[:, None] * tempered[live][None, :])  # Dirichlet via gammas
        sums = w.sum(axis=1)
        # a gamma draw can underflow to all zeros at tiny strengths: redraw those rows
        w = w[sums > 0] / sums[sums > 0, None]
        w = w[(w <= bound + 1e-12).all(axis=1)]
        w[w < minimum] = 0.0
        w = w[w.sum(axis=1) > 0]
        out.extend(w / w.sum(axis=1, keepdims=True))
    return np.asarray(out[:n])
