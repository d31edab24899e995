"""Helpers shared by the tests (and benchmarks/search_efficiency.py): the small experiment config
of the end-to-end tests, and synchronous drivers of a DDO plan and of a baseline searcher (no Tune:
suggest and complete one trial after another against an oracle).

Imported as `from helpers import ...` (pytest puts tests/ on sys.path, as for data_fixtures);
no pytest here, so the benchmark imports it too. The `cli` fixture is in data_fixtures."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import yaml

# The search the end-to-end tests run: the synthetic corpus (4 domains), gpt2-nano proxies (1 layer
# of 64: the machinery under test is the same at any size, and a trial trains 3.3x faster than
# gpt2-tiny's) at two tiny probe budgets, a fixed LR, no verify stage: 2 x (2 x 4 + 1) trials.
SMALL_CONFIG: dict[str, Any] = {
    "name": "e2e",
    "corpus": {"synthetic": True, "seq_len": 64, "val_tokens": 2048, "cache_dir": "cache"},
    "train": {"model": "gpt2-nano", "global_batch_tokens": 1024, "micro_batch": 16, "eval_count": 6,
              "eval_batches": 2},
    # one DDO round: the machinery tests run the paper's 2m+1 design; test_pipeline's end-to-end
    # test runs the default refinement round
    "search": {"probe_budgets": [1.2e4, 2.4e4], "target_budget": 2e5, "lr": 3e-3, "verify_probe": False,
               "ddo": {"rounds": 1, "replicates": 0}},
    "resources": {"max_concurrent_trials": 2, "cpus_per_trial": 0.5, "max_failures": 1},
}


CORPUS_CACHE_ENV = "AUTOSCALE_RAY_TEST_CORPUS_CACHE"  # set for the whole suite by tests/conftest.py


def corpus_cache(tmp: Path) -> Path:
    """Where the end-to-end tests' corpus is packed: one folder for the whole suite when
    tests/conftest.py set it (the same synthetic corpus is packed once, not once per search; the
    cache is keyed by its sources, so a search finds it as a user's second run does), else tmp/cache."""
    shared = os.environ.get(CORPUS_CACHE_ENV)
    return Path(shared) if shared else tmp / "cache"


def experiment_config(name: str | None = "e2e", cache_dir: str | Path | None = "cache", *,
                      drop: Iterable[str] = (), **sections: dict[str, Any]) -> dict[str, Any]:
    """SMALL_CONFIG as a new dict: `name` and `corpus.cache_dir` set (None leaves the key out),
    then the dotted keys in `drop` removed ("search.lr", or a whole section "resources"), then
    each keyword's mapping merged into that section (created if dropped). Keys keep their order:
    a changed key stays where it was, a new one comes last."""
    cfg = copy.deepcopy(SMALL_CONFIG)
    cfg["name"] = name
    cfg["corpus"]["cache_dir"] = None if cache_dir is None else str(cache_dir)
    unset = [key for key, value in (("name", name), ("corpus.cache_dir", cache_dir)) if value is None]
    for dotted in (*unset, *drop):
        *parents, last = dotted.split(".")
        part = cfg
        for p in parents:
            part = part[p]
        del part[last]
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    """The config as YAML (sorted keys, as yaml.safe_dump writes by default)."""
    path.write_text(yaml.safe_dump(cfg))
    return path


def config_file(tmp: Path, name: str, file: str | None = None, **search: Any) -> Path:
    """The end-to-end tests' config file: SMALL_CONFIG named `name`, its corpus cached in
    corpus_cache(tmp), `search` keys changed, written to tmp/<file, default name.yaml>."""
    return write_config(tmp / (file or f"{name}.yaml"), experiment_config(name, corpus_cache(tmp), search=search))


def drive_plan(plan: Any, fits: Any, rows: Callable[[Any], list[dict]], fail: Iterable[str] = (),
               start: int = 0) -> list:
    """Drive a started DDOPlan to the end as a search does, without Tune: issue every spec it has
    (trial ids t<start>, t<start+1>, ...), then complete them in that order with `rows(spec)` (a
    key in `fail`: as failed, no rows), until it is finished. Returns the specs in issue order."""
    fail = set(fail)
    issued, n = [], start
    while not plan.finished:
        batch = []
        while (spec := plan.next_spec(f"t{n}")) is not None:
            batch.append((f"t{n}", spec))
            n += 1
        assert batch, "plan stalled with nothing to issue"
        for tid, spec in batch:
            ok = spec.key not in fail
            plan.complete(tid, rows(spec) if ok else [], ok, fits)
            issued.append(spec)
    return issued


def drive_searcher(searcher: Any, result: Callable[[dict], dict], start: int = 0,
                   limit: int | None = None) -> Iterator[dict]:
    """Suggest and complete one trial at a time (ids t<start>, ...) with `result(config)` until the
    searcher is FINISHED (or `limit` trials); yields each config once its trial is complete."""
    i = start
    while limit is None or i - start < limit:
        config = searcher.suggest(f"t{i}")
        if config == searcher.FINISHED:
            return
        assert config is not None  # one at a time: nothing is ever in flight here
        searcher.on_trial_complete(f"t{i}", result(config))
        yield config
        i += 1
