"""`autoscale-ray run CONFIG.yaml`: the whole search as ONE Ray Tune experiment.

corpus (packed once, cached) -> predictor actor -> Tuner(DDOSearcher over the DDO plan, trials =
proxy runs) -> runs.parquet + recommendation.json + report.md (+ Tune's TensorBoard logs).
`--resume` restores the stopped experiment with `Tuner.restore`: finished trials are kept, the
searcher's state comes back from Tune's searcher checkpoint and refills the predictor.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from autoscale_ray.atomic import write_json
from autoscale_ray.config import ExperimentConfig, load_config
from autoscale_ray.errors import BadInput
from autoscale_ray.runs import validate, write_runs

log = logging.getLogger("autoscale_ray")

TINY_PRESETS = ("gpt2-tiny", "llama-tiny", "bert-tiny")
# Fault injection for tests: trials whose keys are listed here raise (each attempt is logged).
FAIL_KEYS_ENV = "AUTOSCALE_RAY_TESTING_FAIL_KEYS"


def corpus_sources(cfg: ExperimentConfig) -> list:
    """The config's domain sources, checked (paths, formats, text columns) without Ray, so a bad
    shard is one clear line before anything starts or is written."""
    from autoscale_ray.data import (build_embedded_corpus, embedded_sources, sources_from_config,
                                    synthetic_corpus, synthetic_sources)
    from autoscale_ray.data.sources import check_sources, resolve_source

    c = cfg.corpus
    if c.kind == "embedded":
        return embedded_sources(build_embedded_corpus())
    if c.kind == "synthetic":
        sizes = dict(c.synthetic)
        folder = "synthetic-text-" + "-".join(f"{k}{v}" for k, v in sorted(sizes.items()))
        return synthetic_sources(synthetic_corpus(packed_root(cfg).parent / folder.rstrip("-"), **sizes))
    sources = sources_from_config(c.domains, f"{cfg.source}: corpus.domains")
    check_sources(sources)
    for source in sources:
        resolve_source(source)
    return sources


def packed_root(cfg: ExperimentConfig) -> Path:
    # packed corpora are keyed by their sources, tokenizer and seq_len: share them across runs
    from autoscale_ray.data.embedded import default_packed_dir

    c = cfg.corpus
    return Path(c.cache_dir).expanduser() if c.cache_dir else default_packed_dir()


def prepare(cfg: ExperimentConfig, sources: list):
    """The packed corpus of the config (built once, then read from the cache)."""
    from autoscale_ray.data import prepare_corpus

    c = cfg.corpus
    return prepare_corpus(sources, packed_root(cfg), seq_len=c.seq_len, tokenizer=c.tokenizer,
                          val_tokens=c.val_tokens)


def base_weights(cfg: ExperimentConfig, domains: tuple[str, ...]) -> dict[str, float]:
    given = cfg.search.base_weights
    if not given:
        return {d: 1.0 / len(domains) for d in domains}
    unknown = sorted(set(given) - set(domains))
    if unknown:
        raise BadInput(f"base_weights name unknown domain(s) {', '.join(unknown)}",
                       f"{cfg.source}: search.base_weights", f"the corpus has: {', '.join(domains)}")
    total = sum(float(given.get(d, 0.0)) for d in domains)
    if any(float(given.get(d, 0.0)) <= 0 for d in domains) or total <= 0:
        raise BadInput("every domain needs a positive base weight (DDO perturbs each one)",
                       f"{cfg.source}: search.base_weights")
    return {d: float(given[d]) / total for d in domains}


def search_trial(config: dict[str, Any]) -> None:
    """Tune trainable: the searcher's suggestion (key, stage, budget, weights, lr, seed) merged into
    the constant trial options, run as one proxy (`run_proxy_trial`)."""
    from ray import tune

    from autoscale_ray.train.trainable import run_proxy_trial
    from searchers.ddo import done_path

    trial = dict(config["trial"])
    done_dir = trial.pop("done_dir")
    if config["key"] in os.environ.get(FAIL_KEYS_ENV, "").split(","):  # chaos testing only
        with open(Path(done_dir).parent / "injected_failures.log", "a", encoding="utf-8") as f:
            f.write(config["key"] + "\n")
        raise RuntimeError(f"injected failure of trial {config['key']} ({FAIL_KEYS_ENV})")
    marker = done_path(done_dir, config["key"])
    if marker.exists():  # finished before a restart: report its rows again, train nothing
        for row in json.loads(marker.read_text(encoding="utf-8"))["rows"]:
            tune.report({k: v for k, v in row.items() if not k.startswith("config/")})
        return
    trial.update(budget_tokens=int(config["budget"]), weights=dict(config["weights"]),
                 lr=float(config["lr"]), seed=int(config["seed"]), stage=config["stage"],
                 run_id=config["key"].replace("/", "_"),
                 meta={"key": config["key"], "probe": config.get("probe")})
    run_proxy_trial(trial)
    with open(Path(done_dir).parent / "trained.jsonl", "a", encoding="utf-8") as ledger:
        ledger.write(json.dumps({"key": config["key"], "finished": time.time()}) + "\n")


def _trial_options(cfg: ExperimentConfig, corpus_dir: Path, storage: str) -> dict[str, Any]:
    r = cfg.resources
    tiny = cfg.train.get("model", "gpt2-tiny") in TINY_PRESETS and r.gpus_per_trial == 0
    in_process = r.in_process == "always" or (r.in_process == "auto" and tiny
                                              and int(cfg.train.get("num_workers", 1)) <= 1)
    options = {**cfg.train, "corpus_dir": str(corpus_dir), "storage_path": storage,
               "done_dir": str(Path(storage).parent / "done"),
               "in_process": in_process, "cpus_per_worker": max(r.cpus_per_trial / 2, 0.25)}
    if r.gpus_per_trial > 0:
        options["use_gpu"] = True
    return options


def _quiet_ray() -> None:
    """Keep the terminal for the search's own progress lines: no Ray Data progress logging."""
    from ray.data import DataContext

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    DataContext.get_current().enable_progress_bars = False
    for name in ("ray.data", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.WARNING)


def run(config_path: str | Path, out: str | Path | None = None, *, resume: bool = False) -> dict[str, Any]:
    """Run (or resume) the search of a config; returns the recommendation."""
    import ray
    from ray import tune

    from autoscale_ray.predictor import start_predictor
    from autoscale_ray.progress import ProgressCallback
    from autoscale_ray.report import write_report
    from searchers.ddo import DDOPlan, DDOSearcher, PlanConfig

    cfg = load_config(config_path)
    out = Path(out or Path("results") / cfg.name).resolve()
    exp_dir = Path(cfg.storage_path or out / "tune")
    if resume and not (exp_dir / cfg.name).exists():
        raise BadInput(f"nothing to resume in {exp_dir / cfg.name}", "--resume",
                       "run without --resume first, or give the same --out")
    sources = corpus_sources(cfg)
    _quiet_ray()
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    corpus = prepare(cfg, sources)
    domains = tuple(corpus.domains)
    weights = base_weights(cfg, domains)
    s = cfg.search
    predictor_name = f"autoscale-predictor-{cfg.name}"
    predictor = start_predictor(predictor_name, domains=domains, target=s.target_budget,
                                probes=s.probe_budgets, lr=s.lr, min_multiplier=s.min_multiplier,
                                metric=s.metric, min_weight=s.min_weight, base_weights=weights)
    r = cfg.resources
    resources = {"cpu": r.cpus_per_trial, **({"gpu": r.gpus_per_trial} if r.gpus_per_trial else {})}
    trainable = tune.with_resources(search_trial, resources)
    plan_cfg = PlanConfig(probes=s.probe_budgets, base_weights=weights, target=s.target_budget,
                          lrs=s.lr_grid, lr=s.lr, down=s.down, up=s.up, design=s.design,
                          verify_probe=s.verify_probe, target_seeds=s.target_seeds, seed=s.seed)
    progress = ProgressCallback(out / "progress.json", slots=r.max_concurrent_trials,
                                planned=plan_cfg.planned_trials())
    started = time.time()
    if resume:
        tuner = tune.Tuner.restore(str(exp_dir / cfg.name), trainable=trainable,
                                   resume_unfinished=True, resume_errored=True)
    else:
        plan = DDOPlan(plan_cfg)
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": _trial_options(cfg, corpus.root, str(out / "train"))},
            tune_config=tune.TuneConfig(search_alg=DDOSearcher(plan, predictor_name,
                                                               done_dir=str(out / "done")),
                                        metric="loss",
                                        mode="min", num_samples=-1,
                                        max_concurrent_trials=r.max_concurrent_trials,
                                        # a new actor per trial re-imports torch: seconds of
                                        # idle slot per trial, more than a tiny proxy trains
                                        reuse_actors=True),
            run_config=tune.RunConfig(name=cfg.name, storage_path=str(exp_dir), verbose=0,
                                      callbacks=[progress],
                                      failure_config=tune.FailureConfig(max_failures=r.max_failures)))
    grid = tuner.fit()
    wall = time.time() - started
    rows = ray.get(predictor.frame.remote())
    if rows.empty:
        raise RuntimeError("the search produced no completed trials")
    write_runs(validate(rows, "<search>").frame, out / "runs.parquet")
    rec = ray.get(predictor.recommendation.remote())
    busy = sum(float(r.metrics.get("time_total_s", 0.0)) for r in grid if r.metrics)
    rec["evidence"]["utilisation"] = {
        "busy_trial_seconds": busy, "wall_seconds": wall, "slots": r.max_concurrent_trials,
        "utilisation": busy / (wall * r.max_concurrent_trials) if wall > 0 else math.nan,
        "trials": len(grid), "errors": grid.num_errors}
    write_json(out / "recommendation.json", rec)
    write_report(out)
    return rec
