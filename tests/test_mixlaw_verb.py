"""`autoscale-ray mixlaw`: the fit over a runs table, the JSON object, bad input, and the Data Mixing
Laws 5Mix runs (fit <= 410M, predict the 1B runs; leave 410M out) against the two L(N, D) baselines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscale_ray.errors import BadInput
from autoscale_ray.fits.mixlaw import mixlaw
from data_fixtures import cli  # noqa: F401  (a fixture: the command in this process)
from test_mixing_law import synthetic_runs, true_law

FIVE_MIX = Path(__file__).parent / "data" / "mixinglaws_5mix" / "runs.csv"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mixlaw") / "runs.csv"
    synthetic_runs(noise=0.001).to_csv(path, index=False)
    return path


def mixes_file(path: Path, rows) -> Path:
    pd.DataFrame(rows, columns=["w.d0", "w.d1", "w.d2"]).to_csv(path, index=False)
    return path


def test_json_predictions_optimum_and_intervals(runs, tmp_path, cli):  # noqa: F811
    mixes = mixes_file(tmp_path / "mixes.csv", [[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])
    args = ("mixlaw", str(runs), "--params", "1e9", "--tokens", "2e10", "--predict", str(mixes),
            "--optimize", "--bootstrap", "4", "--seed", "1", "--json")
    code, out, err = cli(*args)
    assert code == 0, err
    obj = json.loads(out)
    assert obj["params"] == 1e9 and obj["tokens"] == 2e10
    held = obj["fit"]["held_out_error"]
    assert obj["fit"]["form"] in held and set(held) == {"nested", "shrunk", "joint"}
    assert obj["fit"]["form"] == min(held, key=held.get)
    assert held["shrunk"] <= held["nested"]  # lambda = 0 is the nested law
    if obj["fit"]["form"] == "shrunk":
        assert obj["fit"]["parameters"]["shrinkage"] in [i / 10 for i in range(11)]
    assert obj["fit"]["sizes"] == [2e7, 5e7, 1e8] and obj["fit"]["n_runs"] == 30
    truth = true_law().predict(np.array([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]]), 1e9, 2e10)
    for row, expected in zip(obj["predictions"], truth):  # in MIXES's order
        assert [row["loss.v0"], row["loss.v1"]] == pytest.approx(expected, rel=0.01)
        assert row["loss"] == pytest.approx((row["loss.v0"] + row["loss.v1"]) / 2)
    w = obj["weights"]
    assert sum(w.values()) == pytest.approx(1.0) and min(w.values()) >= 0
    assert obj["expected_loss"]["loss"] <= min(r["loss"] for r in obj["predictions"])
    iv = obj["intervals"]
    assert obj["level"] == 0.9 and obj["n_bootstrap"] == 4
    assert set(iv["weights"]) == set(w) and len(iv["predictions"]) == 2
    lo, hi = iv["expected_loss"]
    assert lo <= hi
    code2, out2, _ = cli(*args)
    assert code2 == 0 and json.loads(out2) == obj  # same input and seed, same output


def test_objective_weights_and_epoch_caps(runs, tmp_path):
    evals = tmp_path / "eval.json"
    evals.write_text(json.dumps({"v0": 1.0, "v1": 0.0}))
    only_v0 = mixlaw(runs, params=1e9, tokens=2e10, optimize=True, objective=evals, bootstrap=0,
                     forms=("joint",))
    assert only_v0["expected_loss"]["loss"] == pytest.approx(only_v0["expected_loss"]["loss.v0"])
    assert only_v0["fit"]["held_out_error"] == {} and only_v0["fit"]["form"] == "joint"
    free = only_v0["weights"]["d0"]
    assert free > 0.5  # t_v0 favours domain 0 most
    avail = tmp_path / "avail.json"
    avail.write_text(json.dumps({"d0": 0.1 * 2e10 / 4}))  # at most 10% of the target, 4 epochs
    capped = mixlaw(runs, params=1e9, tokens=2e10, optimize=True, objective=evals, bootstrap=0,
                    available=avail, forms=("joint",))
    assert capped["weights"]["d0"] == pytest.approx(0.1, abs=1e-6) and capped["at_cap"] == ["d0"]
    assert capped["expected_loss"]["loss"] > only_v0["expected_loss"]["loss"]


@pytest.mark.parametrize("rows, match", [
    ([[0.2, 0.3, 0.6]], "sum to 1.1"),
    ([[-0.1, 0.6, 0.5]], "not a finite number >= 0"),
])
def test_mixtures_off_the_simplex(runs, tmp_path, rows, match):
    with pytest.raises(BadInput, match=match):
        mixlaw(runs, params=1e9, tokens=2e10, predict=mixes_file(tmp_path / "m.csv", rows),
               bootstrap=0)


def test_bad_input(runs, tmp_path):
    frame = pd.read_csv(runs)
    unknown = tmp_path / "unknown.csv"
    pd.DataFrame({"w.d0": [0.5], "w.d1": [0.25], "w.d2": [0.2], "w.zz": [0.05]}).to_csv(unknown, index=False)
    with pytest.raises(BadInput, match="w.zz"):
        mixlaw(runs, params=1e9, tokens=2e10, predict=unknown, bootstrap=0)
    as_json = tmp_path / "unknown.json"
    as_json.write_text(json.dumps([{"weights": {"d0": 0.5, "web": 0.5}}]))
    with pytest.raises(BadInput, match="web"):
        mixlaw(runs, params=1e9, tokens=2e10, predict=as_json, bootstrap=0)
    one_size = tmp_path / "one.csv"
    frame[frame["params"] == 2e7].to_csv(one_size, index=False)
    with pytest.raises(BadInput, match="1 model size"):
        mixlaw(one_size, params=1e9, tokens=2e10, optimize=True, bootstrap=0)
    no_loss = tmp_path / "noloss.csv"
    frame.drop(columns=["loss.v0", "loss.v1"]).to_csv(no_loss, index=False)
    with pytest.raises(BadInput, match="loss"):
        mixlaw(no_loss, params=1e9, tokens=2e10, optimize=True, bootstrap=0)
    with pytest.raises(BadInput, match="--tokens"):
        mixlaw(runs, params=1e9, tokens=0, optimize=True, bootstrap=0)
    with pytest.raises(BadInput, match="nothing to do"):
        mixlaw(runs, params=1e9, tokens=2e10, bootstrap=0)
    two_sizes = tmp_path / "two.csv"
    frame[frame["params"] < 1e8].to_csv(two_sizes, index=False)
    with pytest.raises(BadInput, match=">= 3 model sizes"):
        mixlaw(two_sizes, params=1e9, tokens=2e10, optimize=True, bootstrap=0)
    with pytest.raises(BadInput, match="lambda"):  # the shrunk form alone still needs a held-out size
        mixlaw(two_sizes, params=1e9, tokens=2e10, optimize=True, bootstrap=0, forms=("shrunk",))


def test_cli_bad_input_is_one_line_exit_2(runs, tmp_path, cli):  # noqa: F811
    code, out, err = cli("mixlaw", str(runs), "--params", "0", "--tokens", "2e10", "--optimize")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    bad = mixes_file(tmp_path / "m.csv", [[0.5, 0.5, 0.5]])
    code, out, err = cli("mixlaw", str(runs), "--params", "1e9", "--tokens", "2e10",
                         "--predict", str(bad), "--bootstrap", "0", "--json")
    assert code == 2 and out == "" and "m.csv, row 1" in err and len(err.strip().splitlines()) == 1


# ---- the 5Mix runs (Ye et al. 2024) -------------------------------------------------------------
# Three of the 22 validation domains (the largest web, academic and code shares) keep the test
# within CI time; benchmarks/mixing_law_5mix.py prints the same comparison on all 22 (RESULTS.md).
DOMAINS = ["Pile-CC", "ArXiv", "Github"]


@pytest.fixture(scope="module")
def five_mix():
    from mixing_law_5mix import load

    return load(DOMAINS)


@pytest.mark.slow
def test_5mix_1b_law_beats_the_agnostic_baseline_and_leave_410m_out(five_mix):
    from mixing_law_5mix import compare

    N = five_mix.params
    one_b = compare(five_mix, N < 1e9, N == 1e9)
    assert one_b["rows"] == 19 and one_b["seen_rows"] == 4  # 6 mixtures, 4 trained small
    # the shrunk form, lambda chosen on 410M (fitted on <= 305M): measured 0.9
    assert one_b["form"] == "shrunk" and one_b["shrinkage"] >= 0.7
    assert one_b["law"] < one_b["agnostic"] and one_b["law_unseen"] < one_b["agnostic"]
    assert one_b["law"] < 0.02  # measured 1.16% on these 3 domains (agnostic 4.1%), 2.05% on all 22
    # it beats the per-mixture baseline on the 4 mixtures that one can predict, narrowly: measured
    # 0.651% vs 0.667% here, 0.83% vs 0.84% on all 22 (RESULTS.md)
    assert one_b["law_seen"] < one_b["per_mixture_seen"]
    # leave 410M out: fit on <= 305M (lambda chosen on 305M from <= 160M fits, 2 sizes), predict 410M
    loso = compare(five_mix, N < 410e6, N == 410e6)
    assert loso["form"] == "shrunk" and loso["law"] < loso["agnostic"]
    assert loso["law"] < 0.012  # measured 0.88% (agnostic 6.5%)
    # the known shortfall (RESULTS.md): here the per-mixture baseline is better, 0.73% vs 0.88%
    assert loso["per_mixture_seen"] < loso["law"]


@pytest.mark.slow
def test_5mix_optimum_at_1b_beats_the_observed_1b_mixtures(tmp_path):
    frame = pd.read_csv(FIVE_MIX)
    keep = [c for c in frame.columns if not c.startswith("loss.")] + [f"loss.{d}" for d in DOMAINS]
    small, big = frame.loc[frame["params"] < 1e9, keep], frame.loc[frame["params"] == 1e9, keep]
    small.to_csv(tmp_path / "small.csv", index=False)
    observed = big.groupby("mixture").first()[[c for c in keep if c.startswith("w.")]]
    observed.to_csv(tmp_path / "mixes.csv", index=False)
    obj = mixlaw(tmp_path / "small.csv", params=1e9, tokens=20000 * 2 ** 20,
                 predict=tmp_path / "mixes.csv", optimize=True, bootstrap=3, forms=("nested",))
    w = np.array(list(obj["weights"].values()))
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert len(obj["predictions"]) == 6
    assert obj["expected_loss"]["loss"] <= min(p["loss"] for p in obj["predictions"]) + 1e-9
    for d, (lo, hi) in obj["intervals"]["weights"].items():
        assert 0 <= lo <= hi <= 1
