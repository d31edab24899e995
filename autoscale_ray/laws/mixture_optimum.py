"""The mixture that minimises a mixing law's predicted objective on the simplex, under data limits.

Minimise f(w) = sum_j e_j L_j(w) (e: the eval mixture over validation domains, uniform for the mean)
subject to sum_i w_i = 1 and 0 <= w_i <= u_i, where a domain with U_i available tokens trained for
D tokens at most `max_epochs` times gives u_i = min(1, max_epochs U_i / D) (repetition loses value
beyond about 4 epochs: Muennighoff et al. 2023, "Scaling Data-Constrained Language Models"). Solved
with scipy's SLSQP and the law's analytic gradient from several starts (the simplex's centre and
seeded Dirichlet draws, clipped into the box), best kept; the law is smooth but need not be convex.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import Bounds, LinearConstraint, minimize

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.mixing_law import MixingLaw

BOUND_TOL = 1e-6


@dataclass(frozen=True)
class MixtureOptimum:
    """The optimal weights (m,), their predicted objective and per-domain losses, the domains at
    their data cap (`at_cap`) or at 0 (`at_zero`), as indices."""

    weights: np.ndarray
    objective: float
    losses: np.ndarray
    at_cap: tuple[int, ...]
    at_zero: tuple[int, ...]


def epoch_caps(tokens: float, available: ArrayLike | None, max_epochs: float) -> np.ndarray | None:
    """u_i = min(1, max_epochs x U_i / D) for available tokens U (inf: unlimited), or None."""
    if available is None:
        return None
    U = np.asarray(available, dtype=float)
    if not (max_epochs > 0 and np.isfinite(max_epochs)):
        raise BadInput(f"max epochs must be a finite number > 0, got {max_epochs}", "--max-epochs")
    if (U < 0).any() or np.isnan(U).any():
        raise BadInput("available tokens must be >= 0", "--available", "give token counts")
    return np.minimum(1.0, max_epochs * U / tokens)


def _starts(m: int, upper: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = np.vstack([np.full(m, 1.0 / m), rng.dirichlet(np.ones(m), size=max(0, n - 1))])
    out = []
    for w in raw:  # into the box: clip, then spread the missing mass over the slack
        w = np.minimum(w, upper)
        for _ in range(m):
            gap = 1.0 - w.sum()
            room = upper - w
            if gap <= 1e-12 or room.sum() <= 0:
                break
            w = w + room * min(1.0, gap / room.sum())
        out.append(w)
    return np.asarray(out)


def optimal_mixture(law: MixingLaw, eval_weights: ArrayLike | None = None,
                    upper: ArrayLike | None = None, *, n_starts: int = 8,
                    seed: int = 0) -> MixtureOptimum:
    """argmin_w sum_j e_j L_j(w) on {w >= 0, w <= upper, sum w = 1} (see the module docstring)."""
    J, m = law.C.shape[0], law.T.shape[2]
    e = np.full(J, 1.0 / J) if eval_weights is None else np.asarray(eval_weights, dtype=float)
    if e.shape != (J,) or (e < 0).any() or e.sum() <= 0:
        raise BadInput(f"the eval weights must be {J} numbers >= 0, not all 0", "--objective")
    e = e / e.sum()
    u = np.ones(m) if upper is None else np.clip(np.asarray(upper, dtype=float), 0.0, 1.0)
    if u.sum() < 1.0 - 1e-9:
        raise BadInput(f"the data caps allow at most {u.sum():.3g} of the target's tokens "
                       "(sum of max_epochs x available / tokens)", "--available",
                       "give more available tokens, a larger --max-epochs or fewer target tokens")

    def fun(w: np.ndarray) -> tuple[float, np.ndarray]:
        return float(law.predict(w)[0] @ e), e @ law.gradient(w)

    best = None
    for w0 in _starts(m, u, n_starts, seed):
        res = minimize(fun, w0, jac=True, method="SLSQP", bounds=Bounds(0.0, u),
                       constraints=[LinearConstraint(np.ones((1, m)), 1.0, 1.0)],
                       options={"maxiter": 500, "ftol": 1e-12})
        w = np.clip(res.x, 0.0, u)
        w = w / w.sum()
        value = fun(w)[0]
        if best is None or value < best[1]:
            best = (w, value)
    assert best is not None
    w, value = best
    return MixtureOptimum(weights=w, objective=value, losses=law.predict(w)[0],
                          at_cap=tuple(int(i) for i in np.flatnonzero((u < 1) & (w >= u - BOUND_TOL))),
                          at_zero=tuple(int(i) for i in np.flatnonzero(w <= BOUND_TOL)))
