"""`search.method` end to end on real Ray: each method trains real gpt2-tiny proxies on the synthetic
corpus in one Tune experiment (real Ray Data, real Tune trials) and writes the same outputs as the
default method, through the Python API inside one `ray.init()` (the CLI calls the same function)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from autoscale_ray import search
from autoscale_ray.tuning import layout

from data_fixtures import cli, ray_local  # noqa: F401
from helpers import experiment_config

pytestmark = pytest.mark.slow

SWARM = {"size": 5, "budget": 8e3}


def config(method: str, cache: Path, **search_keys) -> dict:
    swarm = dict(SWARM, **({"size": 6} if method == "log-linear" else {}))
    if method == "fixed":
        swarm["weights"] = {"templates": 0.4, "markov": 0.2, "zipf_small": 0.2, "zipf_large": 0.2}
    if method in ("uniform", "fixed"):
        swarm["size"] = 2
    return experiment_config(f"m-{method}", cache, drop=("search.probe_budgets", "search.verify_probe"),
                             train={"eval_count": 3},
                             search={"method": method, "swarm": swarm, "ddo": {"replicates": 1},
                                     **search_keys})


def outputs(out: Path) -> set[str]:
    return {p.name for p in out.iterdir()}


# what a search with a fixed LR writes in --out, whatever its method (a DDO search the same;
# no lr_law.png without an LR sweep)
WRITTEN = {layout.MARKER, layout.LOCK, layout.DONE, layout.TRAINED, layout.TUNE, layout.RUNS, layout.RECOMMENDATION,
           layout.REPORT, layout.PROGRESS, "loss_curves.png", "mixtures.png", "responses.png"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, ray_local) -> Path:  # noqa: F811
    """One folder (and one packed corpus) for every method's search, in one Ray instance."""
    return tmp_path_factory.mktemp("methods")


@pytest.mark.parametrize("method", ["regmix", "log-linear", "random", "tpe", "uniform", "fixed"])
def test_each_method_runs_the_search_and_writes_the_same_outputs(method: str, reference: Path) -> None:
    out = reference / method
    result = search(config(method, reference / "cache"), out)
    rec = result.recommendation
    assert outputs(out) == WRITTEN
    assert rec["method"] == method and rec["evidence"]["swarm"]["method"] == method
    runs = result.runs
    final = runs.loc[runs.groupby("key")["tokens"].idxmax()]
    planned = 2 if method in ("uniform", "fixed") else SWARM["size"] + (method == "log-linear") + 2
    assert len(final) == planned and set(final["stage"]) == {"swarm"}
    assert (final["budget"] == SWARM["budget"]).all() and (final["status"] != "failed").all()
    assert {f"loss.{d}" for d in rec["weights"]} <= set(runs.columns)
    assert sum(rec["weights"].values()) == pytest.approx(1.0)
    for d, (lo, hi) in rec["weights_interval"].items():
        assert lo <= rec["weights"][d] <= hi
    if method == "fixed":
        assert rec["weights"]["templates"] == pytest.approx(0.4)
    if method in ("uniform", "fixed"):  # one mixture: its runs differ only in the seed
        assert final["seed"].nunique() == 2 and final[[f"w.{d}" for d in rec["weights"]]].nunique().max() == 1
    else:  # the replicated prior and the swarm's own mixtures
        assert final[[f"w.{d}" for d in rec["weights"]]].drop_duplicates().shape[0] >= planned - 1
        assert rec["trust"]["noise"][str(int(SWARM["budget"]))]["noise"]["objective_sd"] > 0
    report = (out / layout.REPORT).read_text()
    assert f"by method {method}" in report and "How far to trust this" in report
    assert pd.read_parquet(out / layout.RUNS)["key"].nunique() == planned


# -- compare: the searches' recommendations trained at the target -----------------------------
@pytest.fixture(scope="module")
def finished(reference: Path) -> list[Path]:
    """Two finished searches (the method tests' when they ran first in this module)."""
    outs = []
    for method in ("regmix", "fixed"):
        out = reference / method
        if not (out / layout.RECOMMENDATION).exists():
            search(config(method, reference / "cache"), out)
        outs.append(out)
    return outs


def test_compare_trains_each_recommendation_and_the_uniform_mixture(finished: list[Path], cli) -> None:  # noqa: F811
    out = finished[0].parent / "comparison"
    code, stdout, err = cli("compare", *map(str, finished), "--seeds", "2", "--budget", "1.6e4",
                            "--out", str(out), "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert list(result["arms"]) == ["regmix", "fixed", "uniform-mixture"] and result["tokens"] == 16_000
    runs = pd.read_parquet(out / "comparison_runs.parquet")
    final = runs.loc[runs.groupby("key")["tokens"].idxmax()]
    assert len(final) == 6 and set(final["budget"]) == {16_000}  # 3 arms x 2 seeds, at the budget
    for arm, a in result["arms"].items():
        sel = final[final["arm"] == arm]
        assert a["seeds"] == [0, 1] and a["objective"] == pytest.approx(sel["loss"].mean())
        assert a["interval"][0] < a["objective"] < a["interval"][1]
        weights = sel[[f"w.{d}" for d in a["weights"]]].iloc[0].to_dict()
        assert weights == pytest.approx({f"w.{d}": w for d, w in a["weights"].items()})
    pair = next(p for p in result["paired"] if (p["a"], p["b"]) == ("regmix", "fixed"))
    by_seed = {arm: final[final["arm"] == arm].set_index("seed")["loss"] for arm in ("regmix", "fixed")}
    assert pair["difference"] == pytest.approx((by_seed["regmix"] - by_seed["fixed"]).mean())
    spent = result["arms"]["regmix"]["search_compute"]
    assert spent["trials"] == SWARM["size"] + 2 and spent["proxy_tokens"] == pytest.approx(spent["trials"] * 8e3, rel=0.05)
    assert "uniform-mixture" in (out / "comparison.md").read_text() and (out / "comparison.png").stat().st_size > 0


def test_compare_refuses_bad_input_in_one_line(finished: list[Path], tmp_path: Path, cli) -> None:  # noqa: F811
    other = tmp_path / "other"
    shutil.copytree(finished[1], other, ignore=shutil.ignore_patterns("tune"))
    rec = json.loads((other / layout.RECOMMENDATION).read_text())
    rec["weights"] = {"web": 0.5, "code": 0.5}
    (other / layout.RECOMMENDATION).write_text(json.dumps(rec))
    (tmp_path / "empty").mkdir()
    cases = [([str(tmp_path / "empty")], "not a finished search folder"),
             ([str(finished[0]), str(other)], "differ from"),
             ([str(finished[0]), "--seeds", "0"], "--seeds 0")]
    for args, piece in cases:
        code, stdout, err = cli("compare", *args, "--out", str(tmp_path / "c"))
        assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1 and piece in err, err
        assert not (tmp_path / "c").exists()


# -- the mixing-law projector: DDO's design at three probe model sizes -------------------------
MODELS = ["gpt2-nano", "gpt2-micro", "gpt2-tiny"]


def test_mixing_law_projector_runs_the_search_end_to_end(reference: Path, monkeypatch) -> None:
    """Three tiny proxy sizes, each DDO's 2m + 1 design plus a replicate, one fixed LR; the law's
    mixture at a 2e6-parameter target. The corpus cache is a RELATIVE path: trials run in their
    own folders, so the contract must carry it resolved."""
    monkeypatch.chdir(reference)
    cfg = experiment_config("m-mixlaw", "cache", drop=("train.model", "search.verify_probe"),
                            search={"probe_budgets": [1.2e4], "projector": "mixing-law",
                                    "probe_models": MODELS, "target_params": 2e6,
                                    "ddo": {"replicates": 1}})
    out = reference / "mixlaw"
    rec = search(cfg, out).recommendation
    assert outputs(out) == WRITTEN
    runs = pd.read_parquet(out / layout.RUNS)
    final = runs.loc[runs.groupby("key")["tokens"].idxmax()]
    assert len(final) == 3 * (2 * 4 + 1 + 1) and set(final["stage"]) == {"mixlaw"}
    assert final["params"].nunique() == 3 and (final["status"] != "failed").all()
    assert sorted(final["key"].str.split("/").str[1].unique()) == sorted(MODELS)
    # the recommendation names the law, its form and held-out error, at the target model size
    assert rec["projector"] == "mixing-law" and rec["target_params"] == 2e6 and rec["tokens"] == 2e5
    law = rec["evidence"]["mixing_law"]
    err = law["held_out_error"][law["form"]]
    assert 0 < err < 1 and law["held_out_params"] == final["params"].max()
    assert len(law["sizes"]) == 3 and law["n_runs"] == len(final)
    assert any(f"held-out error {100 * err:.2f}%" in n for n in rec["evidence"]["notes"])
    assert sum(rec["weights"].values()) == pytest.approx(1.0)
    for d, (lo, hi) in rec["weights_interval"].items():
        assert lo - 1e-9 <= rec["weights"][d] <= hi + 1e-9
    exp = rec["expected_loss"]
    assert exp["source"] == "mixing-law" and set(exp["per_domain"]) == set(rec["weights"])
    assert exp["objective_interval"][0] <= exp["objective"] <= exp["objective_interval"][1]
    assert rec["trust"]["projector"] == "mixing-law" and rec["trust"]["params_factor"] > 1
    for n in law["noise"].values():  # each probe model's base and its replicate
        assert n["replicates"] == 2 and n["objective_sd"] is not None
    report = (out / layout.REPORT).read_text()
    assert "by the mixing law" in report and f"held-out error {100 * err:.2f}%" in report
