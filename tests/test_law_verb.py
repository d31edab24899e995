"""`autoscale-ray law`: the Python function, `register` on a fresh parser, and the command line
(autoscale_ray.cli.main in this process; tests/test_bad_input_matrix.py runs the installed script)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscale_ray.errors import BadInput
from autoscale_ray.verbs import law as law_verb
from autoscale_ray.verbs.law import law
from data_fixtures import cli  # noqa: F401  (a fixture: the command in this process)



def runs_table(path: Path, sizes=(2e7, 5e7, 1e8, 2e8, 1e9), per_run=20, params=True,
               offset_largest=1.0, seed=0) -> Path:
    """Checkpoints (tokens 0 and log-spaced 2%..100% of 20 tokens/param) of one run per size, loss
    from E=1.69, A=406.4, B=410.7, alpha=.34, beta=.28 with 0.2% noise; the largest model's
    losses times `offset_largest`."""
    rng = np.random.default_rng(seed)
    rows = []
    for size in sizes:
        budget = 20 * size
        for frac in (0.0, *np.logspace(np.log10(0.02), 0, per_run)):
            d = round(frac * budget)
            loss = 1.69 + 406.4 / size ** 0.34 + (410.7 / d ** 0.28 if d else 8.0)
            loss *= np.exp(rng.normal(0, 0.002)) * (offset_largest if size == max(sizes) else 1.0)
            row = {"run_id": f"n{size:g}", "tokens": d, "loss": loss}
            if params:
                row["params"] = size
            rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_fits_l_of_n_d_on_every_checkpoint(tmp_path):
    obj = law(runs_table(tmp_path / "runs.csv"), bootstrap=0)
    assert obj["form"] == "L(N,D)"
    assert obj["n_points"] == 5 * 20  # every checkpoint, the tokens=0 evaluations left out
    assert obj["alpha"] == pytest.approx(0.34, abs=0.02) and obj["beta"] == pytest.approx(0.28, abs=0.02)
    assert obj["E"] == pytest.approx(1.69, rel=0.03)
    assert obj["objective"] > 0 and "are" not in obj
    assert set(obj["stderr"]) == {"E", "A", "B", "alpha", "beta"}
    assert all(v is None for v in obj["stderr"].values())
    json.dumps(obj, allow_nan=False)


def test_l_of_d_without_params_or_with_one_size(tmp_path):
    no_params = law(runs_table(tmp_path / "a.csv", sizes=(1e8,), params=False, per_run=30), bootstrap=0)
    one_size = law(runs_table(tmp_path / "b.csv", sizes=(1e8,), per_run=30), bootstrap=0)
    for obj in (no_params, one_size):
        assert obj["form"] == "L(D)" and obj["A"] is None and obj["alpha"] is None
        assert obj["beta"] == pytest.approx(0.28, abs=0.03) and obj["n_points"] == 30
        assert obj["stderr"]["A"] is None


def test_min_tokens_absolute_and_fraction(tmp_path):
    path = runs_table(tmp_path / "runs.csv", sizes=(2e7, 5e7, 1e8))
    frame = pd.read_csv(path)
    absolute = law(path, min_tokens=3e8, bootstrap=0)
    assert absolute["n_points"] == int((frame["tokens"] >= 3e8).sum())
    budget = frame.groupby("run_id")["tokens"].transform("max")
    fraction = law(path, min_tokens=0.5, bootstrap=0)
    assert fraction["n_points"] == int((frame["tokens"] >= 0.5 * budget).sum())
    assert fraction["n_points"] < 60 and fraction["min_tokens"] == 0.5
    with pytest.raises(BadInput, match="min-tokens"):
        law(path, min_tokens=1e15, bootstrap=0)


def test_holdout_largest_are_small_for_the_law_large_when_the_largest_is_off(tmp_path):
    frame = pd.read_csv(runs_table(tmp_path / "a.csv"))
    right = law(tmp_path / "a.csv", holdout_largest=True, bootstrap=0)
    off = law(runs_table(tmp_path / "b.csv", offset_largest=1.08), holdout_largest=True, bootstrap=0)
    assert right["n_points"] == 4 * 20  # fitted without the largest model
    assert right["held_out"]["params"] == 1e9 and right["held_out"]["runs"] == ["n1e+09"]
    largest = frame[frame["params"] == 1e9]
    assert right["held_out"]["n_points"] == int((largest["tokens"] >= 0.7 * 2e10).sum()) >= 2
    assert right["are"] < 0.01 < 0.05 < off["are"]


def test_bad_input(tmp_path):
    with pytest.raises(BadInput, match="3 model sizes"):
        law(runs_table(tmp_path / "a.csv", sizes=(2e7, 5e7)), holdout_largest=True, bootstrap=0)
    with pytest.raises(BadInput, match="only 3 data points"):
        law(runs_table(tmp_path / "b.csv", sizes=(1e8,), per_run=3), bootstrap=0)
    with pytest.raises(BadInput, match="bootstrap"):
        law(tmp_path / "a.csv", bootstrap=1)
    dup = pd.read_csv(runs_table(tmp_path / "c.csv", sizes=(2e7, 5e7)))
    dup = pd.concat([dup, dup.iloc[[5]].assign(loss=dup["loss"].iloc[5] + 0.01)])
    dup.to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(BadInput, match="duplicate"):
        law(tmp_path / "dup.csv", bootstrap=0)
    assert law(tmp_path / "dup.csv", bootstrap=0, average_duplicates=True)["n_points"] == 40


def test_register_on_a_fresh_parser_and_bootstrap(tmp_path):
    path = runs_table(tmp_path / "runs.csv", sizes=(2e7, 5e7, 1e8), per_run=12)
    parser = argparse.ArgumentParser()
    law_verb.register(parser.add_subparsers(dest="verb"))
    args = parser.parse_args(["law", str(path), "--bootstrap", "5", "--min-tokens", "0.1"])
    obj, text = args.func(args)
    assert obj["n_bootstrap"] == 5 and all(v > 0 for v in obj["stderr"].values())
    lo, hi = obj["interval"]["alpha"]
    assert lo <= obj["alpha"] <= hi
    assert "bootstrap SE" in text and "alpha" in text and "L(N,D)" in text


def test_cli_json_and_exit_codes(tmp_path, cli):  # noqa: F811
    path = runs_table(tmp_path / "runs.csv")
    code, out, err = cli("law", str(path), "--holdout-largest", "--bootstrap", "0", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["form"] == "L(N,D)" and 0 <= obj["are"] < 0.01
    code, out, err = cli("law", str(tmp_path / "missing.csv"), "--json")
    assert code == 2 and out == ""
    assert "missing.csv" in err and len(err.strip().splitlines()) == 1


def test_the_command_keeps_late_library_prints_out_of_its_json(tmp_path):
    """Ray's log thread prints late worker messages to sys.stdout after the verb returned (seen
    after a trial was SIGKILLed); the command's stdout stays its one JSON object."""
    import subprocess
    import sys

    path = runs_table(tmp_path / "runs.csv")
    script = ("import sys; from autoscale_ray import cli\n"
              f"sys.argv = ['autoscale-ray', 'law', {str(path)!r}, '--bootstrap', '0', '--json']\n"
              "rc = cli.main()\n"
              "print('(raylet) A worker died')  # what the log thread does before exit\n"
              "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["form"] == "L(N,D)"
    assert "(raylet) A worker died" in proc.stderr
