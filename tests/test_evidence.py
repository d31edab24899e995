"""What a probe's runs support: contradictions of DDO's decreasing surrogate, and the projection
guard (laws/evidence.py), on known numbers."""

from __future__ import annotations

import numpy as np
import pytest

from autoscale_ray.laws.evidence import (FEWER_HELPED, MORE_HURT, contradictions, guard_log_ratios,
                                         log_quantity_sigma, replicate_tolerance)

# base, a-down, a-up, b-down, b-up (fixed-others, two domains)
PERTURBED = (-1, 0, 0, 1, 1)
FACTORS = (1.0, 0.2, 3.0, 0.2, 3.0)


def test_a_monotone_probe_has_no_contradiction() -> None:
    y = np.array([1.0, 1.05, 0.97, 1.02, 0.99])
    assert contradictions(y, [0], PERTURBED, FACTORS, "fixed-others") == {}


def test_fewer_that_helps_and_more_that_hurts_are_named() -> None:
    # domain 0: both its runs beat the base (the seed-1 demo's stubs); domain 1: more hurt
    y = np.array([1.0, 0.98, 0.97, 1.02, 1.01])
    assert contradictions(y, [0], PERTURBED, FACTORS, "fixed-others") == {
        0: [FEWER_HELPED], 1: [MORE_HURT]}


def test_replicates_set_the_tolerance() -> None:
    # base replicated: 1.0 and 1.02 (sd 0.01414, tol 0.0283); a 1% violation is within noise
    y = np.array([1.0, 0.99, 0.97, 1.02, 0.99, 1.02])
    perturbed, factors = (*PERTURBED, -1), (*FACTORS, 1.0)
    assert replicate_tolerance(y, [0, 5]) == pytest.approx(2 * np.std([1.0, 1.02], ddof=1))
    assert contradictions(y, [0, 5], perturbed, factors, "fixed-others") == {}
    y[1] = 0.97  # 4% below the base mean 1.01: beyond 2 sd
    assert contradictions(y, [0, 5], perturbed, factors, "fixed-others") == {0: [FEWER_HELPED]}


def test_fixed_total_is_not_checked() -> None:
    y = np.array([1.0, 0.9, 1.1, 0.9, 1.1])
    assert contradictions(y, [0], PERTURBED, FACTORS, "fixed-total") == {}


def test_the_guard_keeps_a_clear_shift_and_drops_one_within_its_noise() -> None:
    common = np.log(3.0)
    beta = np.array([np.log(3.0) + 0.5, np.log(3.0) - 0.05, np.log(3.0)])
    sigma = np.array([0.05, 0.1, 0.2])
    out = guard_log_ratios(beta, sigma, common)
    # 10 sigma: kept within 1%; within 1 sigma: shrunk to the common growth; no shift stays put
    assert out[0] - common == pytest.approx(0.5 * (1 - 0.01))
    assert out[1] == pytest.approx(common)
    assert out[2] == pytest.approx(common)
    np.testing.assert_array_equal(guard_log_ratios(beta, np.zeros(3), common), beta)  # paper's rule


def test_share_sigma_is_the_relative_spread() -> None:
    np.testing.assert_allclose(log_quantity_sigma(np.array([0.5, 0.1]), np.array([0.01, 0.01])),
                               [0.02, 0.1])
