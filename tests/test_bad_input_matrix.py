"""Table-driven bad input through the command line: exit code 2, one line naming the file, row and
column (or key), nothing on stdout and no file written.

Four kinds of input: experiment configs (`run CONFIG.yaml`, refused in `load_config`), data shards
(a config whose `corpus.domains` point at bad files, refused before Ray starts), runs tables
(`ddo`, `lr`, `law`, `regress`) and mixture files (`project`)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from autoscale_ray.cli import main
from helpers import experiment_config

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


def good_config() -> dict:
    """A valid small config (tests/helpers.py SMALL_CONFIG): synthetic corpus, gpt2-tiny, fixed LR."""
    return experiment_config("bad-input", "cache")


def config_with(section: str | None = None, drop: tuple[str, ...] = (), **changes) -> dict:
    """The good config with keys of one section (or the top level) changed or dropped."""
    cfg = good_config()
    part = cfg if section is None else cfg[section]
    for key in drop:
        part.pop(key)
    part.update(changes)
    return cfg


def mixlaw_config(drop: tuple[str, ...] = (), **changes) -> dict:
    """A valid mixing-law config (three probe models, a target size, a fixed LR), changed."""
    cfg = good_config()
    cfg["train"].pop("model")
    cfg["search"].update(projector="mixing-law", probe_models=["gpt2-nano", "gpt2-micro", "gpt2-tiny"],
                         target_params=1e7)
    for key in drop:
        cfg["search"].pop(key)
    cfg["search"].update(changes)
    return cfg


# Shard files of a valid corpus of two domains; each shard case adds one bad domain `bad`.
GOOD_SHARDS = {"web.txt": "a web page\nanother web page\n",
               "code.jsonl": '{"text": "def f(): pass"}\n{"text": "x = 1"}\n'}


def shard_config(**bad) -> dict:
    domains = {"web": {"paths": ["web.txt"]}, "code": {"paths": ["code.jsonl"], "format": "jsonl"}}
    if bad:
        domains["bad"] = bad
    return config_with("corpus", drop=("synthetic", "val_tokens"), domains=domains)


def shard_case(name: str, files: dict, pieces: list[str], **bad) -> tuple:
    return ("shard", name, {**GOOD_SHARDS, **files, "c.yaml": shard_config(**bad)}, RUN, pieces)


RUN = ["run", "c.yaml", "--out", "out"]

# (kind, name, files to write {name: content}, argv (files by name), expected pieces of the message)
CASES = [
    # experiment configs: refused by load_config, before the corpus or Ray
    ("config", "unknown top-level key", {"c.yaml": config_with(bogus=1)}, RUN, ["c.yaml", "unknown key(s) bogus"]),
    ("config", "unknown train key", {"c.yaml": config_with("train", lr_warmup=0.1)}, RUN,
     ["c.yaml: train", "'lr_warmup'"]),
    ("config", "unknown search key", {"c.yaml": config_with("search", probes=[1e4])}, RUN,
     ["c.yaml: search", "unknown key(s) probes"]),
    ("config", "unknown resources key", {"c.yaml": config_with("resources", gpus=1)}, RUN,
     ["c.yaml: resources", "unknown key(s) gpus"]),
    ("config", "non-numeric budget", {"c.yaml": config_with("search", probe_budgets=[1.2e4, "lots"])}, RUN,
     ["c.yaml: search.probe_budgets", "'lots'", "not a positive whole number"]),
    ("config", "target below the largest probe", {"c.yaml": config_with("search", target_budget=2e4)}, RUN,
     ["c.yaml: search.target_budget", "not above the largest probe"]),
    ("config", "lr_grid with too few values",
     {"c.yaml": config_with("search", drop=("lr",), lr_grid=[1e-3, 2e-3])}, RUN,
     ["c.yaml: search.lr_grid", ">= 4"]),
    ("config", "no learning rate", {"c.yaml": config_with("search", drop=("lr",))}, RUN,
     ["c.yaml: search", "no learning rate"]),
    ("config", "train.lr owned by the search", {"c.yaml": config_with("train", lr=1e-3)}, RUN,
     ["c.yaml: train", "train.lr is set by the search"]),
    ("config", "invalid YAML", {"c.yaml": "name: x\ncorpus: [unclosed\n"}, RUN,
     ["c.yaml, line", "not valid YAML"]),
    ("config", "YAML list, not a mapping", {"c.yaml": "- name: x\n- corpus: {}\n"}, RUN,
     ["c.yaml", "must be a YAML mapping"]),
    ("config", "two corpus kinds", {"c.yaml": config_with("corpus", embedded=True)}, RUN,
     ["c.yaml: corpus", "exactly one of"]),
    ("config", "no corpus kind", {"c.yaml": config_with("corpus", drop=("synthetic",))}, RUN,
     ["c.yaml: corpus", "exactly one of"]),
    ("config", "storage_path not a string", {"c.yaml": config_with(storage_path=["runs"])}, RUN,
     ["c.yaml: storage_path", "['runs']"]),
    ("config", "negative max_concurrent_trials",
     {"c.yaml": config_with("resources", max_concurrent_trials=-1)}, RUN,
     ["c.yaml: resources.max_concurrent_trials", "-1"]),
    ("config", "budgets too small for the batch", {"c.yaml": config_with("train", global_batch_tokens=4096)}, RUN,
     ["c.yaml: search.probe_budgets", "fewer than eval_count=6"]),
    ("config", "DDO down above 1", {"c.yaml": config_with("search", ddo={"down": 1.5})}, RUN,
     ["c.yaml: search", "down=1.5"]),
    # search.method: the swarm methods' settings (searchers/swarm.py), refused before Ray
    ("config", "unknown search method", {"c.yaml": config_with("search", method="bayes")}, RUN,
     ["c.yaml: search.method", "bayes", "autoscale, regmix, log-linear"]),
    ("config", "fixed method without a mixture", {"c.yaml": config_with("search", method="fixed")}, RUN,
     ["c.yaml: search.swarm.weights", "method fixed needs"]),
    ("config", "a mixture for regmix", {"c.yaml": config_with("search", method="regmix",
                                                              swarm={"weights": {"markov": 1}})}, RUN,
     ["c.yaml: search.swarm.weights", "only it takes them"]),
    ("config", "swarm settings with autoscale", {"c.yaml": config_with("search", swarm={"budget": 1e4})}, RUN,
     ["c.yaml: search.swarm", "for the swarm methods"]),
    ("config", "unknown swarm key", {"c.yaml": config_with("search", method="random", swarm={"runs": 8})}, RUN,
     ["c.yaml: search.swarm", "unknown key(s) runs"]),
    ("config", "swarm budget above the target",
     {"c.yaml": config_with("search", method="random", swarm={"budget": 4e5})}, RUN,
     ["c.yaml: search.target_budget", "not above the swarm budget"]),
    ("config", "regmix swarm too small", {"c.yaml": config_with("search", method="regmix", swarm={"size": 3})},
     RUN, ["c.yaml: search.swarm.size", "size >= 5"]),
    ("config", "log-linear swarm too small",
     {"c.yaml": config_with("search", method="log-linear", swarm={"size": 4})}, RUN,
     ["c.yaml: search.swarm.size", "size >= 6"]),
    ("config", "fixed mixture of unknown domains",
     {"c.yaml": config_with("search", method="fixed", swarm={"weights": {"web": 1.0}})}, RUN,
     ["c.yaml: search.swarm.weights", "web"]),
    ("config", "target seeds with a swarm", {"c.yaml": config_with("search", method="uniform", target_seeds=2)},
     RUN, ["c.yaml: search.target_seeds", "a swarm method has none"]),
    # search.projector mixing-law (searchers/mixlaw_plan.py), refused before Ray
    ("config", "unknown projector", {"c.yaml": config_with("search", projector="chinchilla")}, RUN,
     ["c.yaml: search.projector", "unknown", "autoscale or mixing-law"]),
    ("config", "mixing law with two probe models",
     {"c.yaml": mixlaw_config(probe_models=["gpt2-nano", "gpt2-tiny"])}, RUN,
     ["c.yaml: search.probe_models", ">= 3 probe_models", "got 2"]),
    ("config", "mixing law without a target size", {"c.yaml": mixlaw_config(drop=("target_params",))}, RUN,
     ["c.yaml: search.target_params", "target model's size"]),
    ("config", "mixing law with an LR grid",
     {"c.yaml": mixlaw_config(drop=("lr",), lr_grid=[1e-3, 2e-3, 4e-3, 8e-3])}, RUN,
     ["c.yaml: search.lr_grid", "one fixed LR"]),
    ("config", "mixing law with a swarm method", {"c.yaml": mixlaw_config(method="regmix")}, RUN,
     ["c.yaml: search.projector", "method regmix picks its mixture from a swarm"]),
    ("config", "probe models without the mixing law",
     {"c.yaml": config_with("search", probe_models=["gpt2-nano", "gpt2-micro", "gpt2-tiny"])}, RUN,
     ["c.yaml: search.probe_models", "set `projector: mixing-law`"]),
    ("config", "target size without the mixing law", {"c.yaml": config_with("search", target_params=1e8)}, RUN,
     ["c.yaml: search.target_params", "for the mixing-law projector"]),
    ("config", "unknown probe model", {"c.yaml": mixlaw_config(probe_models=["gpt2-nano", "gpt9", "gpt2-tiny"])},
     RUN, ["c.yaml: search.probe_models[1]", "unknown model 'gpt9'"]),
    ("config", "repeated probe model",
     {"c.yaml": mixlaw_config(probe_models=["gpt2-nano", "gpt2-nano", "gpt2-tiny"])}, RUN,
     ["c.yaml: search.probe_models", "repeat"]),
    ("config", "train.model beside probe models",
     {"c.yaml": {**mixlaw_config(), "train": {**good_config()["train"], "model": "gpt2-tiny"}}}, RUN,
     ["c.yaml: train.model", "both name the proxy model"]),
    ("config", "base_weights a list", {"c.yaml": config_with("search", base_weights=[1, 2])}, RUN,
     ["c.yaml: search.base_weights", "must be a mapping"]),
    ("config", "base_weights not numbers", {"c.yaml": config_with("search", base_weights={"a": "x", "b": 1})},
     RUN, ["c.yaml: search.base_weights.a", "'x'"]),
    ("config", "ddo not a mapping", {"c.yaml": config_with("search", ddo="fixed-total")}, RUN,
     ["c.yaml: search.ddo", "must be a mapping"]),
    ("config", "cache_dir not a path", {"c.yaml": config_with("corpus", cache_dir=5)}, RUN,
     ["c.yaml: corpus.cache_dir", "not a path"]),
    ("config", "tokenizer file missing", {"c.yaml": config_with("corpus", tokenizer="nope.json")}, RUN,
     ["c.yaml: corpus.tokenizer", "nope.json", "not found"]),
    ("config", "unknown model", {"c.yaml": config_with("train", model="gpt9-huge")}, RUN,
     ["c.yaml: train.model", "gpt9-huge"]),
    ("config", "missing config file", {}, ["run", "absent.yaml", "--out", "out"], ["absent.yaml", "not found"]),
    # data shards: `run` resolves and checks every domain's files before Ray starts
    shard_case("path does not exist", {}, ["domain `bad`", "nope/bad.txt", "does not exist"],
               paths=["nope/bad.txt"]),
    shard_case("glob matches nothing", {"shards/a.jsonl": '{"text": "x"}\n'},
               ["domain `bad`", "shards/*.parquet", "matches no file"], paths=["shards/*.parquet"]),
    shard_case("parquet without the text column", {"bad.parquet": pd.DataFrame({"content": ["a", "b"]})},
               ["domain `bad`", "bad.parquet", "no column `text`", "content"], paths=["bad.parquet"]),
    shard_case("not parquet but named .parquet", {"bad.parquet": "just,some\ncsv,text\n"},
               ["domain `bad`", "bad.parquet", "not a readable Parquet file"], paths=["bad.parquet"]),
    shard_case("JSONL first line not JSON", {"bad.jsonl": 'text: hello\n{"text": "x"}\n'},
               ["domain `bad`", "bad.jsonl", "JSON object per line"], paths=["bad.jsonl"]),
    shard_case("JSONL without the text field", {"bad.jsonl": '{"body": "hello"}\n'},
               ["domain `bad`", "bad.jsonl", "no field `text`", "body"], paths=["bad.jsonl"]),
    shard_case("text_column not in the JSONL", {"bad.jsonl": '{"text": "hello"}\n'},
               ["domain `bad`", "bad.jsonl", "no field `content`"], paths=["bad.jsonl"], text_column="content"),
    shard_case("unknown format name", {"bad.txt": "hello\n"}, ["domain `bad`", "unknown format `csv`"],
               paths=["bad.txt"], format="csv"),
    shard_case("unknown file extension", {"bad.csv": "text\nhello\n"},
               ["domain `bad`", "bad.csv", "extension `.csv`"], paths=["bad.csv"]),
    shard_case("every file empty", {"bad/a.txt": "", "bad/b.txt": ""}, ["domain `bad`", "every file is empty"],
               paths=["bad/*.txt"]),
    shard_case("folder with only writer markers", {"bad/_SUCCESS": "", "bad/.crc": "x"},
               ["domain `bad`", "holds no files"], paths=["bad"]),
    shard_case("file given as format hf", {"bad.txt": "hello\n"},
               ["domain `bad`", "bad.txt", "not a `save_to_disk` folder"], paths=["bad.txt"], format="hf"),
    shard_case("domain with no paths", {}, ["c.yaml: corpus.domains.bad.paths", "non-empty list"],
               format="text"),
    shard_case("storage_options not a mapping", {"bad.txt": "hello\n"},
               ["c.yaml: corpus.domains.bad.storage_options", "must be a mapping"], paths=["bad.txt"],
               storage_options="x"),
    shard_case("unknown key in a domain", {"bad.txt": "hello\n"}, ["c.yaml: corpus.domains.bad", "'column'"],
               paths=["bad.txt"], column="body"),
    # runs tables
    ("runs", "missing run_id", {"r.csv": ddo_table().drop(columns="run_id")}, ["ddo", "r.csv"],
     ["r.csv", "run_id"]),
    ("runs", "missing tokens", {"r.csv": ddo_table().drop(columns="tokens")}, ["ddo", "r.csv"],
     ["r.csv", "tokens"]),
    ("runs", "NaN loss", {"r.csv": ddo_table().assign(**{"loss.web": [np.nan] + [2.5] * 6})}, ["ddo", "r.csv"],
     ["r.csv", "row 1", "loss.web"]),
    ("runs", "inf tokens", {"r.csv": ddo_table().assign(tokens=[np.inf] + [1e6] * 6)}, ["ddo", "r.csv"],
     ["r.csv", "row 1", "tokens"]),
    ("runs", "negative weight", {"r.csv": ddo_table().assign(**{"w.code": [0.3, -0.1, .3, .3, .3, .3, .3]})},
     ["ddo", "r.csv"], ["r.csv", "row 2", "w.code"]),
    ("runs", "all-zero mixture",
     {"r.csv": ddo_table().assign(**{f"w.{d}": [0.0] + [1 / 3] * 6 for d in DOMAINS})},
     ["ddo", "r.csv"], ["r.csv", "row 1", "zero"]),
    ("runs", "duplicate evaluation", {"r.csv": pd.concat([ddo_table(), ddo_table().iloc[[3]]])}, ["ddo", "r.csv"],
     ["r.csv", "row 8", "duplicate", "--average-duplicates"]),
    ("runs", "not a design", {"r.csv": ddo_table().iloc[[0, 1, 3]]}, ["ddo", "r.csv"], ["r.csv"]),
    ("runs", "unknown base", {"r.csv": ddo_table()}, ["ddo", "r.csv", "--base", "nope"], ["r.csv", "nope"]),
    ("runs", "text in tokens", {"r.csv": ddo_table().assign(tokens=["x"] + [1e6] * 6)}, ["ddo", "r.csv"],
     ["r.csv", "row 1", "tokens"]),
    ("runs", "Parquet without tokens", {"r.parquet": ddo_table().drop(columns="tokens")}, ["ddo", "r.parquet"],
     ["r.parquet", "tokens"]),
    ("runs", "single LR horizon", {"r.csv": lr_table().iloc[:4]}, ["lr", "r.csv", "--target-tokens", "1e9"],
     ["r.csv", "single horizon"]),
    ("runs", "LR table without lr", {"r.csv": lr_table().drop(columns="lr")},
     ["lr", "r.csv", "--target-tokens", "1e9"], ["r.csv", "lr"]),
    ("runs", "law without enough points", {"r.csv": lr_table().iloc[:3]}, ["law", "r.csv"], ["r.csv"]),
    ("runs", "unknown table format", {"r.txt": "run_id,tokens\n"}, ["law", "r.txt"], ["r.txt", "format"]),
    ("runs", "missing runs file", {}, ["law", "absent.csv"], ["absent.csv", "not found"]),
    ("runs", "regress target missing", {"r.csv": ddo_table(), "m.csv": ddo_table()[[f"w.{d}" for d in DOMAINS]]},
     ["regress", "r.csv", "--target", "loss.nope", "--predict", "m.csv"], ["r.csv", "loss.nope"]),
    # mixture files (`project` inputs, `regress --predict` mixtures)
    ("mixture", "mixture without tokens", {"a.json": {"weights": {"web": 1}}, "b.json": mix(2e6)},
     ["project", "a.json", "b.json", "--target-tokens", "1e8"], ["a.json", "tokens"]),
    ("mixture", "mixture negative weight", {"a.json": mix(web=-1, code=1, books=1), "b.json": mix(2e6)},
     ["project", "a.json", "b.json", "--target-tokens", "1e8"], ["a.json", "weights.web"]),
    ("mixture", "mixture NaN weight",
     {"a.json": '{"tokens": 1e6, "weights": {"web": NaN, "code": 1, "books": 1}}', "b.json": mix(2e6)},
     ["project", "a.json", "b.json", "--target-tokens", "1e8"], ["a.json", "web"]),
    ("mixture", "mixture all zero", {"a.json": mix(web=0, code=0, books=0), "b.json": mix(2e6)},
     ["project", "a.json", "b.json", "--target-tokens", "1e8"], ["a.json", "zero"]),
    ("mixture", "domains differ between files", {"a.json": mix(), "b.json": mix(2e6, web=.5, code=.3, news=.2)},
     ["project", "a.json", "b.json", "--target-tokens", "1e8"], ["b.json", "news"]),
    ("mixture", "mixture not JSON", {"a.json": "{oops", "b.json": mix(2e6)},
     ["project", "a.json", "b.json", "--target-tokens", "1e8"], ["a.json", "JSON"]),
    ("mixture", "regress mixtures with other domains",
     {"r.csv": ddo_table(), "m.csv": pd.DataFrame({"w.web": [1.0], "w.news": [1.0]})},
     ["regress", "r.csv", "--target", "loss", "--predict", "m.csv"], ["m.csv"]),
]
KINDS = ("config", "shard", "runs", "mixture")


def write(tmp: Path, files: dict) -> None:
    for name, content in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, pd.DataFrame):
            if path.suffix == ".parquet":
                content.to_parquet(path, index=False)
            else:
                content.to_csv(path, index=False)
        elif isinstance(content, dict):
            path.write_text(yaml.safe_dump(content, sort_keys=False) if path.suffix == ".yaml" else json.dumps(content))
        else:
            path.write_text(content)


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_matrix_covers_every_kind() -> None:
    """The matrix cannot shrink silently: >= 5 cases of each kind, >= 25 in all, unique names."""
    counts = Counter(case[0] for case in CASES)
    assert set(counts) == set(KINDS), counts
    assert all(counts[kind] >= 5 for kind in KINDS), counts
    assert sum(counts.values()) >= 25, counts
    assert len({case[1] for case in CASES}) == len(CASES)


def test_base_configs_are_valid(tmp_path: Path, monkeypatch) -> None:
    """The config and shard cases each break one thing of an input that is otherwise accepted."""
    from autoscale_ray.config import load_config
    from autoscale_ray.pipeline import corpus_sources

    write(tmp_path, {**GOOD_SHARDS, "good.yaml": good_config(), "shards.yaml": shard_config(),
                     "mixlaw.yaml": mixlaw_config()})
    monkeypatch.chdir(tmp_path)
    cfg = load_config("good.yaml")
    assert cfg.corpus.kind == "synthetic" and cfg.search.probe_budgets == (12_000, 24_000)
    cfg = load_config("mixlaw.yaml")
    assert cfg.search.mixing_law and cfg.models == ("gpt2-nano", "gpt2-micro", "gpt2-tiny")
    cfg = load_config("shards.yaml")
    assert cfg.corpus.kind == "domains"
    assert [s.name for s in corpus_sources(cfg)] == ["web", "code"]
    assert sorted(tree(tmp_path)) == sorted([*GOOD_SHARDS, "good.yaml", "shards.yaml", "mixlaw.yaml"])


@pytest.mark.parametrize("kind,name,files,argv,pieces", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_bad_input_exits_2_with_one_line(tmp_path: Path, monkeypatch, capsys, kind, name, files, argv, pieces):
    write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0], err
    for piece in pieces:
        assert piece in lines[0], lines[0]
    assert tree(tmp_path) == before  # nothing written
    if argv[0] == "run":  # refused before Ray starts and before the output folder exists
        assert not (tmp_path / "out").exists()
        ray = sys.modules.get("ray")
        assert ray is None or not ray.is_initialized()


def test_installed_command_exit_code(tmp_path: Path) -> None:
    """The real console script (the one test that runs it; the others call cli.main in process):
    exit 2 with one error line on stderr on bad input, 0 with one JSON object on success."""
    ddo_table().drop(columns="tokens").to_csv(tmp_path / "bad.csv", index=False)
    ddo_table().to_csv(tmp_path / "good.csv", index=False)
    exe = Path(sys.executable).with_name("autoscale-ray")
    bad = subprocess.run([str(exe), "ddo", str(tmp_path / "bad.csv"), "--json"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == "" and "tokens" in bad.stderr
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("autoscale-ray ddo: error: ") and "bad.csv" in lines[0]
    good = subprocess.run([str(exe), "ddo", str(tmp_path / "good.csv"), "--json"], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr
    obj = json.loads(good.stdout)
    assert set(obj["weights"]) == set(DOMAINS) and abs(sum(obj["weights"].values()) - 1) < 1e-9
