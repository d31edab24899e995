"""The runs table: reading, defaults, normalisation, validation messages, atomic writes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscale_ray.atomic import atomic_path, write_json
from autoscale_ray.errors import BadInput
from autoscale_ray.mixture import read_mixture
from autoscale_ray.runs import read_runs, validate, write_runs


def table() -> pd.DataFrame:
    return pd.DataFrame({
        "run_id": ["a", "a", "b", "b"],
        "tokens": [100, 200, 100, 200],
        "params": [1e6] * 4,
        "w.web": [2.0, 2.0, 1.0, 1.0],
        "w.code": [2.0, 2.0, 3.0, 3.0],
        "loss.web": [3.0, 2.5, 3.2, 2.7],
        "loss.code": [2.0, 1.5, 1.8, 1.3],
    })


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_and_defaults(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"runs{suffix}"
    write_runs(table(), path)
    runs = read_runs(path, require=["weights", "loss", "params"])
    assert runs.domains == ("web", "code")
    assert runs.loss_domains == ("web", "code")
    # weights normalised per row; budget defaults to the run's largest tokens
    np.testing.assert_allclose(runs.weights(), [[.5, .5], [.5, .5], [.25, .75], [.25, .75]])
    np.testing.assert_allclose(runs.frame["budget"], [200, 200, 200, 200])
    np.testing.assert_allclose(runs.quantities()[2], [50, 150])
    # loss defaults to the mean of the per-domain losses
    np.testing.assert_allclose(runs.frame["loss"], [2.5, 2.0, 2.5, 2.0])
    final = runs.final()
    assert list(final["run_id"]) == ["a", "b"] and list(final["tokens"]) == [200, 200]
    np.testing.assert_allclose(runs.objective("mean-ppl", final),
                               [(np.exp(2.5) + np.exp(1.5)) / 2, (np.exp(2.7) + np.exp(1.3)) / 2])


def test_weights_already_on_the_simplex_are_kept_bit_for_bit() -> None:
    """A search writes its trials' weights as they trained (here a row summing to 1 + 1 ulp);
    dividing them by their sum again moved a refit's DDO optimum in its last digits, so
    `autoscale-ray ddo` on a search's runs.parquet did not reproduce the search."""
    w = np.array([1 / 3, 1 / 3, 0.0, 1 / 6])
    w[2] = 1 - w.sum() + 2 ** -53  # the sum is 1 within rounding, not exactly 1
    frame = pd.DataFrame({"run_id": ["a"], "tokens": [100.0], "loss": [2.0],
                          **{f"w.d{i}": [v] for i, v in enumerate(w)}})
    assert abs(w.sum() - 1) < 1e-12
    kept = validate(frame).weights()[0]
    assert kept.tolist() == w.tolist()
    # a row that is not on the simplex is still divided by its sum
    scaled = validate(frame.assign(**{f"w.d{i}": [2 * v] for i, v in enumerate(w)})).weights()[0]
    np.testing.assert_allclose(scaled, w, rtol=1e-15)
    off = w.copy()
    off[0] = 2.0
    assert validate(frame.assign(**{"w.d0": [2.0]})).weights()[0].tolist() == (off / off.sum()).tolist()


def test_eval_mixture_weights_the_objective() -> None:
    runs = validate(table(), eval_weights={"web": 3, "code": 1})
    np.testing.assert_allclose(runs.frame["loss"][0], 0.75 * 3.0 + 0.25 * 2.0)


def test_given_budget_and_loss_are_kept() -> None:
    frame = table().assign(budget=[400] * 4, loss=[9.0, 8.0, 7.0, 6.0])
    runs = validate(frame)
    assert list(runs.frame["budget"]) == [400] * 4
    assert list(runs.frame["loss"]) == [9.0, 8.0, 7.0, 6.0]


def test_failed_runs_are_left_out_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    frame = table().assign(status=["ok", "ok", "running", "diverged"])  # b's first row looked fine
    frame.loc[3, "loss.web"] = np.nan
    with caplog.at_level(logging.WARNING, logger="autoscale_ray"):
        runs = validate(frame, "t.csv", require=["loss"])
    assert runs.run_ids == ["a"]
    assert "b" in caplog.text and "diverged" in caplog.text


def test_average_duplicates() -> None:
    frame = pd.concat([table(), table().iloc[[1]].assign(**{"loss.web": 3.5})])
    with pytest.raises(BadInput, match=r"row 5.*--average-duplicates"):
        validate(frame, "t.csv")
    runs = validate(frame, "t.csv", average_duplicates=True)
    assert len(runs) == 4
    np.testing.assert_allclose(runs.frame.loc[1, "loss.web"], 3.0)


BAD = [
    ("drop run_id", lambda f: f.drop(columns="run_id"), r"missing required column `run_id`"),
    ("drop tokens", lambda f: f.drop(columns="tokens"), r"missing required column `tokens`"),
    ("nan tokens", lambda f: f.assign(tokens=[100, np.nan, 100, 200]), r"row 2, column `tokens`"),
    ("inf loss", lambda f: f.assign(**{"loss.code": [2.0, np.inf, 1.8, 1.3]}),
     r"row 2, column `loss.code`"),
    ("negative weight", lambda f: f.assign(**{"w.web": [2.0, 2.0, -1.0, 1.0]}),
     r"row 3, column `w.web`.*>= 0"),
    ("zero mixture", lambda f: f.assign(**{"w.web": [0.0] * 4, "w.code": [2.0, 2.0, 0.0, 3.0]}),
     r"row 3.*all mixture weights are zero"),
    ("text tokens", lambda f: f.assign(tokens=["100", "x", "100", "200"]), r"`x` is not a number"),
    ("missing params", lambda f: f.drop(columns="params"), r"missing column `params`"),
    ("no rows", lambda f: f.iloc[:0], r"no rows"),
]


@pytest.mark.parametrize("name,mutate,message", BAD, ids=[b[0] for b in BAD])
def test_bad_tables_name_row_and_column(tmp_path: Path, name: str, mutate, message: str) -> None:
    path = tmp_path / "bad.csv"
    mutate(table()).to_csv(path, index=False)
    with pytest.raises(BadInput, match=message) as err:
        read_runs(path, require=["params", "loss"])
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="file not found"):
        read_runs(tmp_path / "nope.csv")
    (tmp_path / "runs.xlsx").write_text("x")
    with pytest.raises(BadInput, match="unknown runs-table format"):
        read_runs(tmp_path / "runs.xlsx")


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1} and len(list(tmp_path.iterdir())) == 1


def test_mixture_file(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"tokens": 1e9, "weights": {"a": 1, "b": 3}}))
    mix = read_mixture(path)
    assert mix.weights == {"a": 0.25, "b": 0.75}
    assert mix.quantities() == {"a": 2.5e8, "b": 7.5e8}
    for bad, message in [({"weights": {"a": 1}}, "missing key `tokens`"),
                         ({"tokens": 5, "weights": {"a": -1, "b": 2}}, "negative weight"),
                         ({"tokens": 5, "weights": {"a": 0}}, "all weights are zero"),
                         ({"tokens": -5, "weights": {"a": 1}}, "key tokens")]:
        path.write_text(json.dumps(bad))
        with pytest.raises(BadInput, match=message):
            read_mixture(path)
    path.write_text("{not json")
    with pytest.raises(BadInput, match="not valid JSON"):
        read_mixture(path)


@pytest.mark.parametrize("name, text", [
    ("semicolons.csv", "run_id;tokens;w.a;w.b;loss\nx;100;0.25;0.75;3.5\ny;100;0.5;0.5;3.25\n"),
    ("tabs.csv", "run_id\ttokens\tw.a\tw.b\tloss\nx\t100\t0.25\t0.75\t3.5\ny\t100\t0.5\t0.5\t3.25\n"),
    ("tabs.tsv", "run_id\ttokens\tw.a\tw.b\tloss\nx\t100\t0.25\t0.75\t3.5\ny\t100\t0.5\t0.5\t3.25\n"),
])
def test_the_delimiter_is_sniffed(tmp_path: Path, name: str, text: str) -> None:
    """`;`- and tab-separated tables (and `.tsv`) read as the comma-separated one does."""
    (tmp_path / name).write_text(text)
    table = read_runs(tmp_path / name)
    assert table.domains == ("a", "b") and list(table.frame["run_id"]) == ["x", "y"]
    assert list(table.frame["loss"]) == [3.5, 3.25] and list(table.frame["w.a"]) == [0.25, 0.5]


def test_decimal_commas_are_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "comma.csv"
    path.write_text("run_id;tokens;w.a;w.b;loss\nx;100;0,25;0,75;3,5\n")
    with pytest.raises(BadInput, match=r"decimal commas \(e\.g\. 3,14\).*write decimal points"):
        read_runs(path)


def test_a_tsv_runs_table_round_trips(tmp_path: Path) -> None:
    frame = pd.DataFrame({"run_id": ["x", "y"], "tokens": [100.0, 100.0], "w.a": [0.25, 0.5],
                          "w.b": [0.75, 0.5], "loss": [3.5, 3.25]})
    write_runs(frame, tmp_path / "runs.tsv")
    assert (tmp_path / "runs.tsv").read_text().splitlines()[0].count("\t") == 4
    assert list(read_runs(tmp_path / "runs.tsv").frame["loss"]) == [3.5, 3.25]


def test_near_miss_columns_get_a_did_you_mean(tmp_path: Path) -> None:
    """`runid` for `run_id` and `w_cc` for `w.cc`: the error names the column that was meant."""
    (tmp_path / "a.csv").write_text("runid,tokens,w.a,w.b,loss\nx,100,0.5,0.5,3\n")
    with pytest.raises(BadInput, match=r"add a `run_id` column \(did you mean `runid`\?\)"):
        read_runs(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("run_id,tokens,w_cc,W-web,loss\nx,100,0.5,0.5,3\n")
    with pytest.raises(BadInput, match=r"rename `w_cc` to `w\.cc`, `W-web` to `w\.web`"):
        read_runs(tmp_path / "b.csv", require=["weights"])
    (tmp_path / "c.csv").write_text("run_id,tokens,width,loss\nx,100,0.5,3\n")
    with pytest.raises(BadInput, match=r"no mixture-weight columns `w\.<domain>`; add one"):
        read_runs(tmp_path / "c.csv", require=["weights"])  # `width` is not a weight look-alike
