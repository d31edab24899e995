"""The output store of a search: every name the tool writes there, and its readers and writers.

    <out>/
      autoscale-ray-search.json    the marker: fingerprint, experiments, state (search/folder.py)
      .autoscale-ray.lock          held while a run is active
      runs.parquet                 every evaluation of every trial (the runs table)
      recommendation.json          the answer, with its evidence
      report.md, *.png             the report (autoscale_ray/report.py)
      progress.json                live progress (search/progress.py)
      done/<key>.json              a finished trial's rows: replayed on --resume, never retrained
      trained/                     one record per trial that trained (shows what a resume retrained)
      injected_failures/           one record per injected failure (fault-tolerance tests)
      corpus/<key>/ + UPLOADED     the packed corpus for nodes without it (object storage only)
      tune/<experiment>/           Tune's experiment folders (unless the config sets storage_path)
      train/train-trial_id=<id>/   Ray Train's checkpoints of multi-worker trials
      mlruns/, wandb/              the MLflow and W&B trackers' local records (search/trackers.py)

`out` may be a local folder or an object-storage URI; everything goes through `Store`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

from autoscale_ray.storage import Store

MARKER = "autoscale-ray-search.json"
LOCK = ".autoscale-ray.lock"
OWNER = ".autoscale-ray-owner"   # in each Tune experiment folder: the output that owns it
RUNS = "runs.parquet"
RECOMMENDATION = "recommendation.json"
REPORT = "report.md"
PLOTS = ("loss_curves.png", "lr_law.png", "mixtures.png", "responses.png")
PROGRESS = "progress.json"
DONE = "done"
TRAINED = "trained"
FAILURES = "injected_failures"
CORPUS = "corpus"
UPLOADED = "UPLOADED"            # last file of a complete corpus upload
TUNE = "tune"
TRAIN = "train"
MLRUNS = "mlruns"                # MLflow's database and artifacts (loggers: [mlflow])
WANDB = "wandb"                  # W&B's run folders (loggers: [wandb])

# What `--restart` may delete: only names this tool writes (plus the owned Tune experiments).
OWNED_FILES = (RUNS, RECOMMENDATION, REPORT, PROGRESS, *PLOTS)
OWNED_FOLDERS = (DONE, TRAINED, FAILURES, TRAIN, MLRUNS, WANDB)


# -- finished trials ------------------------------------------------------------------------------
def _done_name(key: str) -> str:
    return f"{DONE}/" + key.replace("/", "_") + ".json"


def read_done(store: Store, key: str) -> list[dict] | None:
    """The rows of a trial recorded as finished, None if it is not."""
    name = _done_name(key)
    return json.loads(store.read_text(name))["rows"] if store.exists(name) else None


def write_done(store: Store, key: str, rows: list[dict]) -> None:
    """Record a finished trial's rows (atomically) unless already recorded."""
    if not store.exists(_done_name(key)):
        store.write_json(_done_name(key), {"key": key, "rows": rows})


def count_done(store: Store) -> int:
    return len(store.list(DONE))


# -- ledgers --------------------------------------------------------------------------------------
def record_trained(store: Store, key: str) -> None:
    store.add_record(TRAINED, {"key": key, "finished": time.time()})


def record_failure(store: Store, key: str) -> None:
    store.add_record(FAILURES, {"key": key, "time": time.time()})


def trained_keys(store: Store) -> list[str]:
    return [r["key"] for r in store.records(TRAINED)]


def failure_keys(store: Store) -> list[str]:
    return [r["key"] for r in store.records(FAILURES)]


def write_progress(store: Store, progress: Mapping[str, Any]) -> None:
    store.write_json(PROGRESS, dict(progress))


# -- the corpus for nodes without it --------------------------------------------------------------
def corpus_name(corpus_root: Path) -> str:
    return f"{CORPUS}/{corpus_root.name}"


def share_corpus(store: Store, corpus_root: Path) -> str | None:
    """On object storage, upload the packed corpus once per key (the UPLOADED file last, so an
    interrupted upload is redone) and return its URI; None for a local output."""
    if store.local:
        return None
    name = corpus_name(corpus_root)
    if not store.exists(f"{name}/{UPLOADED}"):
        store.upload(corpus_root, name)
        store.write_text(f"{name}/{UPLOADED}", "")
    return store.uri(name)


# -- where Tune and Train write -------------------------------------------------------------------
def tune_store(store: Store, storage_path: str | None) -> Store:
    """Tune's experiments: the config's storage_path, else `<out>/tune`."""
    return Store(storage_path or store.uri(TUNE))


def train_storage(store: Store) -> str:
    """Ray Train's run folders (checkpoints of multi-worker trials)."""
    return store.uri(TRAIN)
