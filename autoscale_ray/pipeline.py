"""`autoscale-ray run CONFIG.yaml`: the whole search as ONE Ray Tune experiment.

corpus (packed once, cached) -> predictor actor -> Tuner(DDOSearcher over the DDO plan, trials =
proxy runs) -> runs.parquet + recommendation.json + report.md (+ Tune's TensorBoard logs).
`--resume` restores the stopped experiment with `Tuner.restore`: finished trials are kept, the
searcher's state comes back from Tune's searcher checkpoint and refills the predictor.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from autoscale_ray.atomic import write_json
from autoscale_ray.config import ExperimentConfig, load_config
from autoscale_ray.errors import BadInput
from autoscale_ray.runs import validate, write_runs
from autoscale_ray.storage import Store

log = logging.getLogger("autoscale_ray")


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


def _quiet_ray() -> None:
    """Keep the terminal for the search's own progress lines: no Ray Data progress logging."""
    from ray.data import DataContext

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    DataContext.get_current().enable_progress_bars = False
    for name in ("ray.data", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.WARNING)


CREDENTIAL_VARS = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN",
                             "AWS_SESSION_TOKEN"})


def _keep_credentials_out_of_ray_logs() -> None:
    """Ray Tune copies the driver's AWS keys into every trainable's runtime_env, and Ray's
    runtime-env agent logs that env in clear text. Trials get credentials from their node (the
    environment `ray start` had, an instance role, a service account) instead."""
    from ray.tune.execution import class_cache

    propagated = getattr(class_cache, "ENV_VARS_TO_PROPAGATE", None)
    if isinstance(propagated, (set, frozenset)):
        class_cache.ENV_VARS_TO_PROPAGATE = set(propagated) - CREDENTIAL_VARS


SEARCH_STATE = ("done", "trained", "injected_failures")
UPLOADED = "UPLOADED"  # marks a complete corpus upload


def clear_previous_search(store: Store, tune_store: Store, name: str) -> bool:
    """A new (not --resume) search in an output that holds an earlier one starts over: its
    finished-trial markers would otherwise be replayed as this search's results."""
    old = [d for d in SEARCH_STATE if store.list(d)] + ([f"tune/{name}"] if tune_store.exists(name) else [])
    if not old:
        return False
    log.warning("%s holds an earlier search (%s): starting over; use --resume to continue it instead",
                store.location, ", ".join(old))
    for folder in SEARCH_STATE:
        store.delete(folder)
    tune_store.delete(name)
    return True


def _tune_storage(location: str) -> dict[str, Any]:
    """RunConfig/restore keywords for a local folder or an object-storage URI."""
    store = Store(location)
    if store.local:
        return {"storage_path": store.path}
    return {"storage_path": store.path, "storage_filesystem": store.fs}


def run(config_path: str | Path, out: str | Path | None = None, *, resume: bool = False) -> dict[str, Any]:
    """Run (or resume) the search of a config; returns the recommendation. `out` (and the
    config's storage_path) may be a folder or an object-storage URI (s3://, gs://)."""
    import ray
    from ray import tune

    from autoscale_ray.placement import trial_options, trial_resources
    from autoscale_ray.predictor import start_predictor
    from autoscale_ray.progress import ProgressCallback
    from autoscale_ray.trial import search_trial
    from autoscale_ray.report import write_report
    from searchers.ddo import DDOPlan, DDOSearcher, PlanConfig

    cfg = load_config(config_path)
    store = Store(out or Path("results") / cfg.name)
    tune_store = Store(cfg.storage_path or store.uri("tune"))
    if resume and not tune_store.exists(cfg.name):
        raise BadInput(f"nothing to resume in {tune_store.uri(cfg.name)}", "--resume",
                       "run without --resume first, or give the same --out")
    sources = corpus_sources(cfg)
    if not resume:
        clear_previous_search(store, tune_store, cfg.name)
    _quiet_ray()
    _keep_credentials_out_of_ray_logs()
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    corpus = prepare(cfg, sources)
    shared = f"corpus/{corpus.root.name}"
    if not store.local and not store.exists(f"{shared}/{UPLOADED}"):  # for nodes without the cache
        store.upload(corpus.root, shared)
        store.write_text(f"{shared}/{UPLOADED}", "")  # last: an interrupted upload is redone
    # the driver writes its files here; for object storage they are uploaded at the end
    work = Path(store.path) if store.local else Path(tempfile.mkdtemp(prefix="autoscale-ray-out-"))
    domains = tuple(corpus.domains)
    weights = base_weights(cfg, domains)
    s = cfg.search
    predictor_name = f"autoscale-predictor-{cfg.name}"
    predictor = start_predictor(predictor_name, domains=domains, target=s.target_budget,
                                probes=s.probe_budgets, lr=s.lr, min_multiplier=s.min_multiplier,
                                metric=s.metric, min_weight=s.min_weight, base_weights=weights)
    r = cfg.resources
    trainable = tune.with_resources(search_trial, trial_resources(cfg))
    plan_cfg = PlanConfig(probes=s.probe_budgets, base_weights=weights, target=s.target_budget,
                          lrs=s.lr_grid, lr=s.lr, down=s.down, up=s.up, design=s.design,
                          verify_probe=s.verify_probe, target_seeds=s.target_seeds, seed=s.seed)
    progress = ProgressCallback(store, slots=r.max_concurrent_trials,
                                planned=plan_cfg.planned_trials())
    started = time.time()
    if resume:
        tuner = tune.Tuner.restore(f"{tune_store.path}/{cfg.name}", trainable=trainable,
                                   resume_unfinished=True, resume_errored=True,
                                   **({} if tune_store.local else {"storage_filesystem": tune_store.fs}))
    else:
        plan = DDOPlan(plan_cfg)
        tuner = tune.Tuner(
            trainable,
            param_space={"trial": trial_options(cfg, corpus.root, store)},
            tune_config=tune.TuneConfig(search_alg=DDOSearcher(plan, predictor_name,
                                                               out=store.location),
                                        metric="loss",
                                        mode="min", num_samples=-1,
                                        max_concurrent_trials=r.max_concurrent_trials,
                                        # a new actor per trial re-imports torch: seconds of
                                        # idle slot per trial, more than a tiny proxy trains
                                        reuse_actors=True),
            run_config=tune.RunConfig(name=cfg.name, verbose=0, callbacks=[progress],
                                      failure_config=tune.FailureConfig(max_failures=r.max_failures),
                                      **_tune_storage(tune_store.location)))
    grid = tuner.fit()
    wall = time.time() - started
    rows = ray.get(predictor.frame.remote())
    if rows.empty:
        raise RuntimeError("the search produced no completed trials")
    write_runs(validate(rows, "<search>").frame, work / "runs.parquet")
    rec = ray.get(predictor.recommendation.remote())
    busy = sum(float(r.metrics.get("time_total_s", 0.0)) for r in grid if r.metrics)
    rec["evidence"]["utilisation"] = {
        "busy_trial_seconds": busy, "wall_seconds": wall, "slots": r.max_concurrent_trials,
        "utilisation": busy / (wall * r.max_concurrent_trials) if wall > 0 else math.nan,
        "trials": len(grid), "errors": grid.num_errors, "retries": progress.retries}
    write_json(work / "recommendation.json", rec)
    write_report(work, store.location.rsplit("/", 1)[-1])
    if not store.local:
        store.upload(work)
        shutil.rmtree(work, ignore_errors=True)
    return rec
