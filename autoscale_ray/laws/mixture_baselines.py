"""The two baselines a mixture x scale law is judged against (Hoffmann et al. 2022's
L(N, D) = E + A / N^alpha + B / D^beta, fitted as in `loss_law`):

- mixture-agnostic: one L_j(N, D) per validation domain j over every run, whatever its mixture
  (it predicts the same loss for every mixture);
- per-mixture: one L_jr(N, D) per validation domain and mixture r, on that mixture's runs only (it
  predicts only mixtures that were trained at >= 2 model sizes).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from autoscale_ray.laws.loss_law import fit_loss_law
from autoscale_ray.laws.mixing_law import mixture_groups


def agnostic_predictions(params: ArrayLike, tokens: ArrayLike, losses: ArrayLike,
                         at_params: ArrayLike, at_tokens: ArrayLike) -> np.ndarray:
    """Per-domain L_j(N, D) fitted on all rows, evaluated at (at_params, at_tokens): rows x J."""
    L = np.asarray(losses, dtype=float)
    return np.column_stack([fit_loss_law(L[:, j], tokens, params).predict(at_params, at_tokens)
                            for j in range(L.shape[1])])


def per_mixture_predictions(weights: ArrayLike, params: ArrayLike, tokens: ArrayLike,
                            losses: ArrayLike, at_weights: ArrayLike, at_params: ArrayLike,
                            at_tokens: ArrayLike) -> np.ndarray:
    """Per (mixture, domain) L(N, D) on that mixture's rows, evaluated for each target row whose
    mixture was trained at >= 2 sizes; NaN rows for the others."""
    w, N, D = np.asarray(weights, float), np.asarray(params, float), np.asarray(tokens, float)
    L = np.asarray(losses, dtype=float)
    aw = np.atleast_2d(np.asarray(at_weights, dtype=float))
    aN = np.broadcast_to(np.asarray(at_params, float), (aw.shape[0],))
    aD = np.broadcast_to(np.asarray(at_tokens, float), (aw.shape[0],))
    uniq, group = mixture_groups(w)
    out = np.full((aw.shape[0], L.shape[1]), np.nan)
    for g, mix in enumerate(uniq):
        rows = group == g
        targets = np.all(np.isclose(np.round(aw, 9), mix, atol=1e-9), axis=1)
        if not targets.any() or np.unique(N[rows]).size < 2:
            continue
        for j in range(L.shape[1]):
            out[targets, j] = fit_loss_law(L[rows, j], D[rows], N[rows]).predict(aN[targets],
                                                                              aD[targets])
    return out
