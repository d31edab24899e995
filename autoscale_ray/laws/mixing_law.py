"""Mixture x scale laws: the loss of each validation domain j as a function of the training mixture
w (on the simplex), the model size N and the tokens D.

- `MixingLaw` / `fit_mixing_law`, at one scale (Ye et al. 2024, "Data Mixing Laws", arXiv 2403.16952):
  L_j(w) = c_j + k_j exp(sum_i t_ji w_i).
- `NestedLaw` / `fit_nested_law`, the paper's nested use of it: per mixture and validation domain a
  Chinchilla L(N, D) = E + A / N^alpha + B / D^beta predicts the loss at the asked (N, D), and the
  mixing law is fitted across the mixtures at that scale (the paper nests a step law and a size law;
  one L(N, D) per mixture fits both axes at once, as Hoffmann et al. 2022 do).
- `JointLaw` / `fit_joint_law`, one law over all runs: L_j(w, N, D) = E_j + exp(sum_i t_ji w_i)
  (A_j / N^alpha_j + B_j / D^beta_j). At fixed (N, D) it is the paper's mixing law with
  k_j = A_j / N^alpha_j + B_j / D^beta_j, so the mixture's effect scales with the reducible loss
  (this project's form, in the family of joint L(w, N, D) laws such as Shukor et al. 2025; it is
  judged by held-out error against the nested form).

The L(N, D) laws and the joint law are fitted like `loss_law`: the sum of Huber(delta = 1e-3) losses
of log-loss residuals, written as a log-sum-exp, minimised from a grid of starts by
`multistart.multistart_minimize` (the mixture entering as linear features); the one-scale mixing
law by least squares on log losses (`fit_mixing_law`). Since the weights sum to 1, t is defined up to a constant
(absorbed by k, A, B): t of the reference domain (the one with the largest mean weight) is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

import numpy as np
from numpy.typing import ArrayLike

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.loss_law import HUBER_DELTA, fit_loss_law
from autoscale_ray.laws.multistart import HuberLSEProblem, epoch_grid, multistart_minimize
from autoscale_ray.laws.noise import SolveAll, solve_each, solve_every
from scipy.optimize import least_squares

FORM_NESTED = "nested"

@dataclass(frozen=True)
class MixingLaw:
    """A mixture law at one scale for J validation domains over m training domains, as a sum of
    Q exponential terms: L_j(w) = sum_q C_jq exp(T_jq . w), C (J x Q) >= 0, T (J x Q x m).
    The paper's L_j(w) = c_j + k_j exp(t_j . w) is C = [c, k], T = [0, t]."""

    C: np.ndarray
    T: np.ndarray

    def predict(self, weights: ArrayLike) -> np.ndarray:
        """Per-domain losses, rows x J, for weights rows x m (or one mixture of m)."""
        w = np.atleast_2d(np.asarray(weights, dtype=float))
        return np.einsum("jq,rjq->rj", self.C, np.exp(np.einsum("jqm,rm->rjq", self.T, w)))

    def gradient(self, weights: ArrayLike) -> np.ndarray:
        """dL_j/dw_i for one mixture, J x m."""
        w = np.asarray(weights, dtype=float)
        return np.einsum("jq,jqm->jm", self.C * np.exp(self.T @ w), self.T)


class MixtureScaleLaw(Protocol):
    """What a caller (the CLI, a search's predictor) needs of a fitted mixture x scale law."""

    form: str

    def at(self, params: float, tokens: float) -> MixingLaw: ...

    def predict(self, weights: ArrayLike, params: ArrayLike, tokens: ArrayLike) -> np.ndarray: ...


def _predict_by_scale(law: MixtureScaleLaw, weights: ArrayLike, params: ArrayLike,
                      tokens: ArrayLike) -> np.ndarray:
    """Rows x J losses, each row at its own (N, D): one `at` per distinct scale."""
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    N = np.broadcast_to(np.asarray(params, dtype=float), (w.shape[0],))
    D = np.broadcast_to(np.asarray(tokens, dtype=float), (w.shape[0],))
    out: np.ndarray | None = None
    for n, d in dict.fromkeys(zip(N.tolist(), D.tolist())):
        rows = (N == n) & (D == d)
        pred = law.at(n, d).predict(w[rows])
        if out is None:
            out = np.empty((w.shape[0], pred.shape[1]))
        out[rows] = pred
    assert out is not None
    return out


def reference_domain(weights: np.ndarray) -> int:
    """The training domain whose t is fixed at 0: the one with the largest mean weight."""
    return int(np.argmax(weights.mean(axis=0)))


def _linear_features(weights: np.ndarray, ref: int) -> np.ndarray:
    return np.delete(weights, ref, axis=1)


def _full_t(t_free: np.ndarray, ref: int) -> np.ndarray:
    return np.insert(t_free, ref, 0.0, axis=-1)


def _check_arrays(weights: ArrayLike, losses: ArrayLike, *scales: ArrayLike
                  ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    L = np.asarray(losses, dtype=float)
    L = L[:, None] if L.ndim == 1 else L
    if L.shape[0] != w.shape[0]:
        raise BadInput(f"{w.shape[0]} mixtures but {L.shape[0]} rows of losses", "losses",
                       "give one row of losses per mixture")
    if not (np.isfinite(L).all() and (L > 0).all()):
        raise BadInput("losses must be finite and > 0 (cross-entropies)", "losses",
                       "drop the rows with missing or non-positive losses")
    if not (np.isfinite(w).all() and (w >= -1e-12).all()):
        raise BadInput("mixture weights must be finite and >= 0", "weights", "give weights >= 0")
    out = []
    for name, v in zip(("params", "tokens"), scales):
        v = np.asarray(v, dtype=float).ravel()
        if v.shape != (w.shape[0],) or not (np.isfinite(v).all() and (v > 0).all()):
            raise BadInput(f"`{name}` must hold one finite value > 0 per row", name,
                           "give every row its model size and token count")
        out.append(v)
    return w, L, out


# ---- the mixing law at one scale ------------------------------------------------------------
def _fit_one_mixing(z: np.ndarray, y: np.ndarray, sw: np.ndarray | None) -> np.ndarray:
    """(log c, log k, t without the reference) minimising sum_r sw_r (y_r - LSE(log c, log k +
    t . z_r))^2 by scipy's least_squares (Levenberg-Marquardt) from three starts (c a fraction of
    the smallest loss, k the rest, t = 0). Least squares, not Huber: at one scale the losses are
    themselves fitted predictions, with no outlying measurement to guard against, and LM
    converges in a few steps where the Huber loss takes a hundred."""
    root = np.sqrt(sw) if sw is not None else np.ones(y.size)
    lo = float(np.exp(y.min()))

    def residual(p: np.ndarray) -> np.ndarray:
        return root * (y - np.logaddexp(p[0], p[1] + z @ p[2:]))

    def jacobian(p: np.ndarray) -> np.ndarray:
        u = p[1] + z @ p[2:]
        s_k = np.exp(u - np.logaddexp(p[0], u))
        return -root[:, None] * np.column_stack([1.0 - s_k, s_k, s_k[:, None] * z])

    best = None
    for frac in (0.3, 0.6, 0.9):
        k0 = max(float(np.exp(y).mean()) - frac * lo, 1e-3 * lo)
        p0 = np.concatenate([[np.log(frac * lo), np.log(k0)], np.zeros(z.shape[1])])
        res = least_squares(residual, p0, jac=jacobian, method="lm", xtol=1e-12, ftol=1e-12)
        if best is None or res.cost < best.cost:
            best = res
    assert best is not None
    return best.x


def fit_mixing_law(weights: ArrayLike, losses: ArrayLike, *,
                   sample_weight: ArrayLike | None = None) -> MixingLaw:
    """Fit L_j(w) = c_j + k_j exp(sum_i t_ji w_i) (Ye et al. 2024) per validation domain j
    to mixtures (rows x m) and their losses (rows x J) at one scale, by least squares on
    log L_rj - LSE(log c_j, log k_j + t_j . w_r) (`sample_weight`: bootstrap multiplicities)."""
    w, L, _ = _check_arrays(weights, losses)
    m = w.shape[1]
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
    n_eff = w.shape[0] if sw is None else int((sw > 0).sum())
    if n_eff < m + 2:
        raise BadInput(f"the mixing law has {m + 1} parameters per domain but only {n_eff} "
                       "mixtures", "mixtures", f"give at least {m + 2} mixtures")
    ref = reference_domain(w)
    z = _linear_features(w, ref)
    J = L.shape[1]
    C, T = np.empty((J, 2)), np.zeros((J, 2, m))
    for j in range(J):
        p = _fit_one_mixing(z, np.log(L[:, j]), sw)
        C[j] = np.exp(p[:2])
        T[j, 1] = _full_t(p[2:], ref)
    return MixingLaw(C, T)


# ---- the nested law -------------------------------------------------------------------------
@dataclass(frozen=True)
class NestedLaw:
    """Per mixture (M x m `mixtures`) and validation domain (J) an L(N, D) law (M x J arrays
    E, A, B, alpha, beta); the mixing law is fitted across the mixtures at the asked scale."""

    mixtures: np.ndarray
    E: np.ndarray
    A: np.ndarray
    B: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    delta: float = HUBER_DELTA
    mixture_weight: np.ndarray | None = None  # bootstrap multiplicities of the mixtures
    form: str = FORM_NESTED

    def scale_losses(self, params: float, tokens: float) -> np.ndarray:
        """Each mixture's predicted losses at (N, D), M x J."""
        return self.E + self.A * params ** -self.alpha + self.B * tokens ** -self.beta

    def at(self, params: float, tokens: float) -> MixingLaw:
        keep = slice(None) if self.mixture_weight is None else self.mixture_weight > 0
        sw = None if self.mixture_weight is None else self.mixture_weight[keep]
        return fit_mixing_law(self.mixtures[keep], self.scale_losses(params, tokens)[keep],
                              sample_weight=sw)

    def predict(self, weights: ArrayLike, params: ArrayLike, tokens: ArrayLike) -> np.ndarray:
        return _predict_by_scale(self, weights, params, tokens)

    def resampled(self, mixture_weight: np.ndarray) -> "NestedLaw":
        """The same per-mixture laws with the mixtures weighted by bootstrap multiplicities."""
        return NestedLaw(self.mixtures, self.E, self.A, self.B, self.alpha, self.beta, self.delta,
                         np.asarray(mixture_weight, dtype=float))

    def params(self) -> dict[str, list]:
        return {"mixtures": self.mixtures.tolist(), "E": self.E.tolist(), "A": self.A.tolist(),
                "B": self.B.tolist(), "alpha": self.alpha.tolist(), "beta": self.beta.tolist()}


def mixture_groups(weights: np.ndarray, decimals: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """The distinct mixtures (M x m) of rows x m weights and each row's index among them."""
    uniq, inverse = np.unique(np.round(weights, decimals), axis=0, return_inverse=True)
    return uniq, inverse.ravel()


def fit_nested_law(weights: ArrayLike, params: ArrayLike, tokens: ArrayLike, losses: ArrayLike, *,
                   delta: float = HUBER_DELTA, starts: np.ndarray | None = None,
                   solve_all: SolveAll = solve_each) -> NestedLaw:
    """Fit one L(N, D) = E + A / N^alpha + B / D^beta per (mixture, validation domain) on that
    mixture's checkpoints (`loss_law.fit_loss_law`); mixtures with fewer than 2 model sizes are
    left out (they cannot inform the size axis). The mixing law is fitted at each asked scale.
    `solve_all` runs the independent per-(mixture, domain) fits (laws/noise.py: in order, or in
    parallel with the same results)."""
    w, L, (N, D) = _check_arrays(weights, losses, params, tokens)
    uniq, group = mixture_groups(w)
    usable = [g for g in range(len(uniq)) if np.unique(N[group == g]).size >= 2]
    if len(usable) < w.shape[1] + 2:
        raise BadInput(f"the nested law needs >= {w.shape[1] + 2} mixtures trained at >= 2 model "
                       f"sizes, found {len(usable)}", "runs",
                       "train more mixtures at two or more sizes")
    J = L.shape[1]

    def fit(unit: int) -> np.ndarray:
        r, j = divmod(int(unit), J)
        rows = group == usable[r]
        law = fit_loss_law(L[rows, j], D[rows], N[rows], delta=delta, starts=starts)
        return np.array([law.E, law.A, law.B, law.alpha, law.beta])

    E, A, B, alpha, beta = np.stack(solve_every(solve_all, fit, len(usable) * J)).T.reshape(5, len(usable), J)
    return NestedLaw(uniq[usable], E, A, B, alpha, beta, delta)


# ---- the joint law --------------------------------------------------------------------------
# Which terms of E + A / N^alpha + B / D^beta carry a mixture coefficient block, in the indices of
# `multistart.HuberLSEProblem` (0: the N term, 1: the D term, 2: the constant E).
JOINT_BLOCKS: Mapping[str, tuple[tuple[int, ...], ...]] = {
    "joint": ((0, 1),),  # E + exp(t . w)(A / N^alpha + B / D^beta)
}
_SLOT = {2: 0, 0: 1, 1: 2}  # HuberLSEProblem term -> position in MixingLaw's (E, N, D) terms


@dataclass(frozen=True)
class JointLaw:
    """L_j(w, N, D) = E_j exp(T_j0 . w) + A_j exp(T_j1 . w) / N^alpha_j + B_j exp(T_j2 . w) / D^beta_j:
    E, A, B, alpha, beta (J,), T (J x 3 x m; rows of terms without a block are 0, and so is the
    reference domain's column)."""

    E: np.ndarray
    A: np.ndarray
    B: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    T: np.ndarray
    reference: int
    objective: np.ndarray  # summed Huber loss per domain
    form: str = "joint"

    def at(self, params: float, tokens: float) -> MixingLaw:
        C = np.column_stack([self.E, self.A * params ** -self.alpha, self.B * tokens ** -self.beta])
        return MixingLaw(C, self.T.copy())

    def predict(self, weights: ArrayLike, params: ArrayLike, tokens: ArrayLike) -> np.ndarray:
        w = np.atleast_2d(np.asarray(weights, dtype=float))
        N = np.asarray(params, dtype=float).reshape(-1, 1)
        D = np.asarray(tokens, dtype=float).reshape(-1, 1)
        mix = np.exp(np.einsum("jqm,rm->rjq", self.T, w))
        return (self.E * mix[..., 0] + self.A * N ** -self.alpha * mix[..., 1]
                + self.B * D ** -self.beta * mix[..., 2])

    def theta(self, j: int) -> np.ndarray:
        """Domain j's optimiser parameters (a, b, e, alpha, beta, then each block's t without the
        reference domain)."""
        blocks = [np.delete(self.T[j, _SLOT[members[0]]], self.reference)
                  for members in JOINT_BLOCKS[self.form]]
        return np.concatenate([[np.log(self.A[j]), np.log(self.B[j]), np.log(self.E[j]),
                                self.alpha[j], self.beta[j]], *blocks])

    def params(self) -> dict[str, list]:
        return {"E": self.E.tolist(), "A": self.A.tolist(), "B": self.B.tolist(),
                "alpha": self.alpha.tolist(), "beta": self.beta.tolist(),
                "T": self.T.tolist(), "reference": self.reference}


def joint_starts(n_linear: int) -> np.ndarray:
    """Epoch's L(N, D) grid (4,500 starts) with the mixture coefficients at 0 (no mixture effect)."""
    grid = epoch_grid(2)
    return np.hstack([grid, np.zeros((len(grid), n_linear))])


def fit_joint_law(weights: ArrayLike, params: ArrayLike, tokens: ArrayLike, losses: ArrayLike, *,
                  form: str = "joint", delta: float = HUBER_DELTA,
                  sample_weight: ArrayLike | None = None, warm: JointLaw | None = None,
                  starts: np.ndarray | None = None, solve_all: SolveAll = solve_each) -> JointLaw:
    """Fit a joint law per validation domain j (`JOINT_BLOCKS[form]` says which terms carry the
    mixture), e.g. "joint": L_j = E_j + exp(t_j . w)(A_j / N^alpha_j + B_j / D^beta_j), by minimising
    sum_r Huber_delta(log L_rj - LSE(a_j + t_j . w_r - alpha_j log N_r, b_j + t_j . w_r - beta_j log D_r,
    e_j)) with `multistart_minimize` from `joint_starts` (or `starts`); with `warm` (a bootstrap
    replicate) from `warm`'s optimum only. `solve_all` runs the per-domain fits (laws/noise.py: in
    order, or in parallel with the same results)."""
    w, L, (N, D) = _check_arrays(weights, losses, params, tokens)
    if form not in JOINT_BLOCKS:
        raise BadInput(f"unknown joint form `{form}`", "form", f"use one of {', '.join(JOINT_BLOCKS)}")
    blocks = JOINT_BLOCKS[form]
    m = w.shape[1]
    if np.unique(N).size < 2:
        raise BadInput("the joint law needs runs at >= 2 model sizes", "params",
                       "add runs of another size")
    n_par = 5 + len(blocks) * (m - 1)
    if w.shape[0] <= n_par:
        raise BadInput(f"the {form} law has {n_par} parameters per domain but only {w.shape[0]} "
                       "evaluations", "runs", "give more checkpoints or runs")
    ref = reference_domain(w) if warm is None else warm.reference
    x = np.column_stack([np.log(N), np.log(D)])
    z = _linear_features(w, ref)
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
    grid = joint_starts(len(blocks) * (m - 1)) if starts is None else np.atleast_2d(starts)
    J = L.shape[1]

    def fit(j: int) -> np.ndarray:  # the domain's optimum, then its objective
        problem = HuberLSEProblem(x, np.log(L[:, j]), delta, sw, z, blocks)
        if warm is None:
            best = multistart_minimize(problem, grid)
        else:  # a replicate starts from the full-data optimum alone
            best = multistart_minimize(problem, warm.theta(j)[None, :], screen=1.0,
                                       rounds=((5, 0.0),), n_polish=1)
        return np.append(best.x, best.fun)

    fitted = np.stack(solve_every(solve_all, fit, J))
    head, objective = fitted[:, :5], fitted[:, -1]
    T = np.zeros((J, 3, m))
    for j in range(J):
        for b, members in enumerate(blocks):
            t = _full_t(fitted[j, 5 + b * (m - 1):5 + (b + 1) * (m - 1)], ref)
            for member in members:
                T[j, _SLOT[member]] = t
    a, b_, e, alpha, beta = head.T
    return JointLaw(E=np.exp(e), A=np.exp(a), B=np.exp(b_), alpha=alpha, beta=beta, T=T,
                    reference=ref, objective=objective, form=form)


def relative_errors(law: MixtureScaleLaw, weights: ArrayLike, params: ArrayLike,
                    tokens: ArrayLike, losses: ArrayLike) -> np.ndarray:
    """|L - L_hat| / L per row and validation domain (rows x J)."""
    L = np.asarray(losses, dtype=float)
    return np.abs(L - law.predict(weights, params, tokens)) / L


def size_holdout(params: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Masks (train, held out) leaving out the largest model size."""
    N = np.asarray(params, dtype=float)
    return N < N.max(), N == N.max()


