"""The Tune trainable of a search: one searcher suggestion -> one proxy run (or a replay of a run
that finished before a restart), with the packed corpus fetched once by nodes that lack it."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from autoscale_ray import chaos
from autoscale_ray.atomic import DIR_MODE
from autoscale_ray.storage import Store


def search_trial(config: dict[str, Any]) -> None:
    """Tune trainable: the searcher's suggestion (key, stage, budget, weights, lr, seed) merged into
    the constant trial options, run as one proxy (`run_proxy_trial`). Markers and ledgers go to
    the output store, which every node of a cluster sees (object storage or a shared mount).
    A trial already recorded in `done/` is never issued: the searcher replays it (--resume)."""
    import ray

    from autoscale_ray.train.trainable import run_proxy_trial

    trial = dict(config["trial"])
    out = Store(trial.pop("out"))
    if chaos.should_fail(config["key"]):  # fault-tolerance tests only; each attempt is logged
        out.add_record("injected_failures", {"key": config["key"], "time": time.time()})
        raise RuntimeError(f"injected failure of trial {config['key']} ({chaos.FAIL_KEYS_ENV})")
    if "corpus_uri" in trial:  # a node that did not pack the corpus fetches it once
        trial["corpus_dir"] = str(local_corpus(trial.pop("corpus_uri"), trial["corpus_dir"]))
    trial.update(budget_tokens=int(config["budget"]), weights=dict(config["weights"]),
                 lr=float(config["lr"]), seed=int(config["seed"]), stage=config["stage"],
                 run_id=config["key"].replace("/", "_"),
                 meta={"key": config["key"], "probe": config.get("probe"),
                       "node": ray.get_runtime_context().get_node_id()})
    run_proxy_trial(trial)
    out.add_record("trained", {"key": config["key"], "finished": time.time()})


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
