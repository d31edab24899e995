"""AutoScale projection against the exact optimum of L = sum_i beta_i N_i^(-gamma_i):
N_i*(t) = (beta_i gamma_i t)^(1/(1+gamma_i)) along the shared scale t = 1/lambda."""

from __future__ import annotations

import numpy as np
import pytest

from autoscale_ray.errors import BadInput
from autoscale_ray.fits.project import project
from autoscale_ray.laws.projection import fit_projection, floor_weights
from autoscale_ray.mixture import Mixture

BETA = np.array([1.3, 0.6, 2.2, 0.9, 1.7])
GAMMA = np.array([0.12, 0.45, 0.3, 0.6, 0.22])


def optimum(t: float) -> np.ndarray:
    return (BETA * GAMMA * t) ** (1 / (1 + GAMMA))


def test_two_scale_rule_reproduces_next_optimum() -> None:
    t1, t2 = 1e8, 7e8
    fit = fit_projection(np.array([optimum(t1), optimum(t2)]))
    np.testing.assert_allclose(fit.quantities(2.0), optimum(t2 ** 2 / t1), rtol=1e-9)
    # through the target-budget path too: the exponent that reaches N(3) is 2
    target = optimum(t2 ** 2 / t1).sum()
    assert fit.exponent(target) == pytest.approx(2.0, abs=1e-9)
    np.testing.assert_allclose(fit.predict(target), optimum(t2 ** 2 / t1), rtol=1e-9)


@pytest.mark.parametrize("t", [2e7, 3e8, 5e10, 1e14])
def test_arbitrary_target_reproduces_optimum(t: float) -> None:
    fit = fit_projection(np.array([optimum(1e8), optimum(7e8)]))
    np.testing.assert_allclose(fit.predict(optimum(t).sum()), optimum(t), rtol=1e-9)


def test_three_or_more_scales_are_exact_on_exact_data() -> None:
    ts = [1e8, 2.5e8, 1.1e9, 4e9]                       # not evenly spaced in log t
    fit = fit_projection(np.array([optimum(t) for t in ts]))
    assert fit.rmse_log < 1e-12
    assert fit.scales[0] == pytest.approx(0.0, abs=1e-12) and fit.scales[-1] == pytest.approx(3.0)
    # s is linear in log t: the latent scale recovers the spacing of the budgets
    np.testing.assert_allclose(np.diff(fit.scales) / np.diff(np.log(ts)),
                               3.0 / np.log(ts[-1] / ts[0]), rtol=1e-9)
    for t in (5e7, 2e10, 1e13):
        np.testing.assert_allclose(fit.predict(optimum(t).sum()), optimum(t), rtol=1e-9)


def test_noisy_scales_fit_by_least_squares() -> None:
    ts = [1e8, 3e8, 1e9, 3e9]
    noise = np.exp(np.random.default_rng(3).normal(0.0, 0.02, (4, 5)))
    fit = fit_projection(np.array([optimum(t) for t in ts]) * noise)
    assert 0.005 < fit.rmse_log < 0.03
    np.testing.assert_allclose(fit.predict(optimum(3e10).sum()), optimum(3e10), rtol=0.1)


def test_shrinking_domain_takes_the_growing_branch() -> None:
    q1, q2 = np.array([10.0, 5.0, 1.0]), np.array([8.0, 9.0, 3.0])   # domain 0 shrinks
    fit = fit_projection(np.array([q1, q2]))
    assert fit.exponent(q1.sum()) == pytest.approx(0.0, abs=1e-9)
    assert fit.exponent(q2.sum()) == pytest.approx(1.0, abs=1e-9)
    big = fit.predict(1e3)
    assert big.sum() == pytest.approx(1e3, rel=1e-12) and big[0] < q2[0]
    with pytest.raises(BadInput, match="below the smallest total"):
        fit.predict(1.0)                               # the total has a minimum above 1 token


def test_bad_sources() -> None:
    with pytest.raises(BadInput, match="positive quantity"):
        fit_projection(np.array([[1.0, 0.0], [2.0, 3.0]]))
    with pytest.raises(BadInput, match="two or more"):
        fit_projection(np.array([[1.0, 2.0]]))
    with pytest.raises(BadInput, match="no domain grows"):
        fit_projection(np.array([[4.0, 2.0], [3.0, 1.0]])).predict(10.0)


def test_floor_weights_keeps_proportions_above_the_floor() -> None:
    w, floored = floor_weights(np.array([0.5, 0.3, 0.15, 0.04, 0.01]), 0.05)
    assert w.sum() == pytest.approx(1.0)
    assert list(floored) == [False, False, False, True, True]
    np.testing.assert_allclose(w[3:], 0.05)
    np.testing.assert_allclose(w[:3] / w[0], np.array([0.5, 0.3, 0.15]) / 0.5)
    same, none = floor_weights(np.array([0.7, 0.3]), 0.0)
    np.testing.assert_allclose(same, [0.7, 0.3]) and not none.any()
    with pytest.raises(BadInput, match="min-weight"):
        floor_weights(np.array([0.5, 0.5]), 0.6)


def test_the_guard_extrapolates_only_what_the_sources_support() -> None:
    """Two sources: a domain whose shift is many sigma (spread 0.001) is projected by the paper's
    rule; a domain a source names as contradicted has no trend of its own: its quantity grows at
    the total's rate between the sources, so it loses share only to the domains that do trend."""
    from autoscale_ray.fits.project import project
    from autoscale_ray.mixture import Mixture

    small = Mixture(tokens=1e6, weights={"a": 0.5, "b": 0.3, "c": 0.2}, extra={"weight_spread": 0.001})
    large = Mixture(tokens=4e6, weights={"a": 0.4, "b": 0.35, "c": 0.25}, extra={"weight_spread": 0.001})
    paper = project([small, large], 1.6e7, guard=False)
    guarded = project([small, large], 1.6e7)
    assert guarded.extra["guard"]["applied"]
    np.testing.assert_allclose(list(guarded.weights.values()), list(paper.weights.values()), atol=2e-3)
    flagged = Mixture(tokens=4e6, weights=large.weights, extra={"weight_spread": 0.001,
                                                               "contradicted": ["a"]})
    held = project([small, flagged], 1.6e7)
    assert held.weights["a"] > 0.35 > paper.weights["a"] + 0.04
    assert held.extra["guard"]["sigma_log"]["a"] == float("inf")
    # no uncertainty known: exactly the paper's rule
    bare = [Mixture(tokens=m.tokens, weights=m.weights) for m in (small, large)]
    assert project(bare, 1.6e7).weights == paper.weights


def test_shares_log_linear_is_the_other_two_point_rule_and_widens_the_interval() -> None:
    from autoscale_ray.laws.projection import shares_log_linear

    # two sources: each share moves by the same amount per e-fold of budget (exact, known answer)
    shares = np.array([[0.5, 0.3, 0.2], [0.4, 0.35, 0.25]])
    w = shares_log_linear(shares, np.array([1e6, 4e6]), 1.6e7)
    assert w == pytest.approx([0.3, 0.4, 0.3])
    # below 0: clipped and renormalised
    assert shares_log_linear(np.array([[0.2, 0.8], [0.1, 0.9]]), np.array([1.0, 2.0]), 16.0) == pytest.approx([0.0, 1.0])
    a = Mixture(tokens=1e6, weights={"x": 0.5, "y": 0.3, "z": 0.2})
    b = Mixture(tokens=4e6, weights={"x": 0.4, "y": 0.35, "z": 0.25})
    mix = project([a, b], 1.6e7)
    other = mix.extra["model_alternatives"]["shares-log-linear"]
    assert other == pytest.approx({"x": 0.3, "y": 0.4, "z": 0.3})
    for d, (lo, hi) in mix.extra["intervals"].items():  # the interval holds both rules' points
        assert lo <= min(mix.weights[d], other[d]) and max(mix.weights[d], other[d]) <= hi
