"""Refinement rounds' trials and stopping rule (search/refine.py)."""

from __future__ import annotations

import pytest

from autoscale_ray.tuning.refine import keep_refining, refinement_specs, round_factors, round_of


def test_round_factors_are_square_roots() -> None:
    assert round_factors(0.2, 3.0, 1) == (0.2, 3.0)
    assert round_factors(0.2, 3.0, 2) == pytest.approx((0.2 ** 0.5, 3.0 ** 0.5))
    assert round_factors(0.2, 3.0, 3) == pytest.approx((0.2 ** 0.25, 3.0 ** 0.25))


def test_round_two_is_the_design_centred_at_the_optimum() -> None:
    centre = {"a": 0.6, "b": 0.3, "c": 0.1}
    specs = refinement_specs(100_000, centre, 0.2, 3.0, "fixed-others", 2, seed=3)
    assert len(specs) == 7 and specs[0].key == "ddo/1e+05/r2/base"
    assert specs[0].weights == pytest.approx(centre) and specs[0].budget == 100_000
    assert {s.key for s in specs[1:]} == {f"ddo/1e+05/r2/{d}-{x}" for d in "abc" for x in ("down", "up")}
    down_c = next(s for s in specs if s.key.endswith("c-down"))
    # c's quantity times sqrt(0.2), the others' kept: below a domain at the first round's bound
    tokens_c = down_c.weights["c"] * down_c.budget
    assert tokens_c == pytest.approx(0.1 * 100_000 * 0.2 ** 0.5, rel=1e-4)  # budgets are whole tokens
    assert down_c.weights["a"] * down_c.budget == pytest.approx(60_000, rel=1e-4)
    assert all(s.tags["round"] == "2" and s.seed == 3 and s.stage == "ddo" for s in specs)
    assert [round_of(s.key) for s in specs] == [2] * 7 and round_of("ddo/1e+05/a-down") == 1


def test_rounds_stop_when_the_optimum_settles_or_promises_nothing() -> None:
    before = {"a": 0.5, "b": 0.5}
    assert keep_refining(before, {"a": 0.6, "b": 0.4}, 0.01)
    assert not keep_refining(before, {"a": 0.505, "b": 0.495}, 0.01)    # moved < 0.01
    assert not keep_refining(before, {"a": 0.6, "b": 0.4}, 1e-4)        # gain below 1e-3
