"""The validation vocabulary (autoscale_ray.checks, autoscale_ray.laws.checks): each check's
accepted and refused inputs and its exact one-line message."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

from autoscale_ray import checks
from autoscale_ray.checks import (Flag, Number, as_list, as_number, as_text, check_bool, check_keys,
                                  check_known, check_mapping, is_whole, mixture_weights, normalised,
                                  first_bad_weight, number, weight_vector)
from autoscale_ray.errors import BadInput
from autoscale_ray.laws import checks as law_checks
from autoscale_ray.laws.checks import (first_cell, first_index, matrix, missing, negative, on_simplex,
                                       simplex_rows, weight_matrix)

ROOT = Path(__file__).resolve().parents[1] / "autoscale_ray"


def message(call) -> str:
    with pytest.raises(BadInput) as info:
        call()
    return str(info.value)


# ---- numbers and booleans -------------------------------------------------------------------
@pytest.mark.parametrize("value,text,expected", [
    (3, False, 3.0), (1.5, False, 1.5), (np.float64(2.0), False, 2.0), (np.int64(4), False, 4.0),
    ("1e5", True, 1e5), (" 2 ", True, 2.0), ("nan", True, math.nan)])
def test_as_number_accepts(value, text, expected) -> None:
    got = as_number(value, text=text)
    assert got == expected or (math.isnan(expected) and math.isnan(got))


@pytest.mark.parametrize("value,text", [(True, False), (False, True), ("1e5", False), ("lots", True),
                                        (None, True), ([1], True), (b"1", True), ({}, True),
                                        (10**400, False)])
def test_as_number_refuses(value, text) -> None:
    assert as_number(value, text=text) is None


def test_is_whole() -> None:
    assert is_whole(3.0) and is_whole(-2) and not is_whole(0.4)
    assert not is_whole(math.inf) and not is_whole(math.nan)


@pytest.mark.parametrize("value,spec,expected", [
    (0.5, Number(), 0.5), ("1e5", Number(whole=True), 100000), (0, Number(positive=False), 0.0),
    (7, Number(positive=False, whole=True, least=1), 7), (1e15, Number(most=1e15), 1e15),
    (2**60 + 1, Number(whole=True), 2**60 + 1)])
def test_number_accepts(value, spec, expected) -> None:
    got = number(value, "c.yaml: x", spec)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("value,spec,line", [
    (0, Number(), "c.yaml: x: 0 is not a positive number"),
    ("lots", Number(whole=True), "c.yaml: x: 'lots' is not a positive whole number"),
    (0.4, Number(positive=False, whole=True), "c.yaml: x: 0.4 is not a whole number"),
    ("nan", Number(), "c.yaml: x: nan is not a positive number"),
    (True, Number(positive=False), "c.yaml: x: True is not a number"),
    (math.inf, Number(positive=False), "c.yaml: x: inf is not a number"),
    (2e15, Number(most=1e15), "c.yaml: x: 2e+15 is above the largest accepted value 1e+15; "
                              "check the units (tokens, not billions of tokens) and the exponent"),
    (0, Number(positive=False, whole=True, least=1), "c.yaml: x: 0 is not a whole number >= 1"),
    (-1, Number(positive=False, whole=True, least=0), "c.yaml: x: -1 is not a whole number >= 0")])
def test_number_refuses(value, spec, line) -> None:
    assert message(lambda: spec.check(value, "c.yaml: x")) == line


def test_bool() -> None:
    assert check_bool(False, "w") is False and Flag().check(True, "w") is True
    assert message(lambda: Flag().check("no", "c.yaml: search.verify_probe")) == \
        "c.yaml: search.verify_probe: 'no' is not a boolean; write true or false (unquoted)"
    assert message(lambda: check_bool(1, "train", label="compile=", fix="give compile as true or false")) \
        == "train: compile=1 is not a boolean; give compile as true or false"


# ---- mappings and names ---------------------------------------------------------------------
def test_check_mapping() -> None:
    assert check_mapping({"a": 1}, "w", "bad") == {"a": 1}
    assert check_mapping({}, "w", "bad", empty=True) == {}
    assert message(lambda: check_mapping({}, "w", "must be a mapping")) == "w: must be a mapping"
    assert message(lambda: check_mapping([1], "w", "must be a mapping", "write {a: 1}", empty=True)) \
        == "w: must be a mapping; write {a: 1}"


def test_check_keys() -> None:
    check_keys({"a": 1}, {"a", "b"}, "w")
    assert message(lambda: check_keys({"z": 1, "y": 2, "a": 3}, ["b", "a"], "c.yaml")) == \
        "c.yaml: unknown key(s) y, z; allowed: a, b"


def test_check_known() -> None:
    check_known(["web"], ("web", "code"), "w")
    check_known([], (), "w")
    assert message(lambda: check_known(["news", "art", "web"], ("web", "code"), "weights")) == \
        "weights: weights name unknown domain(s) ['news', 'art']; the corpus has ['web', 'code']"
    assert message(lambda: check_known(["x"], ["web", "code"], "c.yaml: search.base_weights",
                                       what="base_weights name unknown domain(s)",
                                       fix="the corpus has:", show=as_text)) == \
        "c.yaml: search.base_weights: base_weights name unknown domain(s) x; the corpus has: web, code"
    assert as_list(("a",)) == "['a']" and as_text(["a", "b"]) == "a, b"


# ---- mixture weights as mappings ------------------------------------------------------------
def test_mixture_weights_normalises() -> None:
    assert mixture_weights({"a": 1, "b": 3.0, "c": 0}, "m.json") == {"a": 0.25, "b": 0.75, "c": 0.0}


@pytest.mark.parametrize("weights,line", [
    ({}, "m.json: `weights` must be a non-empty object {domain: weight}"),
    ([0.5], "m.json: `weights` must be a non-empty object {domain: weight}"),
    ({"a": "0.5"}, "m.json, key weights.a: weight of `a` is '0.5', not a finite number; give a number >= 0"),
    ({"a": math.nan}, "m.json, key weights.a: weight of `a` is nan, not a finite number; give a number >= 0"),
    ({"a": True}, "m.json, key weights.a: weight of `a` is True, not a finite number; give a number >= 0"),
    ({"a": 1, "b": -1}, "m.json, key weights.b: negative weight -1 for `b`; weights must be >= 0"),
    ({"a": 0, "b": 0.0}, "m.json, key weights: all weights are zero; "
                         "give at least one domain a positive weight")])
def test_mixture_weights_refuses(weights, line) -> None:
    assert message(lambda: mixture_weights(weights, "m.json")) == line


def test_weight_helpers() -> None:
    assert first_bad_weight({"a": 0.0, "b": 1.0}) is None
    assert first_bad_weight({"a": 1.0, "b": math.inf, "c": -1.0}) == "b"
    assert first_bad_weight({"a": -0.5}) == "a" and first_bad_weight({"a": math.nan}) == "a"
    np.testing.assert_array_equal(weight_vector({"b": 2, "z": 9}, ["a", "b"]), [0.0, 2.0])
    assert normalised({"a": 1.0, "b": 3.0}) == {"a": 0.25, "b": 0.75}


# ---- array checks (autoscale_ray.laws.checks) -----------------------------------------------
def test_first_cell_and_index() -> None:
    assert first_cell(np.zeros((2, 2), bool)) is None
    assert first_cell(np.array([[False, False], [True, True]])) == (1, 0)
    assert first_index(np.array([False, True, True])) == 1 and first_index(np.zeros(3, bool)) is None


def test_matrix() -> None:
    assert matrix([[1, 2]], "w").dtype == float
    for bad in ([], [1.0, 2.0], [[]]):
        assert "weights must be a non-empty 2-D array (rows x domains)" in message(lambda: matrix(bad, "w"))


def test_weight_matrix() -> None:
    np.testing.assert_allclose(weight_matrix([[1, 3], [0, 2]], "fit"), [[0.25, 0.75], [0.0, 1.0]])
    assert message(lambda: weight_matrix([[1, 1], [1, -1]], "fit")) == \
        "fit: weight [1, 1] = -1.0 is not a finite number >= 0"
    assert message(lambda: weight_matrix([[1, 1], [0, 0]], "fit")) == \
        "fit: row 1 of the weights is all zero; give at least one domain a positive weight"


def test_simplex_rows_applies_masks_in_order() -> None:
    cells = [(missing, lambda r, c, v: BadInput(f"missing at {r},{c}")),
             (negative, lambda r, c, v: BadInput(f"negative {v} at {r},{c}"))]
    w = np.array([[-1.0, 1.0], [np.nan, 1.0]])
    assert message(lambda: simplex_rows(w, cells, lambda r: BadInput(f"zero {r}"))) == "missing at 1,0"
    assert message(lambda: simplex_rows(w[:1], cells, lambda r: BadInput("zero"))) == "negative -1.0 at 0,0"
    assert message(lambda: simplex_rows(np.array([[1.0, 0], [0, 0]]), cells,
                                        lambda r: BadInput(f"zero {r}"))) == "zero 1"
    # a value no mask flags passes through: inf normalises to NaN, as the runs table always had it
    with np.errstate(invalid="ignore"):
        assert np.isnan(simplex_rows(np.array([[np.inf, 1.0]]), cells, lambda r: BadInput("zero"))).any()


@pytest.mark.parametrize("p,kwargs,ok", [
    ([0.0, 1.0], {}, True), ([0.0, 1.0], {"positive": True}, False), ([0.5, 0.5], {"positive": True}, True),
    ([-0.1, 1.0], {}, False), ([0.0, 0.0], {}, False), ([np.nan, 1.0], {}, False),
    ([np.inf, 1.0], {}, False), ([np.nan, 1.0], {"finite": False}, True)])
def test_on_simplex(p, kwargs, ok) -> None:
    assert on_simplex(np.array(p), **kwargs) is ok


# ---- layers: the vocabulary sits at the bottom ----------------------------------------------
def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_checks_import_only_lower_layers() -> None:
    for name in imported(Path(checks.__file__)):
        top = name.split(".")[0]
        assert top not in ("ray", "torch", "pandas", "pyarrow"), name
        if top == "autoscale_ray":
            assert name in ("autoscale_ray.errors", "autoscale_ray.names") \
                or name.startswith("autoscale_ray.laws."), name


def test_law_checks_are_pure_numpy() -> None:
    for name in imported(Path(law_checks.__file__)):
        top = name.split(".")[0]
        assert top in ("__future__", "typing", "numpy") or name == "autoscale_ray.errors", name


def test_a_bootstrap_count_is_0_or_at_least_2_whole_replicates() -> None:
    from autoscale_ray.checks import check_bootstrap

    assert [check_bootstrap(k, 20) for k in (0, 2, np.int64(100))] == [0, 2, 100]
    for bad in (1, -3, 2.5, True, "20"):
        with pytest.raises(BadInput, match=r"--bootstrap must be 0 \(off\) or >= 2 replicates") as err:
            check_bootstrap(bad, 20)
        assert str(err.value).endswith("; e.g. --bootstrap 20")
