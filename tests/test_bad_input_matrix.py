"""Table-driven bad input through the command line: exit code 2, one line naming the file, row and
column (or key), nothing on stdout and no file written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autoscale_ray.cli import main

DOMAINS = ("web", "code", "books")


def ddo_table() -> pd.DataFrame:
    """A valid fixed-others DDO design at 1e6 tokens (base + down/up per domain)."""
    rows = []
    base = np.full(3, 1e6 / 3)
    designs = [("base", base)]
    for i, d in enumerate(DOMAINS):
        for label, f in (("down", 0.2), ("up", 3.0)):
            q = base.copy()
            q[i] *= f
            designs.append((f"{d}-{label}", q))
    for run_id, q in designs:
        loss = 2 + (q / 1e5) ** -0.3
        rows.append({"run_id": run_id, "tokens": q.sum(), **{f"w.{d}": x / q.sum() for d, x in zip(DOMAINS, q)},
                     **{f"loss.{d}": l for d, l in zip(DOMAINS, loss)}})
    return pd.DataFrame(rows)


def lr_table() -> pd.DataFrame:
    rows = []
    for budget in (1e6, 4e6):
        for lr in (1e-3, 2e-3, 4e-3, 8e-3):
            rows.append({"run_id": f"r{budget:g}-{lr:g}", "tokens": budget, "lr": lr,
                         "loss": 3 + (np.log(lr) - np.log(3e-3 * (budget / 1e6) ** -0.3)) ** 2})
    return pd.DataFrame(rows)


def mix(tokens=1e6, **weights) -> dict:
    return {"tokens": tokens, "weights": weights or {"web": 0.5, "code": 0.3, "books": 0.2}}


# (name, files to write {name: content}, argv (files by name), expected pieces of the message)
CASES = [
    ("missing run_id", {"r.csv": ddo_table().drop(columns="run_id")}, ["ddo", "r.csv"],
     ["r.csv", "run_id"]),
    ("missing tokens", {"r.csv": ddo_table().drop(columns="tokens")}, ["ddo", "r.csv"], ["r.csv", "tokens"]),
    ("NaN loss", {"r.csv": ddo_table().assign(**{"loss.web": [np.nan] + [2.5] * 6})}, ["ddo", "r.csv"],
     ["r.csv", "row 1", "loss.web"]),
    ("inf tokens", {"r.csv": ddo_table().assign(tokens=[np.inf] + [1e6] * 6)}, ["ddo", "r.csv"],
     ["r.csv", "row 1", "tokens"]),
    ("negative weight", {"r.csv": ddo_table().assign(**{"w.code": [0.3, -0.1, .3, .3, .3, .3, .3]})},
     ["ddo", "r.csv"], ["r.csv", "row 2", "w.code"]),
    ("all-zero mixture", {"r.csv": ddo_table().assign(**{f"w.{d}": [0.0] + [1 / 3] * 6 for d in DOMAINS})},
     ["ddo", "r.csv"], ["r.csv", "row 1", "zero"]),
    ("duplicate evaluation", {"r.csv": pd.concat([ddo_table(), ddo_table().iloc[[3]]])}, ["ddo", "r.csv"],
     ["r.csv", "row 8", "duplicate", "--average-duplicates"]),
    ("not a design", {"r.csv": ddo_table().iloc[[0, 1, 3]]}, ["ddo", "r.csv"], ["r.csv"]),
    ("unknown base", {"r.csv": ddo_table()}, ["ddo", "r.csv", "--base", "nope"], ["r.csv", "nope"]),
    ("text in tokens", {"r.csv": ddo_table().assign(tokens=["x"] + [1e6] * 6)}, ["ddo", "r.csv"],
     ["r.csv", "row 1", "tokens"]),
    ("single LR horizon", {"r.csv": lr_table().iloc[:4]}, ["lr", "r.csv", "--target-tokens", "1e9"],
     ["r.csv", "single horizon"]),
    ("LR table without lr", {"r.csv": lr_table().drop(columns="lr")}, ["lr", "r.csv", "--target-tokens", "1e9"],
     ["r.csv", "lr"]),
    ("law without enough points", {"r.csv": lr_table().iloc[:3]}, ["law", "r.csv"], ["r.csv"]),
    ("unknown table format", {"r.txt": "run_id,tokens\n"}, ["law", "r.txt"], ["r.txt", "format"]),
    ("missing runs file", {}, ["law", "absent.csv"], ["absent.csv", "not found"]),
    ("mixture without tokens", {"a.json": {"weights": {"web": 1}}, "b.json": mix(2e6)},
     ["project", "a.json", "b.json", "--target-tokens", "1e8"], ["a.json", "tokens"]),
    ("mixture negative weight", {"a.json": mix(web=-1, code=1, books=1), "b.json": mix(2e6)},
     ["project", "a.json", "b.json", "--target-tokens", "1e8"], ["a.json", "weights.web"]),
    ("mixture NaN weight", {"a.json": '{"tokens": 1e6, "weights": {"web": NaN, "code": 1, "books": 1}}',
                            "b.json": mix(2e6)},
     ["project", "a.json", "b.json", "--target-tokens", "1e8"], ["a.json", "web"]),
    ("mixture all zero", {"a.json": mix(web=0, code=0, books=0), "b.json": mix(2e6)},
     ["project", "a.json", "b.json", "--target-tokens", "1e8"], ["a.json", "zero"]),
    ("domains differ between files", {"a.json": mix(), "b.json": mix(2e6, web=.5, code=.3, news=.2)},
     ["project", "a.json", "b.json", "--target-tokens", "1e8"], ["b.json", "news"]),
    ("mixture not JSON", {"a.json": "{oops", "b.json": mix(2e6)},
     ["project", "a.json", "b.json", "--target-tokens", "1e8"], ["a.json", "JSON"]),
    ("regress domains differ", {"r.csv": ddo_table(), "m.csv": pd.DataFrame({"w.web": [1.0], "w.news": [1.0]})},
     ["regress", "r.csv", "--target", "loss", "--predict", "m.csv"], ["m.csv"]),
    ("regress target missing", {"r.csv": ddo_table(), "m.csv": ddo_table()[[f"w.{d}" for d in DOMAINS]]},
     ["regress", "r.csv", "--target", "loss.nope", "--predict", "m.csv"], ["r.csv", "loss.nope"]),
]


def write(tmp: Path, files: dict) -> None:
    for name, content in files.items():
        path = tmp / name
        if isinstance(content, pd.DataFrame):
            content.to_csv(path, index=False)
        elif isinstance(content, dict):
            path.write_text(json.dumps(content))
        else:
            path.write_text(content)


@pytest.mark.parametrize("name,files,argv,pieces", CASES, ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, monkeypatch, capsys, name, files, argv, pieces):
    write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    for piece in pieces:
        assert piece in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_installed_command_exit_code(tmp_path: Path) -> None:
    """The real console script: exit 2 on bad input, 0 with one JSON object on success."""
    ddo_table().drop(columns="tokens").to_csv(tmp_path / "bad.csv", index=False)
    ddo_table().to_csv(tmp_path / "good.csv", index=False)
    exe = Path(sys.executable).with_name("autoscale-ray")
    bad = subprocess.run([str(exe), "ddo", str(tmp_path / "bad.csv"), "--json"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == "" and "tokens" in bad.stderr
    good = subprocess.run([str(exe), "ddo", str(tmp_path / "good.csv"), "--json"], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    obj = json.loads(good.stdout)
    assert set(obj["weights"]) == set(DOMAINS) and abs(sum(obj["weights"].values()) - 1) < 1e-9
