"""The `lr` and `regress` verbs: Python API, register() on a fresh parser, and the command line
(autoscale_ray.cli.main in this process; tests/test_bad_input_matrix.py runs the installed script)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.regression import fit_ridge_mixture
from autoscale_ray.verbs import lr as lr_verb
from autoscale_ray.verbs import regress as regress_verb
from data_fixtures import cli  # noqa: F401  (a fixture: the command in this process)

DATA = Path(__file__).parent / "data" / "regmix_1m"
B_TRUE, BETA_TRUE = 0.9, 0.32


def lr_runs(horizons=(1e8, 4e8, 1.6e9, 6.4e9), grid=np.logspace(-4.5, -1, 9),
            checkpoints: bool = True, seed: int = 0) -> pd.DataFrame:
    """An LR sweep as a runs table: each run evaluated at two checkpoints, the last one final."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in horizons:
        for g in grid:
            x = math.log(g) - math.log(B_TRUE * d ** -BETA_TRUE)
            final = 2.0 + 50 * d ** -0.3 + 0.05 * x * x + 0.002 * x ** 3 \
                + 0.003 * rng.standard_normal()
            run = f"d{d:.0e}-lr{g:.2e}"
            if checkpoints:  # an earlier, worse checkpoint the verb must not use
                rows.append({"run_id": run, "tokens": d / 2, "budget": d, "lr": g,
                             "loss": final + 1.0})
            rows.append({"run_id": run, "tokens": d, "budget": d, "lr": g, "loss": final})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def regmix_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, pd.DataFrame]:
    """The RegMix 1M runs as a runs table (`w.<domain>`, `loss.pile_cc`) and a MIXES table."""
    mix = pd.read_csv(DATA / "train_mixture_1m.csv")
    loss = pd.read_csv(DATA / "train_pile_loss_1m.csv")
    joined = mix.merge(loss, on="index", validate="one_to_one")
    runs = pd.DataFrame({"run_id": joined["index"].astype(str), "tokens": 1e9})
    for col in mix.columns[1:]:
        runs["w." + col.removeprefix("train_the_pile_")] = joined[col]
    runs["loss.pile_cc"] = joined["metric/the_pile_pile_cc_val_loss"]
    folder = tmp_path_factory.mktemp("regmix")
    runs.to_csv(folder / "runs.csv", index=False)
    wcols = [c for c in runs.columns if c.startswith("w.")]
    # MIXES in a shuffled order and with the columns reversed: rows must come back in this order
    mixes = runs.iloc[[40, 7, 300, 2, 511]][wcols[::-1]].reset_index(drop=True)
    mixes.to_parquet(folder / "mixes.parquet")
    return folder / "runs.csv", folder / "mixes.parquet", mixes


def parse(register, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="autoscale-ray")
    register(parser.add_subparsers(dest="verb", required=True))
    return parser.parse_args(argv)


# ---------------------------------------------------------------- lr

def test_lr_api_uses_final_evaluations(tmp_path: Path) -> None:
    path = tmp_path / "runs.parquet"
    lr_runs().to_parquet(path)
    obj = lr_verb.lr_law(path, 1e11)
    assert abs(obj["beta"] - BETA_TRUE) < 0.03
    lo, hi = obj["lr_interval"]
    assert lo < obj["lr_at_target"] < hi
    assert lo < B_TRUE * 1e11 ** -BETA_TRUE < hi
    assert [h["tokens"] for h in obj["per_horizon"]] == [1e8, 4e8, 1.6e9, 6.4e9]
    assert all(h["n_lrs"] == 9 and not h["at_edge"] for h in obj["per_horizon"])
    assert obj["target_tokens"] == 1e11 and obj["n_horizons_used"] == 4


def test_lr_register_and_edge_flag(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    lr_runs(horizons=(1e8, 4e8, 1.6e9, 1e12), grid=np.logspace(-4, -1, 9)).to_csv(path, index=False)
    args = parse(lr_verb.register, ["lr", str(path), "--target-tokens", "20B", "--json"])
    assert args.target_tokens == 2e10 and args.json
    obj, text = args.func(args)
    edge = [h for h in obj["per_horizon"] if h["at_edge"]]
    assert [h["tokens"] for h in edge] == [1e12] and not edge[0]["used"]
    assert obj["n_horizons_used"] == 3
    assert "LR*(D) =" in text and "1e+12" in text
    args = parse(lr_verb.register, ["lr", str(path), "--target-tokens", "2e10", "--include-edge"])
    assert args.func(args)[0]["n_horizons_used"] == 4


def test_lr_single_horizon_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    lr_runs(horizons=(1e9,)).to_csv(path, index=False)
    with pytest.raises(BadInput, match="a single horizon"):
        lr_verb.lr_law(path, 1e10)


def test_lr_needs_an_lr_column(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    lr_runs().drop(columns="lr").to_csv(path, index=False)
    with pytest.raises(BadInput, match="`lr`"):
        lr_verb.lr_law(path, 1e10)


@pytest.mark.parametrize("text,value", [("2e10", 2e10), ("20B", 2e10), ("500M", 5e8),
                                         ("1_000", 1e3), ("3T", 3e12)])
def test_parse_tokens(text: str, value: float) -> None:
    assert lr_verb.parse_tokens(text) == value


@pytest.mark.parametrize("text", ["", "abc", "-5", "0", "inf", "12X"])
def test_parse_tokens_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        lr_verb.parse_tokens(text)


# ---------------------------------------------------------------- regress

def test_regress_predicts_in_mixes_row_order(regmix_files) -> None:
    runs, mixes_path, mixes = regmix_files
    obj = regress_verb.regress(runs, "loss.pile_cc", mixes_path)
    table = pd.read_csv(runs)
    rows = [40, 7, 300, 2, 511]
    wcols = [c for c in table.columns if c.startswith("w.")]
    w = table[wcols].to_numpy(float)
    fit = fit_ridge_mixture(w, table["loss.pile_cc"].to_numpy(float))
    pred = np.array(obj["predictions"])
    assert pred == pytest.approx(fit.predict(w[rows]), rel=1e-12)  # MIXES order, its columns reordered
    assert np.abs(pred - table["loss.pile_cc"].to_numpy()[rows]).max() < 0.3
    assert obj["cv_spearman"] >= 0.97 and obj["n_runs"] == 512


def test_regress_register_with_search(regmix_files) -> None:
    runs, mixes_path, _ = regmix_files
    args = parse(regress_verb.register, ["regress", str(runs), "--target", "loss.pile_cc",
                                         "--predict", str(mixes_path), "--search", "5000"])
    obj, text = args.func(args)
    best = obj["best_mixture"]
    assert best["tokens"] == 1e9 and sum(best["weights"].values()) == pytest.approx(1.0)
    assert max(best["weights"], key=best["weights"].get) == "pile_cc"
    assert best["top_k"] == 128 and best["n_samples"] == 5000
    assert "best mixture" in text and "pile_cc" in text


def test_regress_domain_mismatch_names_file_and_column(regmix_files, tmp_path: Path) -> None:
    runs, _, mixes = regmix_files
    missing = tmp_path / "missing.csv"
    mixes.drop(columns="w.github").to_csv(missing, index=False)
    with pytest.raises(BadInput, match=r"missing\.csv.*w\.github|w\.github.*missing\.csv"):
        regress_verb.regress(runs, "loss.pile_cc", missing)
    extra = tmp_path / "extra.csv"
    mixes.assign(**{"w.books3": 0.1}).to_csv(extra, index=False)
    with pytest.raises(BadInput, match=r"extra\.csv, column `w\.books3`"):
        regress_verb.regress(runs, "loss.pile_cc", extra)


@pytest.mark.parametrize("value,match", [(-0.1, "not a finite number >= 0"),
                                         ("abc", "`abc` is not a finite number"),
                                         (float("nan"), "not a finite number")])
def test_regress_bad_mix_value_names_row_and_column(regmix_files, tmp_path: Path,
                                                    value, match) -> None:
    runs, _, mixes = regmix_files
    bad = mixes.astype(object)
    bad.loc[2, "w.arxiv"] = value
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(BadInput, match=rf"bad\.csv, row 3, column `w\.arxiv`.*{match}|{match}"):
        regress_verb.regress(runs, "loss.pile_cc", path)
    with pytest.raises(BadInput, match=r"row 3, column `w\.arxiv`"):
        regress_verb.regress(runs, "loss.pile_cc", path)


def test_regress_all_zero_mixture(regmix_files, tmp_path: Path) -> None:
    runs, _, mixes = regmix_files
    zero = mixes.copy()
    zero.loc[1, :] = 0.0
    path = tmp_path / "zero.csv"
    zero.to_csv(path, index=False)
    with pytest.raises(BadInput, match=r"zero\.csv, row 2.*all mixture weights are zero"):
        regress_verb.regress(runs, "loss.pile_cc", path)


def test_regress_unknown_target(regmix_files) -> None:
    runs, mixes_path, _ = regmix_files
    with pytest.raises(BadInput, match="loss.books3"):
        regress_verb.regress(runs, "loss.books3", mixes_path)


# ---------------------------------------------------------------- the command line

def test_cli_lr_json(tmp_path: Path, cli) -> None:  # noqa: F811
    path = tmp_path / "runs.csv"
    lr_runs().to_csv(path, index=False)
    code, out, err = cli("lr", str(path), "--target-tokens", "1e11", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert abs(obj["beta"] - BETA_TRUE) < 0.03 and len(obj["lr_interval"]) == 2
    assert set(obj) >= {"B", "beta", "lr_at_target", "lr_interval", "per_horizon", "target_tokens"}


def test_cli_lr_bad_input_exit_2(tmp_path: Path, cli) -> None:  # noqa: F811
    path = tmp_path / "runs.csv"
    lr_runs(horizons=(1e9,)).to_csv(path, index=False)
    code, out, err = cli("lr", str(path), "--target-tokens", "1e11", "--json")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert "error" in lines[-1] and "a single horizon" in lines[-1]
    assert all(line.startswith("autoscale-ray") for line in lines)  # no traceback


def test_cli_regress_json(regmix_files, cli) -> None:  # noqa: F811
    runs, mixes_path, _ = regmix_files
    code, out, err = cli("regress", str(runs), "--target", "loss.pile_cc", "--predict", str(mixes_path), "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["predictions"] == pytest.approx(
        regress_verb.regress(runs, "loss.pile_cc", mixes_path)["predictions"])
