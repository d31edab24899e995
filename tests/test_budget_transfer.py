"""The budget transfer law (autoscale_ray.laws.budget_transfer) and its use as model uncertainty of
the projected mixture (autoscale_ray.fits.budget_law): recovery of a known law from DDO designs at
two budgets, its optimum at a larger budget against the true one, data caps, bad input, the
equally-good-model check (used on its own family, refused on a surface of another form), and the
predictor's intervals holding it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from autoscale_ray.errors import BadInput
from autoscale_ray.fits.budget_law import budget_law_alternative, pooled_noise_sd, widen
from autoscale_ray.laws.budget_transfer import budget_transfer_optimum, fit_budget_transfer
from autoscale_ray.runs import validate

DOMAINS = ("web", "wiki", "code")
T = np.array([[1.0, 0.05, 0.0],
              [0.4, 1.0, 0.02],
              [0.03, 0.06, 1.0]])      # web's tokens lower wiki's loss a lot
A = np.array([0.3, 0.2, 0.5])           # in units of 1e6 tokens
BETA = np.array([0.3, 0.7, 0.45])
E = np.array([2.0, 1.5, 1.0])
SCALE = np.array([3.0, 2.0, 2.5])
UNIT = 1e6


def true_losses(q: np.ndarray, t: np.ndarray = T) -> np.ndarray:
    return E + SCALE * ((np.atleast_2d(q) / UNIT) @ t.T + A) ** (-BETA)


def ddo_quantities(budgets=(3e6, 1.2e7)) -> np.ndarray:
    """DDO's fixed-others design (base, x0.2 and x3 of each domain) at each budget, uniform base."""
    rows = []
    for n in budgets:
        base = np.full(3, n / 3)
        rows.append(base)
        for i in range(3):
            for f in (0.2, 3.0):
                q = base.copy()
                q[i] *= f
                rows.append(q)
        rows.append(base)  # a replicate of the base
    return np.array(rows)


def true_optimum(tokens: float, t: np.ndarray = T) -> np.ndarray:
    best = None
    for w0 in [np.full(3, 1 / 3), *np.random.default_rng(0).dirichlet(np.ones(3), 8)]:
        r = minimize(lambda w: float(true_losses(w * tokens, t).mean()), w0, method="SLSQP",
                     bounds=[(0, 1)] * 3, constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
                     options={"ftol": 1e-15, "maxiter": 500})
        if best is None or r.fun < best.fun:
            best = r
    return best.x / best.x.sum()


def test_recovers_the_law_from_two_budgets_and_its_optimum_far_beyond_them() -> None:
    q = ddo_quantities()
    law = fit_budget_transfer(q, true_losses(q), ref=UNIT)
    assert law.rmse.max() < 1e-6
    np.testing.assert_allclose(law.transfer, T, atol=2e-3)
    np.testing.assert_allclose(law.b, BETA, rtol=1e-2)
    np.testing.assert_allclose(law.e, E, rtol=1e-2)
    # 30x the larger budget: the law's optimum is the surface's
    np.testing.assert_allclose(budget_transfer_optimum(law, 3.6e8), true_optimum(3.6e8), atol=2e-3)
    # the token unit is a parametrisation: another one gives the same law
    other = fit_budget_transfer(q, true_losses(q))
    np.testing.assert_allclose(other.losses(q[:3] * 50), true_losses(q[:3] * 50), rtol=1e-4)


def test_optimum_respects_data_caps_and_the_simplex() -> None:
    q = ddo_quantities()
    law = fit_budget_transfer(q, true_losses(q), ref=UNIT)
    free = budget_transfer_optimum(law, 3.6e8)
    assert free[0] > 0.5  # web feeds wiki too
    cap = free[0] / 2
    capped = budget_transfer_optimum(law, 3.6e8, caps=np.array([cap, 1.0, 1.0]))
    assert capped[0] == pytest.approx(cap, abs=1e-9) and capped.sum() == pytest.approx(1.0)
    assert (capped >= 0).all() and capped[1] + capped[2] > free[1] + free[2] + 0.2  # the rest went to the others
    with pytest.raises(BadInput, match="caps sum to less"):
        budget_transfer_optimum(law, 3.6e8, caps=np.array([0.2, 0.2, 0.2]))
    with pytest.raises(BadInput, match="cannot express metric"):
        budget_transfer_optimum(law, 3.6e8, metric="accuracy")


def test_bad_input_is_one_clear_error() -> None:
    q = ddo_quantities()
    y = true_losses(q)
    with pytest.raises(BadInput, match="distinct token quantities"):
        fit_budget_transfer(np.column_stack([q[:, :2], np.full(len(q), 1e6)]), y)
    with pytest.raises(BadInput, match="runs for the"):
        fit_budget_transfer(q[:5], y[:5])
    with pytest.raises(BadInput, match="positive losses"):
        fit_budget_transfer(q, -y)


def _table(q: np.ndarray, losses: np.ndarray) -> object:
    budget = q.sum(axis=1)
    frame = pd.DataFrame({"run_id": [f"r{k}" for k in range(len(q))], "tokens": budget, "budget": budget,
                          **{f"w.{d}": q[:, i] / budget for i, d in enumerate(DOMAINS)},
                          **{f"loss.{d}": losses[:, i] for i, d in enumerate(DOMAINS)},
                          "loss": losses.mean(axis=1)})
    return validate(frame, "<test>", require=["loss"])


def test_an_equally_good_model_joins_the_intervals_and_holds_the_truth() -> None:
    q = ddo_quantities()
    noise = 0.004
    y = true_losses(q) + np.random.default_rng(3).normal(0, noise, (len(q), 3))
    alt = budget_law_alternative(_table(q, y), DOMAINS, 3.6e8, noise_sd={d: noise for d in DOMAINS})
    assert alt["used"], alt["reason"]
    truth = true_optimum(3.6e8)
    for i, d in enumerate(DOMAINS):
        lo, hi = alt["intervals"][d]
        assert lo <= alt["weights"][d] <= hi and lo - 0.02 <= truth[i] <= hi + 0.02
    # the envelope of two models' intervals
    narrow = {d: [sum(alt["intervals"][d]) / 2] * 2 for d in DOMAINS}
    assert widen(narrow, alt) == {d: alt["intervals"][d] for d in DOMAINS}
    assert widen(narrow, {**alt, "used": False}) == narrow


def test_a_surface_of_another_form_is_refused_with_the_reason() -> None:
    """Losses exponential in the shares (Data Mixing Laws' form): the law misses them by many
    noise sd, so it is not an equally good model and stays out of the intervals."""
    q = ddo_quantities()
    w = q / q.sum(axis=1, keepdims=True)
    t = np.array([[-2.0, 0.8, 0.3], [0.9, -1.8, 0.2], [0.2, 0.6, -2.5]])
    y = E + (q.sum(axis=1, keepdims=True) / 1e8) ** -BETA * np.exp(w @ t.T)
    alt = budget_law_alternative(_table(q, y), DOMAINS, 3.6e8, noise_sd={d: 0.002 for d in DOMAINS})
    assert not alt["used"] and "noise sd" in alt["reason"] and "weights" in alt
    none = budget_law_alternative(_table(q, y), DOMAINS, 3.6e8, noise_sd={d: None for d in DOMAINS})
    assert not none["used"] and "not measured" in none["reason"]
    few = ddo_quantities(budgets=(3e6,))[:6]
    alt = budget_law_alternative(_table(few, true_losses(few)), DOMAINS, 3.6e8,
                                 noise_sd={d: 0.002 for d in DOMAINS})
    assert not alt["used"] and "runs for the" in alt["reason"]


def test_pooled_noise_is_the_rms_over_the_probes_that_measured_it() -> None:
    optima = [{"noise": {"per_domain_sd": {"web": 0.03, "wiki": None}}},
              {"noise": {"per_domain_sd": {"web": 0.04, "wiki": 0.01}}}, {"noise": None}]
    out = pooled_noise_sd(optima, ("web", "wiki", "code"))
    assert out["web"] == pytest.approx(np.sqrt((0.03 ** 2 + 0.04 ** 2) / 2))
    assert out["wiki"] == pytest.approx(0.01) and out["code"] is None
