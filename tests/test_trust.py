"""How far to trust a recommendation: measured noise, signal-to-noise, intervals, epoch caps,
and the trust summary (issue: trust)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscale_ray.cli import main
from autoscale_ray.errors import BadInput
from autoscale_ray.fits.ddo import ddo
from autoscale_ray.fits.project import project
from autoscale_ray.laws.epochs import cap_epochs
from autoscale_ray.laws.noise import (parametric_draws, percentile_interval, perturbation_snr,
                                      replicate_sd)
from autoscale_ray.laws.lr_horizon import lr_prior_interval
from autoscale_ray.formatting import jsonable
from autoscale_ray.mixture import Mixture, read_available
from autoscale_ray.predictor import Predictor
from autoscale_ray.tuning.specs import ddo_perturbations
from autoscale_ray.searchers.ddo import DDOPlan, PlanConfig

from helpers import drive_plan

DOMAINS = ("fast", "mid", "slow")
E = np.array([1.0, 1.5, 2.0])
B = np.array([20.0, 30.0, 40.0])
G = np.array([0.6, 0.45, 0.35])


# -- laws: noise -------------------------------------------------------------------------------
def test_replicate_sd_and_snr_known_answers() -> None:
    assert replicate_sd(np.array([1.0, 2.0, 3.0])) == pytest.approx(1.0)
    assert math.isnan(float(replicate_sd(np.array([1.0]))))
    # runs: base x2 (mean 1.0), domain 0 moved by 0.3 and -0.1, domain 1 by 0.05
    y = np.array([0.99, 1.01, 1.3, 0.9, 1.05, 1.0])
    snr = perturbation_snr(y, [0, 1], [-1, -1, 0, 0, 1, -1], 2, sigma=0.1)
    se = 0.1 * math.sqrt(1 + 1 / 2)
    assert snr[0] == pytest.approx(0.3 / se) and snr[1] == pytest.approx(0.05 / se)


def test_percentile_interval_is_widened_to_the_included_points() -> None:
    draws = np.arange(101, dtype=float)[:, None]
    lo, hi = percentile_interval(draws, 0.9)
    assert lo[0] == pytest.approx(5.0) and hi[0] == pytest.approx(95.0)
    lo, hi = percentile_interval(draws, 0.9, include=np.array([[120.0]]))
    assert hi[0] == 120.0


def test_parametric_draws_are_seeded_and_skip_rejected_redraws() -> None:
    def solve(y: np.ndarray) -> np.ndarray:
        if y[0] > 1.0:
            raise BadInput("no root")
        return y * 2

    a = parametric_draws(solve, np.array([0.0, 0.0]), 1.0, 200, seed=3)
    b = parametric_draws(solve, np.array([0.0, 0.0]), 1.0, 200, seed=3)
    np.testing.assert_array_equal(a, b)
    assert 150 < len(a) < 200 and (a[:, 0] <= 2.0).all()  # P(y0 > 1) = 16%


# -- laws: epochs ------------------------------------------------------------------------------
def test_epoch_cap_holds_a_small_domain_and_redistributes_in_proportion() -> None:
    cap = cap_epochs(np.array([0.5, 0.3, 0.2]), 1e6, np.array([1e5, np.inf, np.inf]), 4.0)
    assert cap.feasible and cap.capped.tolist() == [True, False, False]
    assert cap.weights[0] == pytest.approx(0.4)  # 4 epochs x 1e5 / 1e6
    assert cap.weights[1] / cap.weights[2] == pytest.approx(1.5)  # the rest keeps its proportions
    assert cap.weights.sum() == pytest.approx(1.0) and cap.epochs[0] == pytest.approx(4.0)


def test_epoch_cap_cascades_and_reports_infeasible_data() -> None:
    cap = cap_epochs(np.array([0.6, 0.3, 0.1]), 1e6, np.array([1e5, 5e4, 1e6]), 4.0)
    assert cap.capped.tolist() == [True, True, False]
    np.testing.assert_allclose(cap.weights, [0.4, 0.2, 0.4])
    short = cap_epochs(np.array([0.5, 0.5]), 1e7, np.array([1e5, 3e5]), 4.0)
    assert not short.feasible and short.capped.all()
    np.testing.assert_allclose(short.epochs, [25.0, 25.0])  # every domain repeats alike


# -- LR interval from the prior ------------------------------------------------------------------
def test_lr_prior_interval_is_centred_on_the_moved_vertex_and_grows_with_the_extrapolation() -> None:
    near = lr_prior_interval(1e-3, 1e6, 2e6, 0.1, math.log(2), 0.9)
    far = lr_prior_interval(1e-3, 1e6, 1e9, 0.1, math.log(2), 0.9)
    for (lo, hi), tokens in ((near, 2e6), (far, 1e9)):  # the vertex moved along D^-0.32
        assert math.sqrt(lo * hi) == pytest.approx(1e-3 * (tokens / 1e6) ** -0.32, rel=1e-9)
    assert far[1] / far[0] > near[1] / near[0]
    # no vertex se: the grid's resolution stands in (half a log step, uniform)
    lo, hi = lr_prior_interval(1e-3, 1e6, 1e6, math.nan, math.log(4), 0.9)
    sd = math.log(4) / (2 * math.sqrt(3))
    assert math.log(hi / 1e-3) == pytest.approx(1.6448536 * sd, rel=1e-6)


# -- DDO with replicates -----------------------------------------------------------------------
def _losses(w: np.ndarray, tokens: float) -> np.ndarray:
    return E + B * np.maximum(w * tokens, 1.0) ** -G


def ddo_table(noise: float, seed: int, replicates: int = 2, scale: float = 1.0) -> pd.DataFrame:
    """DDO runs (final evaluations) of the separable oracle at 9e4 tokens with noise, the
    perturbation effects scaled by `scale` (a small scale buries them in the noise)."""
    rng = np.random.default_rng(seed)
    specs = ddo_perturbations(90_000, {d: 1 / 3 for d in DOMAINS}, replicates=replicates, seed=0)
    base = _losses(np.full(3, 1 / 3), 90_000)
    rows = []
    for s in specs:
        w = np.array([s.weights[d] for d in DOMAINS])
        per = base + scale * (_losses(w, s.budget) - base) + rng.normal(0, noise, 3)
        rows.append({"run_id": s.key, "tokens": s.budget, "budget": s.budget,
                     **{f"w.{d}": x for d, x in zip(DOMAINS, w)},
                     **{f"loss.{d}": x for d, x in zip(DOMAINS, per)}})
    return pd.DataFrame(rows)


def test_replicate_keys_and_seeds() -> None:
    specs = ddo_perturbations(1000, {"a": 0.5, "b": 0.5}, seed=7, replicates=2)
    reps = [s for s in specs if "base-seed" in s.key]
    assert [s.seed for s in reps] == [8, 9] and all(s.weights == specs[0].weights for s in reps)
    assert PlanConfig(probes=[1, 2], base_weights={"a": 0.5, "b": 0.5}, target=10, lr=1e-3,
                      replicates=2).planned_trials() == 2 * 5 + 2 * 2


@pytest.mark.parametrize("surrogate", ["paper", "transfer"])
def test_ddo_measures_the_noise_and_reports_intervals(tmp_path: Path, surrogate: str) -> None:
    path = tmp_path / "runs.csv"
    ddo_table(0.003, seed=1).to_csv(path, index=False)
    mix = ddo(str(path), surrogate=surrogate, bootstrap=60)
    e = mix.extra
    assert e["noise"]["measured_from"] == "replicates" and e["noise"]["replicates"] == 3
    assert e["noise"]["objective_sd"] > 0 and set(e["noise"]["per_domain_sd"]) == set(DOMAINS)
    assert all(v > 2 for v in e["snr"].values()) and e["within_noise"] == []
    assert e["bootstrap"]["used"] >= 50 and len(e["bootstrap_weights"]) == e["bootstrap"]["used"]
    for d, w in mix.weights.items():
        lo, hi = e["intervals"][d]
        assert lo <= w <= hi and 0 < hi - lo < 0.3
    again = ddo(str(path), surrogate=surrogate, bootstrap=60)
    assert again.extra["intervals"] == e["intervals"]  # seeded: reproducible


def test_effects_within_noise_are_named(tmp_path: Path, caplog) -> None:
    path = tmp_path / "runs.csv"
    ddo_table(0.02, seed=2, scale=0.02).to_csv(path, index=False)
    mix = ddo(str(path), bootstrap=40)
    assert set(mix.extra["within_noise"]) == set(DOMAINS)
    assert "rest on noise" in caplog.text


def test_without_replicates_the_noise_is_not_measured(tmp_path: Path, caplog) -> None:
    path = tmp_path / "runs.csv"
    ddo_table(0.003, seed=1, replicates=0).to_csv(path, index=False)
    mix = ddo(str(path))
    assert mix.extra["noise"]["measured_from"] is None and mix.extra["bootstrap"]["used"] == 0
    assert all(lo == hi for lo, hi in mix.extra["intervals"].values())  # no equally good fits here


# -- projection: intervals and availability ------------------------------------------------------
def sources(tmp_path: Path) -> list[Mixture]:
    out = []
    for tokens, seed in ((90_000, 1), (270_000, 2)):
        table = ddo_table(0.003, seed=seed)
        scale = tokens / 90_000
        table["tokens"] = table["budget"] = table["tokens"] * scale
        path = tmp_path / f"runs_{tokens}.csv"
        table.to_csv(path, index=False)
        out.append(ddo(str(path), bootstrap=60))
    return out


def test_projection_carries_the_bootstrap_and_caps_a_small_domain(tmp_path: Path) -> None:
    src = sources(tmp_path)
    free = project(src, 2.7e6)
    for d, w in free.weights.items():
        lo, hi = free.extra["intervals"][d]
        assert lo <= w <= hi
    assert free.extra["bootstrap"]["draws"] >= 50 and free.extra["capped"] == []
    small = free.weights["fast"] * 2.7e6 / 8  # half of what the free projection would repeat 4x
    capped = project(src, 2.7e6, available={"fast": small}, max_epochs=4)
    assert capped.extra["capped"] == ["fast"]
    assert capped.weights["fast"] == pytest.approx(free.weights["fast"] / 2)
    assert capped.extra["epochs"]["fast"] == pytest.approx(4.0)
    ratio = capped.weights["mid"] / capped.weights["slow"]
    assert ratio == pytest.approx(free.weights["mid"] / free.weights["slow"])
    assert capped.extra["intervals"]["fast"][1] <= capped.weights["fast"] + 1e-12  # the cap binds


def test_project_verb_available_file_and_its_bad_input(tmp_path: Path, capsys) -> None:
    src = sources(tmp_path)
    files = []
    for k, mix in enumerate(src):
        files.append(str(tmp_path / f"mix{k}.json"))
        Path(files[-1]).write_text(json.dumps(jsonable(mix.to_json())))
    avail = tmp_path / "avail.json"
    avail.write_text(json.dumps({"fast": 1e4}))
    assert main(["project", *files, "--target-tokens", "2.7e6", "--available", str(avail),
                 "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["capped"] == ["fast"] and set(obj["intervals"]) == set(DOMAINS)
    csv = tmp_path / "avail.csv"
    csv.write_text("domain,tokens\nfast,100000\nmid,1e9\n")
    assert read_available(csv) == {"fast": 1e5, "mid": 1e9}
    bad = {"unknown.json": {"web": 1e5}, "negative.json": {"fast": -3}}
    for name, content in bad.items():
        (tmp_path / name).write_text(json.dumps(content))
        code = main(["project", *files, "--target-tokens", "2.7e6", "--available",
                     str(tmp_path / name)])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
    for cap in ("0", "-1"):
        assert main(["project", *files, "--target-tokens", "2.7e6", "--max-epochs", cap]) == 2
        err = capsys.readouterr().err
        assert "maximum epochs" in err and len(err.strip().splitlines()) == 1


# -- the predictor: the recommendation's intervals and trust ----------------------------------
def oracle_rows(noise: float, seed: int):
    rng = np.random.default_rng(seed)

    def rows(spec) -> list[dict]:
        w = np.array([spec.weights[d] for d in DOMAINS])
        out = []
        for tokens in np.geomspace(spec.budget / 8, spec.budget, 5):
            per = _losses(w, tokens) + rng.normal(0, noise, 3)
            out.append({"run_id": spec.key, "tokens": float(tokens), "budget": spec.budget,
                        "lr": spec.lr, **{f"w.{d}": float(x) for d, x in zip(DOMAINS, w)},
                        **{f"loss.{d}": float(x) for d, x in zip(DOMAINS, per)}})
        return out
    return rows


def run_plan(noise: float, seed: int, **predictor):
    probes, target = [20_000, 80_000], 1_280_000
    cfg = PlanConfig(probes=probes, base_weights={d: 1 / 3 for d in DOMAINS}, target=target,
                     lr=1e-3, replicates=2)
    pred = Predictor(DOMAINS, target, probes=probes, lr=1e-3, **predictor)
    plan = DDOPlan(cfg)
    plan.start()
    drive_plan(plan, pred, oracle_rows(noise, seed))
    return plan.results["recommendation"]


def test_recommendation_carries_intervals_and_a_trust_summary() -> None:
    rec = run_plan(0.002, seed=0, available={"fast": 2e3})
    assert set(rec["weights_interval"]) == set(DOMAINS) and rec["interval_level"] == 0.9
    for d, w in rec["weights"].items():
        lo, hi = rec["weights_interval"][d]
        assert lo <= w <= hi
        lo, hi = rec["expected_loss_interval"][d]
        assert lo <= rec["expected_loss"]["per_domain"][d] <= hi
    # a fixed LR: no interval to report, said as such
    assert rec["lr_interval_method"] == "fixed"
    # 2e3 tokens of `fast` hold at most 4 x 2e3 / 1.28e6 = 0.625% of the target
    assert rec["capped"] == ["fast"] and rec["weights"]["fast"] == pytest.approx(0.00625)
    assert rec["epochs"]["fast"] == pytest.approx(4.0)
    trust = rec["trust"]
    assert trust["distinguishable"] and trust["within_noise"] == []
    assert trust["extrapolation_factor"] == pytest.approx(16.0)
    assert set(trust["noise"]) == {"20000", "80000"}
    assert all(n["noise"]["replicates"] == 3 for n in trust["noise"].values())
    # the default number of redraws of each probe's optimum (search.bootstrap unset)
    assert [o["bootstrap"]["draws"] for o in rec["evidence"]["probe_optima"].values()] == [100, 100]


def test_a_search_buried_in_noise_says_so() -> None:
    rec = run_plan(0.5, seed=0, bootstrap=20)  # the verdict reads the noise, not the redraws
    trust = rec["trust"]
    assert not trust["distinguishable"] and trust["within_noise"]
    assert "cannot tell" in trust["verdict"] and trust["actions"]


def test_search_bootstrap_sets_every_fits_redraws() -> None:
    """`search.bootstrap`: the DDO optima's and the budget law's redraws (fewer: faster fits,
    coarser intervals; the default, 100, in the test above). Each probe's optimum is the same fit;
    the projection's guard reads the optima's spread (fits/project.py), so the projected point may
    move, within the intervals."""
    more, fewer = run_plan(0.002, seed=0, bootstrap=20), run_plan(0.002, seed=0, bootstrap=10)
    optima = [{p: o["weights"] for p, o in rec["evidence"]["probe_optima"].items()} for rec in (more, fewer)]
    assert optima[0] == optima[1] and fewer["lr"] == more["lr"]
    for rec, draws in ((more, 20), (fewer, 10)):
        assert [o["bootstrap"]["draws"] for o in rec["evidence"]["probe_optima"].values()] == [draws, draws]
        assert rec["evidence"]["budget_law"]["used"] and rec["evidence"]["budget_law"]["draws"] == draws
        other = fewer if rec is more else more
        for d, (lo, hi) in rec["weights_interval"].items():
            assert lo <= rec["weights"][d] <= hi and lo <= other["weights"][d] <= hi
    assert fewer["weights_interval"] != more["weights_interval"]


# -- the config's data settings ------------------------------------------------------------------
@pytest.mark.parametrize("search, message", [
    ({"available_tokens": {"nope": 1e6}}, "available_tokens names unknown domain"),
    ({"available_tokens": {"markov": -5}}, "available_tokens.markov"),
    ({"max_epochs": 0}, "max_epochs"),
    ({"max_epochs": -1}, "max_epochs"),
    ({"ddo": {"replicates": 1.5}}, "replicates"),
    ({"bootstrap": 5}, "search.bootstrap"),
    ({"bootstrap": 20.5}, "search.bootstrap"),
])
def test_bad_data_settings_are_one_line(tmp_path: Path, search: dict, message: str) -> None:
    from autoscale_ray.config import load_config
    from autoscale_ray.pipeline import check_domains, declared_domains
    from helpers import experiment_config, write_config

    cfg_dict = experiment_config("trust", tmp_path / "cache")
    ddo = {**cfg_dict["search"].get("ddo", {}), **search.pop("ddo", {})}
    cfg_dict["search"].update({**search, "ddo": ddo})
    path = write_config(tmp_path / "c.yaml", cfg_dict)
    with pytest.raises(BadInput, match=message) as err:
        check_domains(load_config(path), declared_domains(load_config(path)))
    assert "\n" not in str(err.value)


def test_the_config_carries_the_data_settings(tmp_path: Path) -> None:
    from autoscale_ray.config import load_config
    from helpers import experiment_config, write_config

    cfg_dict = experiment_config("trust", tmp_path / "cache", drop=("search.ddo.replicates",))
    cfg_dict["search"].update({"max_epochs": 2.5, "available_tokens": {"markov": 1e6}})
    search = load_config(write_config(tmp_path / "c.yaml", cfg_dict)).search
    assert search.max_epochs == 2.5 and search.available_tokens == {"markov": 1e6}
    assert search.replicates == 2  # the default: the noise is measured
    assert search.bootstrap is None  # the default: each fit's own number of redraws
    cfg_dict["search"]["bootstrap"] = 40
    assert load_config(write_config(tmp_path / "c.yaml", cfg_dict)).search.bootstrap == 40


def test_the_verdict_names_no_budget_below_the_probes() -> None:
    """Seed 1 of the demo: median signal/noise 3.3 and 14.5 at the two probes, yet fewer than half
    the domains above the noise at the first: the verdict must not ask for a smaller probe."""
    from autoscale_ray.fits.trust import _verdict

    line = _verdict(False, ["100000", "300000"], {"100000": 3.3, "300000": 14.5}, [100000, 300000])
    assert "cannot tell" in line and "tokens would reach" not in line and "more seeds" in line
    line = _verdict(False, ["100000", "300000"], {"100000": 0.5, "300000": 1.0}, [100000, 300000])
    need = float(line.split("about ")[1].split(" tokens")[0])
    assert need > 300000
