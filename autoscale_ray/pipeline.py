"""`autoscale-ray run CONFIG.yaml`: the whole search as ONE Ray Tune experiment.

corpus (packed once, cached) -> predictor actor -> Tuner(DDOSearcher over the DDO plan, trials =
proxy runs) -> runs.parquet + recommendation.json + report.md (+ Tune's TensorBoard logs).
The output folder is a search folder (autoscale_ray.tuning.folder): marker, lock, `--restart`.
`--resume` starts a fresh Tune experiment whose searcher replays every trial recorded as finished
in `done/` (JSON) and trains the rest; nothing Tune pickled is read back, so a crafted file in a
shared output cannot run code on the driver.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from autoscale_ray.atomic import write_json
from autoscale_ray.checks import as_text, check_known, normalised, weight_vector
from autoscale_ray.config import ExperimentConfig, load_config, parse_config
from autoscale_ray.errors import BadInput, Interrupted
from autoscale_ray.interrupt import TUNE_RUNNING, graceful_stop
from autoscale_ray.laws.checks import on_simplex
from autoscale_ray.names import check_name
from autoscale_ray.runs import validate, write_runs
from autoscale_ray.tuning import cluster, folder, layout
from autoscale_ray.tuning.contract import trial_resources
from autoscale_ray.storage import Store

log = logging.getLogger("autoscale_ray")


def corpus_sources(cfg: ExperimentConfig) -> list:
    """The config's domain sources, checked (paths, formats, text columns) without Ray, so a bad
    shard is one clear line before anything starts or is written."""
    from autoscale_ray.data import (build_embedded_corpus, embedded_sources, sources_from_config,
                                    synthetic_corpus, synthetic_sources)
    from autoscale_ray.data.sources import check_sources, resolve_source

    corpus = cfg.corpus
    if corpus.kind == "embedded":
        return embedded_sources(build_embedded_corpus())
    if corpus.kind == "synthetic":
        sizes = dict(corpus.synthetic)
        text = "synthetic-text-" + "-".join(f"{k}{v}" for k, v in sorted(sizes.items()))
        return synthetic_sources(synthetic_corpus(packed_root(cfg).parent / text.rstrip("-"), **sizes))
    sources = sources_from_config(corpus.domains, f"{cfg.source}: corpus.domains")
    check_sources(sources)
    for source in sources:
        resolve_source(source)
    return sources


def declared_domains(cfg: ExperimentConfig) -> list[str]:
    """The corpus's domain names, known from the config alone (nothing is read or built)."""
    from autoscale_ray.data.embedded import DOMAINS
    from autoscale_ray.data.synthetic import DEFAULT_DOMAINS

    if cfg.corpus.kind == "embedded":
        return list(DOMAINS)
    if cfg.corpus.kind == "synthetic":
        return [d.name for d in DEFAULT_DOMAINS]
    return [str(name) for name in cfg.corpus.domains]


def declared_sources(cfg: ExperimentConfig) -> list:
    """The user's domain sources as declared (for the output's overlap check); none for the
    built-in corpora, which live in the cache."""
    from autoscale_ray.data import sources_from_config

    if cfg.corpus.kind != "domains":
        return []
    return sources_from_config(cfg.corpus.domains, f"{cfg.source}: corpus.domains")


def packed_root(cfg: ExperimentConfig) -> Path:
    # packed corpora are keyed by their sources, tokenizer and seq_len: share them across runs
    from autoscale_ray.data.embedded import default_packed_dir

    corpus = cfg.corpus
    return Path(corpus.cache_dir).expanduser() if corpus.cache_dir else default_packed_dir()


def prepare(cfg: ExperimentConfig, sources: list):
    """The packed corpus of the config (built once, then read from the cache)."""
    from autoscale_ray.data import prepare_corpus

    corpus = cfg.corpus
    return prepare_corpus(sources, packed_root(cfg), seq_len=corpus.seq_len, tokenizer=corpus.tokenizer,
                          val_tokens=corpus.val_tokens)


def base_weights(cfg: ExperimentConfig, domains: tuple[str, ...]) -> dict[str, float]:
    given = cfg.search.base_weights
    if not given:
        return {d: 1.0 / len(domains) for d in domains}
    where = f"{cfg.source}: search.base_weights"
    check_known(sorted(given), domains, where, what="base_weights name unknown domain(s)",
                fix="the corpus has:", show=as_text)
    if not on_simplex(weight_vector(given, domains), positive=True):
        raise BadInput("every domain needs a positive base weight (DDO perturbs each one)", where)
    return normalised({d: float(given[d]) for d in domains})


def _quiet_ray() -> None:
    """Keep the terminal for the search's own progress lines: no Ray Data progress logging."""
    from ray.data import DataContext

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    # Tune's new console output prints a banner ("Number of trials 9223372036854775807" for an
    # open-ended searcher) and a TensorBoard hint into Ray's session folder whatever `verbose` says;
    # the classic reporter at verbose=0 prints nothing, and the search prints its own lines
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    DataContext.get_current().enable_progress_bars = False
    for name in ("ray.data", "ray.tune", "ray.train"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # tune.run's own stop messages point at `Tuner.restore`, which a search never uses: the CLI
    # prints how to --resume instead
    logging.getLogger("ray.tune.tune").setLevel(logging.CRITICAL)
    # "Progress bars disabled": the search disabled them itself, nothing for a user to do
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)


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


def _tune_storage(location: str) -> dict[str, Any]:
    """RunConfig/restore keywords for a local folder or an object-storage URI."""
    store = Store(location)
    if store.local:
        return {"storage_path": store.path}
    return {"storage_path": store.path, "storage_filesystem": store.fs}


SNAPSHOT_ENV = "TUNE_GLOBAL_CHECKPOINT_S"
OBJECT_STORE_SNAPSHOT_S = 60.0


@contextmanager
def experiment_snapshots(tune_store: Store) -> Iterator[None]:
    """How often Tune snapshots its experiment to an object store. Each snapshot re-uploads the
    driver's whole experiment folder (every trial's result files, one request per file part), by
    default every 10 s; a search resumes from its own done/ records, never from that snapshot,
    so on object storage it is taken every 60 s (and at the end). A local folder, or the
    user's own TUNE_GLOBAL_CHECKPOINT_S, is left as it is. Tune reads the variable when
    Tuner.fit starts its controller; it is restored afterwards."""
    if tune_store.local or SNAPSHOT_ENV in os.environ:
        yield
        return
    os.environ[SNAPSHOT_ENV] = str(OBJECT_STORE_SNAPSHOT_S)
    try:
        yield
    finally:
        os.environ.pop(SNAPSHOT_ENV, None)


def check_domains(cfg: ExperimentConfig, domains: Sequence[str]) -> dict[str, float]:
    """The checks that need the corpus's domain names (known before Ray): the base mixture, and a
    weight floor that leaves room for a mixture. Returns the base weights."""
    for name in domains:
        check_name(name, f"{cfg.source}: corpus", "domain")
    weights = base_weights(cfg, tuple(domains))
    unknown = sorted(set(cfg.search.available_tokens or {}) - set(domains))
    if unknown:
        raise BadInput(f"available_tokens names unknown domain(s): {', '.join(unknown)}",
                       f"{cfg.source}: search.available_tokens",
                       f"use domains among: {', '.join(domains)}")
    if cfg.search.swarm:
        check_swarm_domains(cfg, domains)
    if cfg.search.min_weight * len(domains) >= 1:
        raise BadInput(f"min_weight {cfg.search.min_weight:g} x {len(domains)} domains >= 1 leaves no "
                       "room for a mixture", f"{cfg.source}: search.min_weight",
                       f"give min_weight below {1 / len(domains):.3g}")
    return weights


def check_swarm_domains(cfg: ExperimentConfig, domains: Sequence[str]) -> None:
    """A swarm method's settings against the corpus's domains: the fixed mixture names them and
    lies on the simplex; the swarm has the runs its fit needs (parameters + 1)."""
    from autoscale_ray.laws.regression import MIN_RUNS

    search, where = cfg.search, f"{cfg.source}: search.swarm"
    if search.fixed_weights is not None:
        check_known(sorted(search.fixed_weights), domains, f"{where}.weights",
                    what="swarm.weights name unknown domain(s)", fix="the corpus has:", show=as_text)
        if not on_simplex(weight_vector(search.fixed_weights, domains)):
            raise BadInput("swarm.weights are not shares >= 0 with a positive sum", f"{where}.weights",
                           "give each domain's share of the mixture")
    need = {"regmix": MIN_RUNS, "log-linear": len(domains) + 2}.get(search.method, 0)
    if search.swarm_size < need:
        raise BadInput(f"{search.method} fits {need - 1} parameters per domain from the swarm: "
                       f"swarm.size {search.swarm_size} is too few", f"{where}.size",
                       f"give size >= {need}")


def check_resources(cfg: ExperimentConfig) -> None:
    """What a trial reserves must fit the machine when the search starts Ray itself (on a
    cluster the autoscaler may add nodes, so it is left to Ray there)."""
    import ray

    have = ray.cluster_resources()
    for key, need in trial_resources(cfg).items():
        if need > have.get(key.upper(), 0.0):
            raise BadInput(f"a trial needs {need:g} {key.upper()} but this machine has "
                           f"{have.get(key.upper(), 0.0):g}", f"{cfg.source}: resources",
                           "lower cpus_per_trial/gpus_per_trial, or submit the search to a cluster")


def as_config(config: str | Path | Mapping[str, Any] | ExperimentConfig) -> ExperimentConfig:
    """A config file's path, the config as a mapping (as its YAML would read), or a parsed config."""
    if isinstance(config, ExperimentConfig):
        return config
    if isinstance(config, Mapping):
        return parse_config(dict(config), "<config mapping>")
    return load_config(config)


def run(config: str | Path | Mapping[str, Any] | ExperimentConfig, out: str | Path | None = None, *,
        resume: bool = False, restart: bool = False, address: str | None = None,
        dashboard: bool = True) -> dict[str, Any]:
    """Run, resume or restart the search of a config; returns the recommendation. `out` (and the
    config's storage_path) may be a folder or an object-storage URI (s3://, gs://). Ray: the
    running instance of this process, else `address`, RAY_ADDRESS or the cluster `ray start`
    registered, else a fresh local instance (with its dashboard unless `dashboard` is False).

    Everything is checked before anything is written: the config, the cluster answering, the
    corpus's files, the output folder (a new or empty one, or one holding this search: `resume`,
    or any search: `restart`)."""
    cfg = as_config(config)
    store, tune_store = output_stores(cfg, out)
    weights = check_before_start(cfg, store, tune_store, resume=resume, restart=restart)
    ray_target = cluster.target(address)
    cluster.check_answers(ray_target)  # seconds, not Ray's minutes of retries
    sources = corpus_sources(cfg)  # the files checked through; the built-in corpora are built
    start_ray(cfg, ray_target, dashboard=dashboard)
    corpus = prepare(cfg, sources)  # into its cache, not the output: a bad shard leaves no trace
    with folder.SearchLock(store):
        experiment = open_search(cfg, store, tune_store, resume=resume, restart=restart)
        try:
            with graceful_stop() as stopping:
                rec = _search(cfg, store, tune_store, corpus, weights, experiment, stopping)
        except KeyboardInterrupt:
            rec = None
        if rec is None:
            folder.mark(store, "interrupted")
            raise Interrupted(f"stopped with {layout.count_done(store)} finished trial(s) kept in "
                              f"{store.location}; continue with: autoscale-ray run {cfg.source} "
                              f"--out {store.location} --resume")
        folder.mark(store, "complete")
        return rec


def output_stores(cfg: ExperimentConfig, out: str | Path | None) -> tuple[Store, Store]:
    """(output store, Tune's store): `--out` (default results/<name>) and storage_path or <out>/tune."""
    if out is not None and not str(out).strip():
        raise BadInput("--out is empty", "--out", "give a folder or URI for the search's outputs")
    store = Store(out if out is not None else Path("results") / cfg.name)
    return store, layout.tune_store(store, cfg.storage_path)


def check_before_start(cfg: ExperimentConfig, store: Store, tune_store: Store, *, resume: bool,
                       restart: bool) -> dict[str, float]:
    """The checks that need no corpus and no Ray: CPUs, domains and base weights, where the outputs
    go, and whether that folder may be used. Returns the base weights."""
    import ray

    if cfg.resources.cpus_per_trial > (os.cpu_count() or 1) \
            and not os.environ.get("RAY_ADDRESS") and not ray.is_initialized():
        raise BadInput(f"cpus_per_trial {cfg.resources.cpus_per_trial:g} is more than this machine's "
                       f"{os.cpu_count()} CPUs: no trial could start", f"{cfg.source}: resources.cpus_per_trial",
                       "lower it, or submit the search to a cluster")
    weights = check_domains(cfg, declared_domains(cfg))
    declared = declared_sources(cfg)
    folder.check_location(store, declared)
    if cfg.storage_path:
        folder.check_location(tune_store, declared)
    folder.check_resumable(folder.read_marker(store), cfg, store, resume=resume, restart=restart)
    folder.check_unlocked(store)
    return weights


def start_ray(cfg: ExperimentConfig, ray_target: cluster.Target | None = None, *,
              dashboard: bool = True) -> None:
    """Join the running Ray (this process's, a cluster) or start a local one sized by this machine
    (its dashboard on loopback when ray[default] is installed), then say which in one line."""
    import ray

    ray_target = ray_target or cluster.target()
    _quiet_ray()
    _keep_credentials_out_of_ray_logs()
    if not ray.is_initialized():
        local = ray_target.address is None
        with cluster.one_line_start():
            ray.init(address="local" if local else ray_target.address, log_to_driver=False,
                     include_dashboard=None if dashboard else False,
                     **({"dashboard_host": "127.0.0.1"} if local else {}))
        if local:
            check_resources(cfg)
    from ray._private.worker import get_dashboard_url

    line = cluster.describe(ray_target, ray.cluster_resources(), get_dashboard_url() or None)
    print(f"[autoscale-ray] {line}", file=sys.stderr, flush=True)


def open_search(cfg: ExperimentConfig, store: Store, tune_store: Store, *, resume: bool,
                restart: bool) -> str:
    """Under the lock: check the marker again, clear the earlier search on --restart, record this
    session. Returns the Tune experiment name of this session."""
    marker = folder.read_marker(store)  # again, now that no other run can change it
    folder.check_resumable(marker, cfg, store, resume=resume, restart=restart)
    if marker is not None and restart:
        gone = folder.clear(store, tune_store, marker, cfg.name)
        log.warning("--restart: removed the earlier search's %s", ", ".join(gone) or "marker")
        marker = None
    return folder.begin(store, tune_store, cfg, marker)


def _search(cfg: ExperimentConfig, store: Store, tune_store: Store, corpus: Any,
            weights: dict[str, float], experiment: str, stopping: Any) -> dict[str, Any] | None:
    """The Tune experiment of one session of a search; None when it was stopped by a signal
    (nothing is written then but the finished trials' records)."""
    import ray

    from autoscale_ray.tuning.contract import build_contract
    from autoscale_ray.tuning.idle_actors import idle_actors_kept
    from autoscale_ray.tuning.trackers import attach_results

    contract = build_contract(cfg, corpus.root, store)
    plan = plan_config(cfg, weights)
    name = predictor_name(cfg)
    predictor = start_search_predictor(cfg, tuple(corpus.domains), weights,
                                       available_tokens(cfg, corpus), name=name)
    tuner, progress = make_tuner(cfg, contract, plan, store, tune_store, experiment, predictor=name)
    # Tune's own hint points into Ray's session folder; the events are under the output store
    print(f"[autoscale-ray] Tune experiment {tune_store.uri(experiment)}; "
          f"TensorBoard: tensorboard --logdir {tune_store.uri()}", file=sys.stderr, flush=True)
    started = time.time()
    TUNE_RUNNING.set()
    try:
        with experiment_snapshots(tune_store), idle_actors_kept(cfg.resources.max_concurrent_trials):
            grid = tuner.fit()
    finally:
        TUNE_RUNNING.clear()
    tune_wall = time.time() - started
    if stopping.is_set():
        return None
    rows = ray.get(predictor.frame.remote())
    if rows.empty:
        raise RuntimeError("the search produced no completed trials")
    rec = ray.get(predictor.recommendation.remote())
    # the predictor's fits: at each probe's end and for the answer, while the slots wait
    rec["evidence"]["utilisation"] = {**utilisation(grid, tune_wall, cfg, progress.retries),
                                      **progress.timeline(started),
                                      "fit_seconds": ray.get(predictor.fit_time.remote()),
                                      "per_trial": per_trial_times(grid, progress.per_trial())}
    rec["evidence"]["corpus"] = corpus_identity(cfg, corpus)
    write_results(store, rows, rec)
    attach_results(cfg, store, rec)  # recommendation + report to an MLflow / W&B run
    return rec


def plan_config(cfg: ExperimentConfig, weights: dict[str, float]) -> Any:
    """The plan's settings from the config's search section: DDO's (stages, probe budgets, grids)
    or a swarm method's (searchers/swarm.py)."""
    from autoscale_ray.searchers.ddo import PlanConfig
    from autoscale_ray.searchers.mixlaw_plan import MixlawPlanConfig
    from autoscale_ray.searchers.swarm import SwarmConfig

    search = cfg.search
    if search.mixing_law:
        return MixlawPlanConfig(models=search.probe_models, probes=search.probe_budgets,
                                base_weights=weights, target=search.target_budget, lr=float(search.lr),
                                down=search.down, up=search.up, design=search.design,
                                replicates=search.replicates, seed=search.seed)
    if search.swarm:
        return SwarmConfig(method=search.method, base_weights=weights, budget=search.proxy_budget,
                           size=search.swarm_size, target=search.target_budget, lrs=search.lr_grid,
                           lr=search.lr, replicates=search.replicates, seed=search.seed,
                           fixed=search.fixed_weights,
                           batch=cfg.resources.max_concurrent_trials, lr_extend=search.lr_extend,
                           lr_extend_rounds=search.lr_extend_rounds)
    return PlanConfig(probes=search.probe_budgets, base_weights=weights, target=search.target_budget,
                      lrs=search.lr_grid, lr=search.lr, down=search.down, up=search.up,
                      design=search.design, verify_probe=search.verify_probe,
                      target_seeds=search.target_seeds, seed=search.seed,
                      lr_extend=search.lr_extend, lr_extend_rounds=search.lr_extend_rounds,
                      rounds=search.rounds, replicates=search.replicates)


def available_tokens(cfg: ExperimentConfig, corpus: Any) -> dict[str, float]:
    """Training tokens per domain: the packed corpus's (sequences x seq_len), overridden by the
    config's `search.available_tokens` (shards not scanned, or a larger target corpus)."""
    seq_len = int(corpus.seq_len)
    found = {d: float(s.get("train_sequences", 0)) * seq_len for d, s in corpus.domain_stats().items()}
    return {**{d: n for d, n in found.items() if n > 0}, **dict(cfg.search.available_tokens or {})}


def predictor_settings(cfg: ExperimentConfig, domains: tuple[str, ...], weights: dict[str, float],
                       available: dict[str, float] | None = None) -> dict[str, Any]:
    """The keyword arguments of the search's `Predictor`: the configured DDO design and the data
    there is (also what benchmarks/fit_parallel.py refits a finished search's runs with)."""
    search = cfg.search
    return dict(domains=domains, target=search.target_budget, probes=search.probe_budgets, lr=search.lr,
                min_multiplier=search.min_multiplier, metric=search.metric, min_weight=search.min_weight,
                base_weights=weights, design=search.design, down=search.down, up=search.up,
                batch_tokens=cfg.train_config().global_batch_tokens, surrogate=search.surrogate,
                available=available, max_epochs=search.max_epochs, method=search.method,
                fixed_weights=search.fixed_weights, seed=search.seed, projector=search.projector,
                target_params=search.target_params, bootstrap=search.bootstrap)


def start_search_predictor(cfg: ExperimentConfig, domains: tuple[str, ...], weights: dict[str, float],
                           available: dict[str, float] | None = None, *, name: str):
    """The search's named predictor actor (`name`: predictor_name)."""
    from autoscale_ray.predictor import start_predictor

    return start_predictor(name, **predictor_settings(cfg, domains, weights, available))


def predictor_name(cfg: ExperimentConfig) -> str:
    """A name no other session shares: the previous search of the same name in this Ray session
    may not be gone yet, and its actor (with that search's runs) must never be picked up."""
    return f"autoscale-predictor-{cfg.name}-{uuid.uuid4().hex[:12]}"


def make_tuner(cfg: ExperimentConfig, contract: Any, plan: Any, store: Store, tune_store: Store,
               experiment: str, *, predictor: str) -> tuple[Any, Any]:
    """ONE Tune experiment: the searcher over the plan (DDO's or a swarm's settings, or a plan
    object such as compare's trial list), trials = `search_trial` under the contract, progress
    lines and progress.json from a callback."""
    from ray import tune

    from autoscale_ray.tuning.progress import ProgressCallback
    from autoscale_ray.tuning.trackers import tune_callbacks
    from autoscale_ray.tuning.trial import search_trial
    from autoscale_ray.searchers.ddo import DDOPlan, DDOSearcher
    from autoscale_ray.searchers.mixlaw_plan import MixlawPlan, MixlawPlanConfig
    from autoscale_ray.searchers.swarm import SwarmConfig, SwarmPlan

    resources = cfg.resources
    if isinstance(plan, SwarmConfig):
        plan = SwarmPlan(plan)
    elif isinstance(plan, MixlawPlanConfig):
        plan = MixlawPlan(plan)
    elif not hasattr(plan, "next_spec"):  # DDO's settings; a plan object is used as it is
        plan = DDOPlan(plan)
    searcher = DDOSearcher(plan, predictor, output=store.location)
    progress = ProgressCallback(store, slots=resources.max_concurrent_trials,
                                planned=searcher.plan.planned_trials)
    tuner = tune.Tuner(
        tune.with_resources(search_trial, dict(contract.resources)),
        param_space={"contract": contract.to_config()},
        tune_config=tune.TuneConfig(search_alg=searcher, metric="loss", mode="min", num_samples=-1,
                                    max_concurrent_trials=resources.max_concurrent_trials,
                                    # a new actor per trial re-imports torch: seconds of
                                    # idle slot per trial, more than a tiny proxy trains
                                    reuse_actors=True),
        run_config=tune.RunConfig(name=experiment, verbose=0, callbacks=[progress, *tune_callbacks(cfg, store)],
                                  failure_config=tune.FailureConfig(max_failures=resources.max_failures),
                                  **_tune_storage(tune_store.location)))
    return tuner, progress


def corpus_identity(cfg: ExperimentConfig, corpus: Any) -> dict[str, Any]:
    """What the proxies trained on: the packed corpus's key (sources, tokenizer, seq_len) and, for
    the shipped embedded corpus, its content hash (the same bytes on every machine). A user's
    shards are not re-read to hash them (they may be terabytes); their key names them."""
    from autoscale_ray.data.embedded import embedded_corpus_hash

    identity: dict[str, Any] = {"kind": cfg.corpus.kind, "packed_key": corpus.root.name}
    if cfg.corpus.kind == "embedded":
        identity["content_hash"] = embedded_corpus_hash()
    return identity


def utilisation(grid: Any, wall: float, cfg: ExperimentConfig, retries: int) -> dict[str, Any]:
    """How busy the trial slots were: trial seconds / (the Tune experiment's wall seconds x slots);
    the predictor's final fit runs after the slots are released, so it is reported apart."""
    slots = cfg.resources.max_concurrent_trials
    busy = sum(float(result.metrics.get("time_total_s", 0.0)) for result in grid if result.metrics)
    return {"busy_trial_seconds": busy, "wall_seconds": wall, "slots": slots,
            "utilisation": busy / (wall * slots) if wall > 0 else math.nan,
            "trials": len(grid), "errors": grid.num_errors, "retries": retries}


def per_trial_times(grid: Any, spans: dict[str, dict[str, float | None]]) -> dict[str, dict[str, float | None]]:
    """Per trial key: its span in the driver's view, the idle time before it in its slot, the
    seconds it trained (Tune's time_total_s), and the rest of its span (start-up, or waiting for
    Tune's loop, which runs the searcher's fits), sorted by key."""
    trained = {str(r.config.get("key")): float(r.metrics["time_total_s"])
               for r in grid if r.metrics and "time_total_s" in r.metrics and r.config}
    out = {}
    for key in sorted(spans):
        t = trained.get(key)
        out[key] = {**spans[key], "trained_s": t,
                    "beyond_training_s": None if t is None else max(0.0, spans[key]["span_s"] - t)}
    return out


def write_results(store: Store, rows: Any, rec: dict[str, Any]) -> None:
    """runs.parquet, recommendation.json and the report; for object storage written in a local
    folder, then uploaded."""
    from autoscale_ray.report import write_report

    work = Path(store.path) if store.local else Path(tempfile.mkdtemp(prefix="autoscale-ray-out-"))
    write_runs(validate(rows, "<search>").frame, work / layout.RUNS)
    write_json(work / layout.RECOMMENDATION, rec)
    write_report(work, store.location.rsplit("/", 1)[-1])
    if not store.local:
        store.upload(work)
        shutil.rmtree(work, ignore_errors=True)
