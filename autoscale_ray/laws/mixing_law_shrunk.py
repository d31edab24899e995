"""The nested mixture x scale law with each trained mixture's own L(N, D) shrunk toward the mixing
law: an empirical-Bayes combination of two estimators of a mixture's loss at (N, D).

For a mixture r the nested law was fitted on (one L(N, D) per validation domain j, `NestedLaw`), at
the asked scale its own law predicts S_rj(N, D) and the mixing law fitted across all the mixtures
(Ye et al. 2024, arXiv 2403.16952) predicts ML_j(w_r). The shrunk law predicts

    L_j(w_r, N, D) = ML_j(w_r) + lambda (S_rj(N, D) - ML_j(w_r)),   lambda in [0, 1],

and ML_j(w) for a mixture never trained (nor in the optimiser, which needs a law over the simplex:
`at` is the mixing law). lambda = 0 is the nested law, lambda = 1 the per-mixture L(N, D) on the
trained mixtures. As in a random-effects model (James & Stein 1961; Efron & Morris 1975), the
residual S_r - ML(w_r) is the mixture's deviation from the pooled law plus its own fit's error, and
lambda = tau^2 / (tau^2 + sigma^2) weighs the two; here lambda is chosen by held-out error
(`choose_shrinkage`: the law fitted without the largest model size, lambda from `SHRINK_GRID`
minimising the error on that size), since sigma^2, the extrapolation error of a mixture's
L(N, D), has no closed form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from autoscale_ray.laws.mixing_law import MixingLaw, NestedLaw

FORM_SHRUNK = "shrunk"
SHRINK_GRID: tuple[float, ...] = tuple(np.round(np.linspace(0.0, 1.0, 11), 2).tolist())


def trained_index(mixtures: np.ndarray, weights: ArrayLike, atol: float = 1e-9) -> np.ndarray:
    """For each row of weights, the index of the equal row of `mixtures` (M x m), or -1."""
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    same = np.all(np.abs(w[:, None, :] - mixtures[None, :, :]) <= atol, axis=2)
    return np.where(same.any(axis=1), same.argmax(axis=1), -1)


def shrinkage_parts(nested: NestedLaw, weights: ArrayLike, params: ArrayLike,
                    tokens: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Per row (each at its own N, D) and validation domain: the mixing law's ML_j(w) and the
    mixture's own S_rj(N, D) (NaN rows for mixtures the nested law was not fitted on), rows x J."""
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    N = np.broadcast_to(np.asarray(params, dtype=float), (w.shape[0],))
    D = np.broadcast_to(np.asarray(tokens, dtype=float), (w.shape[0],))
    J = nested.E.shape[1]
    ml, own = np.empty((w.shape[0], J)), np.full((w.shape[0], J), np.nan)
    idx = trained_index(nested.mixtures, w)
    for n, d in dict.fromkeys(zip(N.tolist(), D.tolist())):
        rows = (N == n) & (D == d)
        ml[rows] = nested.at(n, d).predict(w[rows])
        hit = rows & (idx >= 0)
        if hit.any():
            own[hit] = nested.scale_losses(n, d)[idx[hit]]
    return ml, own


def shrink(ml: np.ndarray, own: np.ndarray, shrinkage: float) -> np.ndarray:
    """ML + lambda (S - ML) where the mixture's own law exists, ML elsewhere."""
    return np.where(np.isnan(own), ml, ml + shrinkage * (np.nan_to_num(own) - ml))


@dataclass(frozen=True)
class ShrunkLaw:
    """`nested`'s mixing law plus `shrinkage` (lambda) x each trained mixture's own deviation."""

    nested: NestedLaw
    shrinkage: float
    form: str = FORM_SHRUNK

    def at(self, params: float, tokens: float) -> MixingLaw:
        """The mixing law at (N, D) (the smooth law over the simplex, for the optimiser)."""
        return self.nested.at(params, tokens)

    def predict(self, weights: ArrayLike, params: ArrayLike, tokens: ArrayLike) -> np.ndarray:
        return shrink(*shrinkage_parts(self.nested, weights, params, tokens), self.shrinkage)

    def resampled(self, mixture_weight: np.ndarray) -> "ShrunkLaw":
        """The mixing law refitted on bootstrap-weighted mixtures; lambda and own laws kept."""
        return ShrunkLaw(self.nested.resampled(mixture_weight), self.shrinkage)

    def params(self) -> dict[str, object]:
        return {**self.nested.params(), "shrinkage": self.shrinkage}


def choose_shrinkage(nested: NestedLaw, weights: ArrayLike, params: ArrayLike, tokens: ArrayLike,
                     losses: ArrayLike, grid: tuple[float, ...] = SHRINK_GRID
                     ) -> tuple[float, np.ndarray]:
    """The lambda of `grid` with the lowest mean |L - L_hat| / L on held-out rows (a law fitted
    without them: without the largest model size), the smallest on a tie; and each lambda's error."""
    L = np.asarray(losses, dtype=float)
    ml, own = shrinkage_parts(nested, weights, params, tokens)
    errors = np.array([float((np.abs(L - shrink(ml, own, lam)) / L).mean()) for lam in grid])
    return float(grid[int(np.argmin(errors))]), errors
