"""The `ddo` and `project` verbs: Python API, argparse registration and the command line
(autoscale_ray.cli.main in this process; tests/test_bad_input_matrix.py runs the installed script)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscale_ray.atomic import write_json
from autoscale_ray.errors import BadInput
from autoscale_ray.runs import write_runs
from autoscale_ray.verbs import ddo as ddo_verb
from autoscale_ray.verbs import project as project_verb
from data_fixtures import cli  # noqa: F401  (a fixture: the command in this process)

DOMAINS = ("web", "wiki", "code")
# `code` saturates: at the bound. sum_i (1 + a_i)^(-b_i) < 1, so the surface's constant C (its
# value with unlimited data, y(base) = 1) is >= 0, as a loss ratio's must be (DDO fits C >= 0)
A, B = np.array([2.0, 3.0, 9.0]), np.array([1.0, 0.8, 0.5])


def true_weights(w0: np.ndarray) -> np.ndarray:
    """Independent optimum: dense grid over x_web, x_wiki (x_code spends the rest of the budget)."""
    g = np.linspace(0.2, 1 / w0.min(), 1500)
    x0, x1 = np.meshgrid(g, g, indexing="ij")
    x2 = (1 - w0[0] * x0 - w0[1] * x1) / w0[2]
    x = np.stack([x0, x1, x2], axis=-1)[x2 >= 0.2]
    best = x[np.argmin(((x + A) ** (-B)).sum(axis=1))]
    return best * w0


def runs_csv(path: Path, w0: np.ndarray, kind: str = "fixed-others") -> Path:
    """A runs table for the synthetic design: two evaluations per run, the final one is used."""
    budget = 2e6
    rows = []
    points = [("base", w0.copy())]
    for i, d in enumerate(DOMAINS):
        for f in (0.2, 0.5, 2.0, 2.5):
            q = w0.copy()
            q[i] *= f
            if kind == "fixed-total":
                q[np.arange(3) != i] *= (1 - q[i]) / (1 - w0[i])
            points.append((f"{d}-x{f:g}", q))
    for name, q in points:
        x = q / w0
        y = ((x + A) ** (-B)).sum() + 1 - ((1 + A) ** (-B)).sum()
        total = q.sum() * budget
        for frac, extra in ((0.5, 0.4), (1.0, 0.0)):
            rows.append({"run_id": name, "tokens": frac * total, "budget": total,
                         **{f"w.{d}": v for d, v in zip(DOMAINS, q)}, "loss": 3.1 * y + extra})
    write_runs(pd.DataFrame(rows), path)
    return path


@pytest.mark.parametrize("kind", ["fixed-others", "fixed-total"])
def test_ddo_function_recovers_truth(tmp_path: Path, kind: str) -> None:
    w0 = np.array([0.38, 0.34, 0.28])
    mix = ddo_verb.ddo(runs_csv(tmp_path / "runs.csv", w0, kind), down=0.2, up=2.5)
    assert mix.extra["base"] == "base" and mix.extra["design"] == kind
    assert mix.tokens == pytest.approx(2e6)
    np.testing.assert_allclose([mix.weights[d] for d in DOMAINS], true_weights(w0), atol=0.005)
    assert mix.at_bound == ("code",)
    assert mix.extra["rmse"] < 1e-8 and mix.extra["perturbations"]["wiki-x0.5"] == \
        {"domain": "wiki", "factor": pytest.approx(0.5)}


def test_ddo_register_json_and_bad_base(tmp_path: Path) -> None:
    path = runs_csv(tmp_path / "runs.parquet", np.full(3, 1 / 3))
    parser = argparse.ArgumentParser()
    ddo_verb.register(parser.add_subparsers())
    args = parser.parse_args(["ddo", str(path), "--base", "base", "--min-multiplier", "0.25",
                              "--json"])
    obj, text = args.func(args)
    json.dumps(obj, allow_nan=False)
    assert set(obj) >= {"tokens", "weights", "at_bound", "multipliers", "responses", "rmse"}
    assert min(obj["multipliers"].values()) == pytest.approx(0.25) and obj["surrogate"] == "paper"
    assert "web" in text and "at bound" in text
    with pytest.raises(BadInput, match="base run `nope` not found"):
        ddo_verb.ddo(path, base="nope")
    with pytest.raises(BadInput, match="runs.parquet.*not a DDO perturbation design"):
        ddo_verb.ddo(path, base="web-x2")


def test_project_function_and_domain_check(tmp_path: Path) -> None:
    beta, gamma = np.array([1.3, 0.6, 2.2]), np.array([0.12, 0.45, 0.3])
    opt = lambda t: (beta * gamma * t) ** (1 / (1 + gamma))  # noqa: E731
    files = []
    for k, t in enumerate((4e8, 1e8)):                          # any order
        q = opt(t)
        files.append(tmp_path / f"mix{k}.json")
        write_json(files[-1], {"tokens": q.sum(), "weights": dict(zip(DOMAINS, q / q.sum())),
                               "at_bound": ["code"] if k else []})
    target = opt(3e10).sum()
    mix = project_verb.project(files, target)
    np.testing.assert_allclose([mix.weights[d] * target for d in DOMAINS], opt(3e10), rtol=1e-9)
    assert mix.at_bound == ("code",) and mix.extra["source_at_bound"] == {str(files[1]): ["code"]}
    floored = project_verb.project(files, target, min_weight=0.3)
    assert min(floored.weights.values()) == pytest.approx(0.3) and floored.extra["floored"]
    write_json(tmp_path / "other.json", {"tokens": 1e9, "weights": {"web": 1, "books": 1, "code": 1}})
    with pytest.raises(BadInput, match="unknown domains between files: books"):
        project_verb.project([files[0], tmp_path / "other.json"], target)


def test_cli_ddo_then_project(tmp_path: Path, cli) -> None:  # noqa: F811
    """`ddo --json` at two budgets writes mixture files that `project` reads; bad input exits 2."""
    outs = []
    for k, w0 in enumerate((np.full(3, 1 / 3), np.array([0.4, 0.35, 0.25]))):
        path = runs_csv(tmp_path / f"runs{k}.csv", w0)
        if k:  # the second budget: ten times the tokens
            frame = pd.read_csv(path)
            frame[["tokens", "budget"]] *= 10
            frame.to_csv(path, index=False)
        code, out, err = cli("ddo", str(path), "--up", "2.5", "--json")
        assert code == 0, err
        obj = json.loads(out)
        outs.append(tmp_path / f"mix{k}.json")
        outs[-1].write_text(out)
        assert obj["weights"].keys() == set(DOMAINS) and obj["at_bound"] == ["code"]
    code, out, err = cli("project", *map(str, outs), "--target-tokens", "2B", "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["tokens"] == 2e9 and sum(obj["weights"].values()) == pytest.approx(1.0)
    assert set(obj) >= {"exponent", "ratios", "sources", "at_bound"}
    code, out, err = cli("project", str(outs[0]), "--target-tokens", "2B")
    assert code == 2 and "two or more" in err and not out


PAPER_RUNS = Path(__file__).parent / "data" / "autoscale_ddo" / "gpt2_large_ddo_1.2b.csv"
# DDO_example.ipynb's own optimum on these runs (multipliers of the base quantities, x / 7 = weights)
NOTEBOOK_1_2B = {"cc": 1.62475352, "github": 0.2, "books": 1.27415166, "wiki": 1.17979573,
                 "c4": 1.8518998, "stackexchange": 0.63716376, "arxiv": 0.23223551}


def paper_runs_table(path: Path, jitter: np.random.Generator | None = None) -> Path:
    """The paper's 15 runs as a runs table: per-domain tokens x_i * 1.2e9 / 7, `loss.<d>` = log ppl
    (so mean-ppl is the paper's objective); `jitter` perturbs every input by ~1e-12 relative."""
    f = pd.read_csv(PAPER_RUNS)
    domains = [c[2:] for c in f.columns if c.startswith("x.")]
    q = f[[f"x.{d}" for d in domains]].to_numpy() * 1.2e9 / 7
    ppl = f[[f"ppl.{d}" for d in domains]].to_numpy()
    if jitter is not None:
        q = q * (1 + 1e-12 * jitter.standard_normal(q.shape))
        ppl = ppl * (1 + 1e-12 * jitter.standard_normal(ppl.shape))
    total = q.sum(axis=1)
    table = pd.DataFrame({"run_id": f["run"], "tokens": total, "budget": total,
                          **{f"w.{d}": q[:, i] / total for i, d in enumerate(domains)},
                          **{f"loss.{d}": np.log(ppl[:, i]) for i, d in enumerate(domains)}})
    write_runs(table, path)
    return path


def test_the_papers_runs_give_the_notebooks_optimum_and_one_answer(tmp_path: Path, cli) -> None:  # noqa: F811
    """`ddo --surrogate paper --metric mean-ppl` on AutoScale's 15 published runs: the optimum of the
    paper's own fitting (DDO_example.ipynb) within 0.002 per weight; every surrogate gives the same
    answer when every input moves by 1e-12 relative. The perturbed inputs are fitted with
    `--bootstrap 0` (the redraws only make the intervals; the weights are the point fit's)."""
    answers: dict[str, list[np.ndarray]] = {"paper": [], "transfer": []}
    for k in range(4):
        runs = paper_runs_table(tmp_path / f"runs{k}.csv", None if k == 0 else np.random.default_rng(k))
        for surrogate in answers:
            redraws = [] if k == 0 else ["--bootstrap", "0"]
            code, out, err = cli("ddo", str(runs), "--surrogate", surrogate, "--metric", "mean-ppl", "--json",
                                 *redraws)
            assert code == 0, err
            mix = json.loads(out)
            answers[surrogate].append(np.array([mix["weights"][d] for d in NOTEBOOK_1_2B]))
            if surrogate == "paper" and k == 0:
                assert mix["surrogate"] == "paper" and mix["constant"] >= 0
                np.testing.assert_allclose(answers["paper"][0], np.array(list(NOTEBOOK_1_2B.values())) / 7,
                                           atol=2e-4)  # the README's claim (the issue asks 0.002)
            if surrogate == "transfer":  # one base run: the noise is the fit's residuals, redrawn
                assert mix["noise"]["measured_from"] == "residuals"
                assert mix["bootstrap"]["draws"] == (100 if k == 0 else 0)
                assert mix["bootstrap"]["used"] == (100 if k == 0 else 0)
    for surrogate, got in answers.items():
        assert np.abs(np.array(got) - got[0]).max() < 1e-8, surrogate


def test_ddo_bootstrap_and_seed_set_the_redraws_not_the_weights(tmp_path: Path, cli) -> None:  # noqa: F811
    path = runs_csv(tmp_path / "runs.csv", np.full(3, 1 / 3))
    frame = pd.read_csv(path)
    base = frame[frame["run_id"] == "base"]
    replicates = [base.assign(run_id=f"base-seed{k}", loss=base["loss"] + dy) for k, dy in ((1, 0.004), (2, -0.003))]
    pd.concat([frame, *replicates]).to_csv(path, index=False)  # two more seeds of the base: noise measured
    args = ("ddo", str(path), "--base", "base")
    fits = {}
    for redraws in (("--bootstrap", "0"), ("--bootstrap", "20", "--seed", "3"), ("--bootstrap", "20", "--seed", "4")):
        code, out, err = cli(*args, "--json", *redraws)
        assert code == 0, err
        fits[redraws] = json.loads(out)
    off, three, four = fits.values()
    assert off["noise"]["measured_from"] == "replicates"
    assert off["weights"] == three["weights"] == four["weights"]
    assert off["bootstrap"] == {"draws": 0, "used": 0, "seed": 0} and off["bootstrap_weights"] == []
    for d, w in off["weights"].items():  # no redraws: the equally good fits' envelope (here the point)
        assert off["intervals"][d][0] <= w <= off["intervals"][d][1]
    assert three["bootstrap"] == {"draws": 20, "used": 20, "seed": 3} and len(three["bootstrap_weights"]) == 20
    assert three["bootstrap_weights"] != four["bootstrap_weights"]  # the seed draws other redraws
    assert three["intervals"] != off["intervals"]
    code, out, err = cli(*args, "--bootstrap", "0")
    assert code == 0 and "intervals from the equally good fits only (--bootstrap 0)" in out, err
    for bad in ("1", "-3"):
        code, out, err = cli(*args, "--bootstrap", bad)
        assert code == 2 and not out and "--bootstrap" in err and len(err.strip().splitlines()) == 1, err
