"""Fit health, table-driven: every way a fit went wrong or an input came in the wrong units that
issue 16 found (and more of the same kinds) is a named warning or a one-line exit-2 error, never
a silent number; the published runs shipped in examples/ (copies of /work/shared/data, see
examples/README.md) fit with no warning.

Each case starts from a healthy published table (examples/), breaks one thing, and runs the verb
in this process (`autoscale_ray.cli.main`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscale_ray.cli import main
from autoscale_ray.laws.health import Finding, robust_outliers
from autoscale_ray.fits.health import fit_health

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def ddo_runs() -> pd.DataFrame:
    return pd.read_csv(EXAMPLES / "ddo_gpt2_large_1.2b.csv")


def lr_runs() -> pd.DataFrame:
    return pd.read_csv(EXAMPLES / "lr_sweeps.csv")


def dml() -> pd.DataFrame:
    return pd.read_csv(EXAMPLES / "law_mixinglaws_checkpoints.csv")


def chinchilla() -> pd.DataFrame:
    return pd.read_csv(EXAMPLES / "law_chinchilla.csv")


def regmix() -> pd.DataFrame:
    return pd.read_csv(EXAMPLES / "regress_regmix_1m.csv")


def mixture(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def change(frame: pd.DataFrame, row: int, column: str, value: float) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[row, column] = value
    return frame


def sizes(frame: pd.DataFrame, keep: tuple[float, ...]) -> pd.DataFrame:
    return frame[frame["params"].isin(keep)].reset_index(drop=True)


def ddo_as_declared_budget() -> pd.DataFrame:
    """The paper's fixed-others runs with `tokens`/`budget` the declared 1.2e9 for every run."""
    return ddo_runs().assign(tokens=1.2e9, budget=1.2e9)


def ddo_unnormalised() -> pd.DataFrame:
    """Weights written as multiplier / 7 (shares of the base budget, not of the run's total)."""
    f = ddo_runs()
    w = [c for c in f.columns if c.startswith("w.")]
    x = f[w].to_numpy() * f[["tokens"]].to_numpy() / (1.2e9 / 7)
    return f.assign(**{c: x[:, i] / 7 for i, c in enumerate(w)}, tokens=1.2e9, budget=1.2e9)


def regmix_accuracy() -> pd.DataFrame:
    f = regmix()
    return f.assign(accuracy=1.0 / f["loss.pile_cc"]).drop(columns="loss.pile_cc")


def lr_one_edge() -> pd.DataFrame:
    """The largest horizon swept only above its optimum: its best LR sits at the grid's edge."""
    f = lr_runs()
    return f[~((f["budget"] == 6.4e9) & (f["lr"] < 1.2e-3))].reset_index(drop=True)


def two_mixtures(a: dict, b: dict) -> dict:
    return {"a.json": a, "b.json": b}


def third_source_off_the_lines() -> dict:
    """A 4.8B optimum continuing the notebook's 0.3B -> 1.2B shift, with cc x3 and arxiv / 3."""
    a, b = mixture("mix_0.3b.json"), mixture("mix_1.2b.json")
    q = {d: (b["weights"][d] * b["tokens"]) ** 2 / (a["weights"][d] * a["tokens"]) for d in a["weights"]}
    q["cc"], q["arxiv"] = 3 * q["cc"], q["arxiv"] / 3
    return {"tokens": sum(q.values()), "weights": {d: v / sum(q.values()) for d, v in q.items()}}


MIX = ["project", "a.json", "b.json", "--target-tokens"]
MIXES_OUTSIDE = pd.DataFrame([{**{c: 0.0 for c in regmix().columns if c.startswith("w.")},
                               "w.pile_cc": 0.5, "w.enron_emails": 0.5}])

# (name, files {name: DataFrame | dict}, argv, expected: a check name (warning) or
#  ("error", [pieces of the one error line]))
CASES: list[tuple[str, dict, list[str], object]] = [
    # ---- the cases of issue 16 ----
    ("law on 3 model sizes", {"r.csv": sizes(dml(), (70e6, 160e6, 410e6))},
     ["law", "r.csv", "--bootstrap", "0"], "enough_sizes"),
    ("law --holdout-largest fits 2 sizes", {"r.csv": sizes(dml(), (70e6, 160e6, 1e9))},
     ["law", "r.csv", "--bootstrap", "0", "--holdout-largest"], "enough_sizes"),
    ("lr with tokens in billions", {"r.csv": lr_runs().assign(tokens=lambda f: f.tokens / 1e9,
                                                            budget=lambda f: f.budget / 1e9)},
     ["lr", "r.csv", "--target-tokens", "100"], "tokens_units"),
    ("lr target in tokens, runs in billions", {"r.csv": lr_runs().assign(
        tokens=lambda f: f.tokens / 1e9, budget=lambda f: f.budget / 1e9)},
     ["lr", "r.csv", "--target-tokens", "4e10"], "extrapolation"),
    ("project sources in billions", two_mixtures({**mixture("mix_0.3b.json"), "tokens": 0.3},
                                                 {**mixture("mix_1.2b.json"), "tokens": 1.2}),
     [*MIX, "5e9"], ("error", ["beyond the 1e+06x", "look like billions"])),
    ("ddo with tokens in billions", {"r.csv": ddo_runs().assign(tokens=lambda f: f.tokens / 1e9,
                                                              budget=lambda f: f.budget / 1e9)},
     ["ddo", "r.csv", "--metric", "mean-ppl"], "tokens_units"),
    ("ddo loss typo 37 for 3.7", {"r.csv": change(ddo_runs(), 3, "loss.books", 37.0)},
     ["ddo", "r.csv"], "loss_units"),
    ("ddo loss typo is an outlier", {"r.csv": change(ddo_runs(), 3, "loss.books", 37.0)},
     ["ddo", "r.csv"], "outlier"),
    ("ddo perplexities in loss columns, mean-ppl",
     {"r.csv": ddo_runs().assign(**{c: np.exp(ddo_runs()[c]) for c in ddo_runs().columns
                                    if c.startswith("loss.")})},
     ["ddo", "r.csv", "--metric", "mean-ppl"], "loss_units"),
    ("law on perplexities", {"r.csv": dml().assign(loss=lambda f: np.exp(f.loss))},
     ["law", "r.csv", "--bootstrap", "0"], "loss_units"),
    ("regress loss 1e30 in one row", {"r.csv": change(regmix(), 17, "loss.pile_cc", 1e30)},
     ["regress", "r.csv", "--target", "loss.pile_cc"], "outlier"),
    ("regress loss 1e30 ranks poorly", {"r.csv": change(regmix(), 17, "loss.pile_cc", 1e30)},
     ["regress", "r.csv", "--target", "loss.pile_cc"], "fit_quality"),
    ("regress accuracy target minimised", {"r.csv": regmix_accuracy()},
     ["regress", "r.csv", "--target", "accuracy", "--search", "2000"], "target_direction"),
    ("regress duplicates name the flag it accepts",
     {"r.csv": pd.concat([regmix(), regmix().iloc[[5]]]).assign(tokens=1e9)},
     ["regress", "r.csv", "--target", "loss.pile_cc"], ("error", ["duplicate", "--average-duplicates"])),
    ("lr duplicates name the flag it accepts", {"r.csv": pd.concat([lr_runs(), lr_runs().iloc[[2]]])},
     ["lr", "r.csv", "--target-tokens", "1e11"], ("error", ["duplicate", "--average-duplicates"])),
    ("ddo all-zero weight column", {"r.csv": ddo_runs().assign(**{"w.extra": 0.0})},
     ["ddo", "r.csv"], ("error", ["`w.extra`", "0 in every run"])),
    ("ddo weights not summing to 1", {"r.csv": ddo_unnormalised()},
     ["ddo", "r.csv", "--metric", "mean-ppl"], "weight_sums"),
    ("ddo one run's weights off 1", {"r.csv": change(ddo_runs(), 3, "w.books", 1.5 * ddo_runs()["w.books"][3])},
     ["ddo", "r.csv"], ("error", ["changes 7 domains", "`down.books` summing to 1.016", "do not sum to 1"])),
    ("ddo design flips to fixed-total", {"r.csv": ddo_as_declared_budget()},
     ["ddo", "r.csv", "--metric", "mean-ppl"], "design"),
    ("ddo declared factor the runs lack", {"r.csv": ddo_runs()},
     ["ddo", "r.csv", "--metric", "mean-ppl", "--down", "0.3333"],
     ("error", ["without the declared 0.3333", "fixed-others"])),
    ("project target 1e40", two_mixtures(mixture("mix_0.3b.json"), mixture("mix_1.2b.json")),
     [*MIX, "1e40"], ("error", ["beyond the 1e+06x"])),
    ("project target below its sources", two_mixtures(mixture("mix_0.3b.json"),
                                                      mixture("mix_1.2b.json")),
     [*MIX, "5e8"], ("error", ["not above the largest source"])),
    ("regress mixes budgets", {"r.csv": regmix().assign(budget=[1e9] * 256 + [4e9] * 256)},
     ["regress", "r.csv", "--target", "loss.pile_cc"], "budgets_mixed"),
    # ---- more of the same kinds ----
    ("regress weights in percent", {"r.csv": regmix().assign(
        **{c: regmix()[c] * 100 for c in regmix().columns if c.startswith("w.")})},
     ["regress", "r.csv", "--target", "loss.pile_cc"], "weight_units"),
    ("lr above 1", {"r.csv": lr_runs().assign(lr=lambda f: f.lr * 1e3)},
     ["lr", "r.csv", "--target-tokens", "1e11"], "lr_units"),
    ("lr target far past the horizons", {"r.csv": lr_runs()},
     ["lr", "r.csv", "--target-tokens", "1e13"], "extrapolation"),
    ("lr two horizons", {"r.csv": lr_runs()[lr_runs()["budget"] <= 4e8]},
     ["lr", "r.csv", "--target-tokens", "1e10"], "enough_horizons"),
    ("lr best LR at the grid edge", {"r.csv": lr_one_edge()},
     ["lr", "r.csv", "--target-tokens", "1e11"], "lr_grid_edge"),
    ("lr perplexities as losses", {"r.csv": lr_runs().assign(loss=lambda f: np.exp(f.loss) * 5)},
     ["lr", "r.csv", "--target-tokens", "1e11"], "loss_units"),
    ("lr one run far off its quadratic", {"r.csv": change(lr_runs(), 8, "loss", 4.5)},
     ["lr", "r.csv", "--target-tokens", "1e11"], "outlier"),  # lr-4e+08-0.001, named first
    ("law one checkpoint doubled", {"r.csv": change(dml(), 20, "loss", 2 * dml()["loss"][20])},
     ["law", "r.csv", "--bootstrap", "0"], "outlier"),
    ("law tokens in billions", {"r.csv": dml().assign(tokens=lambda f: f.tokens / 1e9)},
     ["law", "r.csv", "--bootstrap", "0"], "tokens_units"),
    ("law loss typo 10x", {"r.csv": change(dml(), 30, "loss", 10 * dml()["loss"][30])},
     ["law", "r.csv", "--bootstrap", "0"], "loss_units"),
    ("law held-out size far past the fitted ones",
     {"r.csv": chinchilla()[(chinchilla()["params"] < 1.2e9)
                            | (chinchilla()["params"] == chinchilla()["params"].max())]},
     ["law", "r.csv", "--bootstrap", "0", "--holdout-largest"], "extrapolation"),
    ("law on 2 token counts", {"r.csv": dml()[dml()["tokens"].isin(
        sorted(dml()["tokens"].unique())[:2])].assign(params=70e6)},
     ["law", "r.csv", "--bootstrap", "0"], "enough_tokens"),
    ("ddo perplexity column holding bits per byte",  # nats/token / ln 2 / ~3.5 bytes a token
     {"r.csv": ddo_runs().assign(**{"ppl.github": ddo_runs()["loss.github"] / np.log(2) / 3.5})},
     ["ddo", "r.csv", "--metric", "ppl.github"], "ppl_units"),
    ("regress candidates beyond the runs' weights", {"r.csv": regmix(), "m.csv": MIXES_OUTSIDE},
     ["regress", "r.csv", "--target", "loss.pile_cc", "--predict", "m.csv"], "extrapolation"),
    ("regress budget nobody has", {"r.csv": regmix().assign(budget=1e9)},
     ["regress", "r.csv", "--target", "loss.pile_cc", "--budget", "4e9"],
     ("error", ["no run has budget 4e+09", "1e+09"])),
    ("project target at the largest source", two_mixtures(mixture("mix_0.3b.json"),
                                                          mixture("mix_1.2b.json")),
     [*MIX, "1.2e9"], ("error", ["not above the largest source"])),
    ("project far past its sources", two_mixtures(mixture("mix_0.3b.json"), mixture("mix_1.2b.json")),
     [*MIX, "1e12"], "extrapolation"),
    ("project three sources off the lines", {**two_mixtures(mixture("mix_0.3b.json"),
                                                            mixture("mix_1.2b.json")),
                                             "c.json": third_source_off_the_lines()},
     ["project", "a.json", "b.json", "c.json", "--target-tokens", "1e11"], "fit_quality"),
    ("ddo declared up factor the runs lack", {"r.csv": ddo_runs()},
     ["ddo", "r.csv", "--metric", "mean-ppl", "--up", "2"], ("error", ["without the declared 2"])),
    ("ddo runs in percent", {"r.csv": ddo_runs().assign(
        **{c: ddo_runs()[c] * 100 for c in ddo_runs().columns if c.startswith("w.")})},
     ["ddo", "r.csv", "--metric", "mean-ppl"], "weight_units"),
]


SLOW = {"ddo perplexity column holding bits per byte", "ddo perplexities in loss columns, mean-ppl"}


def write(tmp: Path, files: dict) -> None:
    for name, content in files.items():
        if isinstance(content, pd.DataFrame):
            content.to_csv(tmp / name, index=False)
        else:
            (tmp / name).write_text(json.dumps(content))


def run(tmp: Path, monkeypatch, capsys, argv: list[str]) -> tuple[int, str, str]:
    monkeypatch.chdir(tmp)
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_matrix_covers_the_issue_and_more() -> None:
    """>= 20 cases of the issue and >= 15 more, unique names, every check kind the verbs have."""
    assert len(CASES) >= 38 and len({c[0] for c in CASES}) == len(CASES)
    checks = {c[3] for c in CASES if isinstance(c[3], str)}
    assert {"enough_sizes", "tokens_units", "loss_units", "outlier", "target_direction", "design",
            "weight_sums", "weight_units", "lr_units", "extrapolation", "budgets_mixed",
            "enough_horizons", "ppl_units"} <= checks
    assert {c[2][0] for c in CASES} == {"ddo", "project", "lr", "law", "regress"}


@pytest.mark.parametrize("name,files,argv,expected", [
    pytest.param(*c, marks=pytest.mark.slow) if c[0] in SLOW else c for c in CASES],
    ids=[c[0] for c in CASES])
def test_a_bad_fit_or_unit_is_named(tmp_path: Path, monkeypatch, capsys, name, files, argv,
                                    expected) -> None:
    write(tmp_path, files)
    code, out, err = run(tmp_path, monkeypatch, capsys, [*argv, "--json"])
    if isinstance(expected, tuple):  # a one-line error, exit 2
        _, pieces = expected
        lines = err.strip().splitlines()
        assert code == 2 and out == "" and len(lines) == 1 and "error:" in lines[0], err
        for piece in pieces:
            assert piece in lines[0], lines[0]
        return
    assert code == 0, err
    obj = json.loads(out)
    warnings = obj.get("warnings", obj.get("extra", {}).get("warnings"))
    assert expected in [w["check"] for w in warnings], warnings
    assert all(set(w) == {"check", "message", "fix"} and w["message"] and w["fix"] for w in warnings)
    assert isinstance(obj["extrapolation_factor"], float)
    assert f"[{expected}]" in err  # logged on stderr too


STRICT = [c for c in CASES if isinstance(c[3], str)]
ONE_PER_VERB = list({c[2][0]: c for c in STRICT}.values())


@pytest.mark.parametrize("name,files,argv,expected", ONE_PER_VERB, ids=[c[0] for c in ONE_PER_VERB])
def test_strict_makes_a_warning_exit_2(tmp_path: Path, monkeypatch, capsys, name, files, argv,
                                       expected) -> None:
    write(tmp_path, files)
    code, out, err = run(tmp_path, monkeypatch, capsys, [*argv, "--strict"])
    errors = [line for line in err.strip().splitlines() if "error:" in line]
    assert code == 2 and out == "" and len(errors) == 1, err
    assert "--strict" in errors[0] and expected in errors[0]


HEALTHY = [
    ("ddo", ["ddo", "ddo_gpt2_large_1.2b.csv", "--metric", "mean-ppl"]),
    ("project", ["project", "mix_0.3b.json", "mix_1.2b.json", "--target-tokens", "1e10"]),
    ("lr", ["lr", "lr_sweeps.csv", "--target-tokens", "1e11"]),
    ("law checkpoints", ["law", "law_mixinglaws_checkpoints.csv", "--min-tokens", "0.2",
                         "--holdout-largest", "--bootstrap", "20"]),
    ("law chinchilla", ["law", "law_chinchilla.csv", "--bootstrap", "0"]),
    ("regress", ["regress", "regress_regmix_1m.csv", "--target", "loss.pile_cc", "--predict",
                 "regress_candidates.csv"]),
]


@pytest.mark.parametrize("name,argv", HEALTHY, ids=[h[0] for h in HEALTHY])
def test_published_runs_fit_without_warnings(monkeypatch, capsys, name, argv) -> None:
    """The healthy fits of the published data: no warning, in --json and in the human text."""
    code, out, err = run(EXAMPLES, monkeypatch, capsys, [*argv, "--json"])
    assert code == 0, err
    obj = json.loads(out)
    assert obj.get("warnings", obj.get("extra", {}).get("warnings")) == [], obj
    assert "WARNING" not in err
    code, out, err = run(EXAMPLES, monkeypatch, capsys, argv)
    assert code == 0 and "extrapolation factor" in out and "health checks: no warnings" in out


def test_regress_needs_no_tokens_and_maximizes(tmp_path: Path, monkeypatch, capsys) -> None:
    """RegMix's table has no `tokens`; --maximize returns the mixture of the highest prediction,
    --budget keeps one budget, --average-duplicates is accepted."""
    table = regmix_accuracy()
    write(tmp_path, {"r.csv": table})
    argv = ["regress", "r.csv", "--target", "accuracy", "--search", "3000", "--json"]
    best = {}
    for flag in ([], ["--maximize"]):
        code, out, err = run(tmp_path, monkeypatch, capsys, [*argv, *flag])
        assert code == 0, err
        best[bool(flag)] = json.loads(out)
    assert best[True]["best_mixture"]["predicted"] > best[False]["best_mixture"]["predicted"]
    assert "target_direction" not in [w["check"] for w in best[True]["warnings"]]
    write(tmp_path, {"d.csv": pd.concat([regmix(), regmix().iloc[[5]]]).assign(tokens=1e9, budget=1e9)})
    code, out, err = run(tmp_path, monkeypatch, capsys, ["regress", "d.csv", "--target", "loss.pile_cc",
                                                         "--average-duplicates", "--budget", "1e9", "--json"])
    assert code == 0 and json.loads(out)["n_runs"] == 512, err


def test_ddo_says_which_design_and_why(monkeypatch, capsys) -> None:
    code, out, err = run(EXAMPLES, monkeypatch, capsys, ["ddo", "ddo_gpt2_large_1.2b.csv", "--json"])
    obj = json.loads(out)
    assert obj["design"] == "fixed-others" and "holds the others" in obj["design_reason"]


def test_project_names_at_bound_domains_it_does_not_floor(monkeypatch, capsys) -> None:
    """As `run` does: no floor by default (DDO's bound says nothing about the optimum at the
    target); the domains that sat on a source's bound are named in `at_bound`, and --min-weight
    floors them when asked."""
    args = ["project", "mix_0.3b.json", "mix_1.2b.json", "--target-tokens", "1e10", "--json"]
    code, out, err = run(EXAMPLES, monkeypatch, capsys, args)
    obj = json.loads(out)
    assert obj["min_weight"] == 0 and obj["floored"] == []
    assert "github" in obj["at_bound"] and obj["warnings"] == []  # named, not floored
    code, out, err = run(EXAMPLES, monkeypatch, capsys, args + ["--min-weight", str(0.2 / 7)])
    obj = json.loads(out)
    assert min(obj["weights"].values()) >= 0.2 / 7 - 1e-12 and "github" in obj["floored"]


def test_an_outlier_is_named_first(tmp_path: Path, monkeypatch, capsys) -> None:
    """One LR run typed 4.5 for ~3.6: its leave-one-out residual is the largest of its horizon."""
    write(tmp_path, {"r.csv": change(lr_runs(), 8, "loss", 4.5)})
    code, out, err = run(tmp_path, monkeypatch, capsys, ["lr", "r.csv", "--target-tokens", "1e11",
                                                         "--json"])
    found = [w for w in json.loads(out)["warnings"] if w["check"] == "outlier"]
    assert found and found[0]["message"].split("run(s) `")[1].startswith(lr_runs()["run_id"][8])


def test_fit_health_for_a_law_it_does_not_know() -> None:
    """The entry point another law (the mixing law) calls."""
    found = fit_health("mixing law", {"c": 1.2, "k": float("inf"), "t": 9.0},
                       {"t": (-5.0, 5.0)}, fix="add mixtures",
                       bounds={"c": (0.0, 1.2)}, intervals={"c": [1.0, float("nan")]},
                       axes=[([0.1, 0.2, 0.1], 3, "enough_mixtures", "mixtures", "add mixtures")])
    assert [f.check for f in found] == ["parameters_finite", "parameter_range",
                                        "parameter_at_bound", "interval_finite", "enough_mixtures"]
    assert all(isinstance(f, Finding) for f in found)
    assert fit_health("mixing law", {"c": 1.0}, {"c": (0.0, 2.0)}, fix="x") == []


def test_robust_outliers_flag_one_wild_point_only() -> None:
    r = np.random.default_rng(0).normal(0, 0.01, 50)
    assert robust_outliers(r).size == 0
    r[7] = 1.0
    assert robust_outliers(r).tolist() == [7]
    assert robust_outliers(np.zeros(10)).size == 0  # an exact fit flags nothing
