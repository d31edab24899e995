"""The Tune trainable of a search: one searcher suggestion + the trial contract -> one proxy run.

Tune's config of a trial is the suggestion (`TrialSpec.to_config()`: key, stage, budget, weights,
lr, seed, probe) plus `contract` (`TrialContract.to_config()`, the same for every trial). Records
go to the output store, which every node of a cluster sees (object storage or a shared mount). A
trial already recorded in `done/` is never issued: the searcher replays it (--resume).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from autoscale_ray import chaos
from autoscale_ray.atomic import DIR_MODE
from autoscale_ray.tuning import layout
from autoscale_ray.tuning.contract import TrialContract
from autoscale_ray.storage import Store


def search_trial(config: dict[str, Any]) -> None:
    """Tune function trainable (use with `tune.with_resources(search_trial, contract.resources)`)."""
    from autoscale_ray.train.runner import run_proxy

    contract = TrialContract.from_config(config["contract"])
    store = Store(contract.output)
    key = str(config["key"])
    if chaos.should_fail(key):  # fault-tolerance tests only; each attempt is logged
        layout.record_failure(store, key)
        raise RuntimeError(f"injected failure of trial {key} ({chaos.FAIL_KEYS_ENV})")
    import ray

    run_proxy(proxy_job(contract, config, node=ray.get_runtime_context().get_node_id()))
    layout.record_trained(store, key)


def proxy_job(contract: TrialContract, suggestion: Mapping[str, Any], node: str | None = None) -> Any:
    """The `ProxyJob` of one suggestion: the contract's train section with the trial's budget,
    weights, LR and seed; the corpus on this node (fetched once if this node lacks it)."""
    from autoscale_ray.train.config import TrainConfig
    from autoscale_ray.train.job import ProxyJob

    per_trial = {"budget_tokens": int(suggestion["budget"]), "weights": dict(suggestion["weights"]),
                 "lr": float(suggestion["lr"]), "seed": int(suggestion["seed"])}
    if suggestion.get("model"):  # a mixing-law search trains several probe models
        per_trial["model"] = str(suggestion["model"])
    if contract.use_gpu:
        per_trial["use_gpu"] = True
    corpus_dir = contract.corpus_dir
    if contract.corpus_uri is not None:
        corpus_dir = str(local_corpus(contract.corpus_uri, corpus_dir))
    key = str(suggestion["key"])
    return ProxyJob(
        train=TrainConfig.from_mapping({**contract.train, **per_trial}, "trial config"),
        corpus_dir=corpus_dir, run_id=key.replace("/", "_"), storage_path=contract.train_storage,
        in_process=contract.in_process, cpus_per_worker=contract.cpus_per_worker,
        gpus_per_worker=contract.gpus_per_worker,
        extras={"stage": suggestion["stage"], "key": key, "probe": suggestion.get("probe"),
                "node": node})


def local_corpus(uri: str, corpus_dir: str) -> Path:
    """The packed corpus on this node: `corpus_dir` if present, else a copy of `uri` in this node's
    cache (downloaded to a temporary folder, then renamed, so concurrent trials never see half)."""
    from autoscale_ray.data.embedded import default_packed_dir
    from autoscale_ray.data.packed import MANIFEST

    if (Path(corpus_dir) / MANIFEST).exists():
        return Path(corpus_dir)
    target = default_packed_dir() / Path(corpus_dir).name
    if not (target / MANIFEST).exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        os.chmod(tmp, DIR_MODE)  # mkdtemp makes it 0700; a shared cache needs the umask
        Store(uri).download("", tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another trial on this node finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return target
