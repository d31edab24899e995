"""Mixture x scale laws (autoscale_ray.laws.mixing_law) and the optimal mixture
(autoscale_ray.laws.mixture_optimum) against known answers: parameters recovered from surfaces the
laws generate, the optimiser's closed-form optimum, a data cap that binds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import approx_fprime, brentq

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.mixing_law import (JointLaw, MixingLaw, fit_joint_law, fit_mixing_law,
                                           fit_nested_law)
from autoscale_ray.laws.mixing_law_shrunk import ShrunkLaw, choose_shrinkage, trained_index
from autoscale_ray.laws.mixture_optimum import epoch_caps, optimal_mixture
from autoscale_ray.laws.multistart import HuberLSEProblem, batch_objective, batch_objective_grad

# A known joint law over 3 training domains and 2 validation domains.
TRUE = dict(E=np.array([1.6, 2.1]), A=np.array([400.0, 250.0]), B=np.array([300.0, 500.0]),
            alpha=np.array([0.33, 0.3]), beta=np.array([0.28, 0.3]))
TRUE_T = np.array([[-0.8, 0.4, 0.0], [0.3, -1.2, 0.0]])  # reference domain (largest mean weight) last


def true_law() -> JointLaw:
    T = np.zeros((2, 3, 3))
    T[:, 1] = T[:, 2] = TRUE_T
    return JointLaw(**TRUE, T=T, reference=2, objective=np.zeros(2))


def mixtures(n: int = 10, seed: int = 0) -> np.ndarray:
    """n mixtures of 3 domains around (0.25, 0.25, 0.5): domain 2 has the largest mean weight."""
    return np.random.default_rng(seed).dirichlet([2.5, 2.5, 5.0], size=n)


def synthetic_runs(sizes=(2e7, 5e7, 1e8), n_mix: int = 10, per_run: int = 8, noise: float = 0.0,
                   seed: int = 0) -> pd.DataFrame:
    """A runs table from `true_law`: each mixture at each size, checkpoints 10%..100% of 20 N."""
    rng = np.random.default_rng(seed)
    law, rows = true_law(), []
    for r, w in enumerate(mixtures(n_mix, seed)):
        for n in sizes:
            for d in 20 * n * np.logspace(-1, 0, per_run):
                loss = law.predict(w, n, d)[0] * np.exp(rng.normal(0, noise, 2)) if noise else \
                    law.predict(w, n, d)[0]
                rows.append({"run_id": f"m{r}-n{n:g}", "params": n, "tokens": round(d),
                             **{f"w.d{i}": w[i] for i in range(3)},
                             "loss.v0": loss[0], "loss.v1": loss[1]})
    return pd.DataFrame(rows)


def arrays(frame: pd.DataFrame):
    return (frame[["w.d0", "w.d1", "w.d2"]].to_numpy(), frame["params"].to_numpy(float),
            frame["tokens"].to_numpy(float), frame[["loss.v0", "loss.v1"]].to_numpy())


def test_linear_features_objective_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    x = np.column_stack([rng.uniform(16, 24, 40), rng.uniform(18, 27, 40)])
    z = rng.dirichlet(np.ones(4), 40)[:, :3]
    y = rng.uniform(0.6, 1.6, 40)
    for blocks in (None, ((0,), (1,), (2,)), ((0, 1, 2),)):
        prob = HuberLSEProblem(x, y, 1e-3, rng.integers(0, 3, 40).astype(float), z, blocks)
        th = np.concatenate([rng.uniform(0, 12, 2), [0.3], rng.uniform(0.05, 1, 2),
                             rng.normal(0, 1, prob.n_linear)])
        f, g = batch_objective_grad(th[None], prob)
        assert f[0] == pytest.approx(batch_objective(th[None], prob)[0], rel=1e-12)
        num = approx_fprime(th, lambda t: batch_objective(t[None], prob)[0], 1e-7)
        np.testing.assert_allclose(g[0], num, atol=1e-5 * max(1.0, np.abs(num).max()))


def test_mixing_law_recovers_its_parameters():
    w = mixtures(20, seed=3)
    c, k, t = np.array([2.0, 1.5]), np.array([0.6, 0.9]), np.array([[-1.5, 0.5, 0.2], [0.7, -2.0, 0.1]])
    L = c + k * np.exp(w @ t.T)
    fit = fit_mixing_law(w, L)
    # t is defined up to a constant (absorbed by k): compare t - t_ref and k exp(t_ref)
    np.testing.assert_allclose(fit.C[:, 0], c, rtol=1e-4)
    np.testing.assert_allclose(fit.T[:, 1], t - t[:, [2]], atol=1e-4)
    np.testing.assert_allclose(fit.C[:, 1], k * np.exp(t[:, 2]), rtol=1e-4)
    np.testing.assert_allclose(fit.predict(mixtures(5, seed=9)),
                               c + k * np.exp(mixtures(5, seed=9) @ t.T), rtol=1e-6)
    with pytest.raises(BadInput, match="only 4 mixtures"):
        fit_mixing_law(w[:4], L[:4])


def test_joint_law_recovers_a_known_surface():
    w, N, D, L = arrays(synthetic_runs(noise=0.001))
    fit = fit_joint_law(w, N, D, L)
    assert fit.reference == 2
    np.testing.assert_allclose(fit.alpha, TRUE["alpha"], atol=0.03)
    np.testing.assert_allclose(fit.beta, TRUE["beta"], atol=0.03)
    np.testing.assert_allclose(fit.E, TRUE["E"], rtol=0.03)
    np.testing.assert_allclose(fit.T[:, 1], TRUE_T, atol=0.1)
    np.testing.assert_allclose(fit.T[:, 0], 0.0)  # no mixture block on E in this form
    # extrapolation to 10x the largest size, at an unseen mixture
    w_new, big = np.array([[0.5, 0.1, 0.4]]), (1e9, 2e10)
    np.testing.assert_allclose(fit.predict(w_new, *big), true_law().predict(w_new, *big), rtol=5e-3)
    np.testing.assert_allclose(fit.at(*big).predict(w_new), fit.predict(w_new, *big), rtol=1e-12)


def test_nested_law_predicts_a_larger_size_at_unseen_mixtures():
    w, N, D, L = arrays(synthetic_runs(n_mix=8))
    nested = fit_nested_law(w, N, D, L)
    assert nested.mixtures.shape == (8, 3)
    w_new, big = np.array([[0.3, 0.3, 0.4], [0.1, 0.2, 0.7]]), (3e8, 6e9)
    np.testing.assert_allclose(nested.predict(w_new, *big), true_law().predict(w_new, *big),
                               rtol=5e-3)
    # a bootstrap replicate that drops mixtures refits the mixing law on the rest
    drawn = nested.resampled(np.array([2.0, 0, 1, 1, 0, 2, 1, 1]))
    assert drawn.predict(w_new, *big).shape == (2, 2)


def test_nested_law_needs_mixtures_at_two_sizes():
    w, N, D, L = arrays(synthetic_runs(sizes=(2e7,), n_mix=8))
    with pytest.raises(BadInput, match="2 model sizes"):
        fit_nested_law(w, N, D, L)


def offset_runs(by: str, sd: float, seed: int) -> pd.DataFrame:
    """`synthetic_runs` at 4 sizes (so a fit without the largest still has 3) with every loss of a
    mixture (by="mixture": a real mixture effect the mixing law cannot express) or of a run
    (by="run_id": run noise, independent between a mixture's sizes) times exp(u), u ~ N(0, sd)."""
    frame = synthetic_runs(sizes=(2e7, 5e7, 1e8, 2e8), n_mix=12, per_run=6, seed=seed)
    frame["mixture"] = frame["run_id"].str.split("-").str[0]
    keys = frame[by].astype(str)
    rng = np.random.default_rng(seed + 10)
    u = {k: rng.normal(0, sd) for k in keys.unique()}
    frame[["loss.v0", "loss.v1"]] *= np.exp(keys.map(u).to_numpy())[:, None]
    return frame


def _shrinkage_on_the_largest_size(frame: pd.DataFrame):
    w, N, D, L = arrays(frame)
    small, big = N < N.max(), N == N.max()
    nested = fit_nested_law(w[small], N[small], D[small], L[small])
    return nested, (w[big], N[big], D[big], L[big]), choose_shrinkage(nested, w[big], N[big],
                                                                      D[big], L[big])


def test_shrinkage_keeps_each_mixtures_own_law_when_the_mixing_law_is_wrong():
    # each mixture's losses are the joint law's x a fixed exp(u_r): its own L(N, D) is exact, the
    # mixing law across mixtures cannot follow the random u_r
    nested, (w, N, D, L), (lam, errors) = _shrinkage_on_the_largest_size(offset_runs("mixture", 0.03, 0))
    assert lam == 1.0 and errors[-1] < 1e-4 and errors[0] > 0.01  # measured 0.0% vs 1.7%
    law = ShrunkLaw(nested, lam)
    np.testing.assert_allclose(law.predict(w, N, D), L, rtol=1e-3)
    # an untrained mixture gets the mixing law; the optimiser's law is the mixing law
    w_new = np.array([[0.3, 0.3, 0.4]])
    np.testing.assert_allclose(law.predict(w_new, 1e9, 2e10), nested.predict(w_new, 1e9, 2e10))
    np.testing.assert_allclose(law.at(1e9, 2e10).predict(w_new), nested.predict(w_new, 1e9, 2e10))
    assert trained_index(nested.mixtures, np.vstack([nested.mixtures[3], w_new])).tolist() == [3, -1]


def test_shrinkage_keeps_the_mixing_law_when_own_laws_fit_run_noise():
    # the mixing law is exact at every scale; each run is off by its own exp(u): a mixture's own
    # L(N, D) extrapolates its runs' noise, the mixing law pools it over the 12 mixtures
    nested, _, (lam, errors) = _shrinkage_on_the_largest_size(offset_runs("run_id", 0.01, 1))
    assert lam <= 0.2 and errors.min() < errors[-1] - 0.003  # measured 0.0: 1.53% vs 2.18% at 1
    law = ShrunkLaw(nested, lam)
    assert law.params()["shrinkage"] == lam
    assert law.resampled(np.ones(len(nested.mixtures))).shrinkage == lam


def _separable(a: np.ndarray, k: np.ndarray) -> MixingLaw:
    """L_j(w) = 1 + k_j exp(-a_j w_j): validation domain j depends on training domain j only."""
    m = a.size
    T = np.zeros((m, 2, m))
    T[np.arange(m), 1, np.arange(m)] = -a
    return MixingLaw(np.column_stack([np.ones(m), k]), T)


def _kkt(a: np.ndarray, k: np.ndarray, fixed: dict[int, float] | None = None) -> np.ndarray:
    """Closed form of argmin sum_j k_j exp(-a_j w_j) on the simplex (interior): k_j a_j
    exp(-a_j w_j) = lambda for every free j; `fixed` weights held at their value."""
    fixed = fixed or {}
    free = [j for j in range(a.size) if j not in fixed]
    mass = 1.0 - sum(fixed.values())

    def w_of(log_lam: float) -> np.ndarray:
        return np.array([(np.log(k[j] * a[j]) - log_lam) / a[j] for j in free])

    log_lam = brentq(lambda s: w_of(s).sum() - mass, -50, 50)
    out = np.zeros(a.size)
    out[free] = w_of(log_lam)
    for j, v in fixed.items():
        out[j] = v
    return out


def test_optimiser_finds_the_closed_form_optimum():
    a, k = np.array([3.0, 5.0, 2.0, 4.0]), np.full(4, 2.0)
    best = optimal_mixture(_separable(a, k))
    expected = _kkt(a, k)
    assert (expected > 0).all()
    np.testing.assert_allclose(best.weights, expected, atol=1e-5)
    assert best.weights.sum() == pytest.approx(1.0) and best.at_cap == () and best.at_zero == ()
    assert best.objective == pytest.approx(float((1 + k * np.exp(-a * expected)).mean()))


def test_a_data_cap_binds_when_the_optimum_exceeds_it():
    a, k = np.array([3.0, 5.0, 2.0, 4.0]), np.full(4, 2.0)
    free = _kkt(a, k)
    D, max_epochs = 1e10, 4.0
    cap = 0.5 * free[1]
    available = np.array([np.inf, cap * D / max_epochs, np.inf, np.inf])
    upper = epoch_caps(D, available, max_epochs)
    np.testing.assert_allclose(upper, [1.0, cap, 1.0, 1.0])
    best = optimal_mixture(_separable(a, k), upper=upper)
    assert best.at_cap == (1,)
    np.testing.assert_allclose(best.weights, _kkt(a, k, {1: cap}), atol=1e-5)
    # a cap above the optimum does not bind
    loose = optimal_mixture(_separable(a, k), upper=np.array([1.0, 2 * free[1], 1.0, 1.0]))
    assert loose.at_cap == () and loose.weights == pytest.approx(free, abs=1e-5)
    with pytest.raises(BadInput, match="caps allow at most"):
        optimal_mixture(_separable(a, k), upper=np.full(4, 0.2))


def test_optimiser_weights_by_the_eval_mixture_and_is_reproducible():
    a, k = np.array([3.0, 5.0, 2.0, 4.0]), np.full(4, 2.0)
    e = np.array([0.4, 0.2, 0.2, 0.2])
    one = optimal_mixture(_separable(a, k), e, seed=3)
    np.testing.assert_allclose(one.weights, _kkt(a, k * e), atol=1e-5)  # e_j k_j: the same KKT
    assert one.weights[0] > _kkt(a, k)[0]
    np.testing.assert_array_equal(one.weights, optimal_mixture(_separable(a, k), e, seed=3).weights)
