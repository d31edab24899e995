"""Trial packing: what each trial reserves for its GPU settings, and Ray actually packing fractional
trials onto one GPU. Ray's GPUs here are logical (`ray.init(num_gpus=1)` on a CPU machine): the
scheduler honours them exactly as on a GPU node, which is what packing is about."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from autoscale_ray.config import load_config
from autoscale_ray.tuning.contract import build_contract, trial_resources
from autoscale_ray.tuning.trial import proxy_job
from autoscale_ray.storage import Store
from helpers import experiment_config, write_config


def cfg_with(tmp: Path, resources: dict, train: dict | None = None):
    """The small config with no name, no corpus cache or val_tokens, no eval_batches or verify_probe,
    these resources and train keys."""
    obj = experiment_config(None, None, drop=("corpus.val_tokens", "train.eval_batches", "search.verify_probe",
                                              "resources"), train=train or {}, resources=resources)
    return load_config(write_config(tmp / "c.yaml", obj))


SUGGESTION = {"key": "ddo/1.2e+04/base", "stage": "ddo", "budget": 12000, "weights": {"a": 1.0},
              "lr": 3e-3, "seed": 0, "probe": 12000}


def test_fractions_train_in_the_trial_whole_gpus_on_train_workers(tmp_path: Path) -> None:
    store = Store(tmp_path / "out")
    packed = cfg_with(tmp_path, {"trials_per_gpu": 4, "cpus_per_trial": 0.5})
    assert trial_resources(packed) == {"cpu": 0.5, "gpu": 0.25}
    contract = build_contract(packed, tmp_path / "corpus", store)
    assert contract.in_process and contract.use_gpu and contract.resources == {"cpu": 0.5, "gpu": 0.25}
    job = proxy_job(contract, SUGGESTION, node="n1")
    assert job.in_process and job.train.use_gpu and job.train.budget_tokens == 12000
    assert job.run_id == "ddo_1.2e+04_base" and job.extras["node"] == "n1"
    assert job.storage_path == store.uri("train") and contract.corpus_uri is None  # local: no upload
    # a 124M proxy on 2 whole GPUs: two DDP workers reserve one GPU each; the trial only its CPU
    big = cfg_with(tmp_path, {"gpus_per_trial": 2, "cpus_per_trial": 1},
                   {"model": "gpt2-124m", "num_workers": 2, "micro_batch": 8})
    assert trial_resources(big) == {"cpu": 1.0}
    contract = build_contract(big, tmp_path / "corpus", store)
    job = proxy_job(contract, SUGGESTION)
    assert not job.in_process and job.on_ray_train and job.gpus_per_worker == 1.0
    assert job.train.num_workers == 2
    cpu = cfg_with(tmp_path, {"cpus_per_trial": 1})
    contract = build_contract(cpu, tmp_path, store)
    assert trial_resources(cpu) == {"cpu": 1.0} and contract.in_process and not contract.use_gpu
    assert contract == type(contract).from_config(contract.to_config())  # survives Tune's param_space


def overlaps(rows: list[dict]) -> int:
    """The largest number of trials running at one instant."""
    events = sorted([(r["began"], 1) for r in rows] + [(r["ended"], -1) for r in rows])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


@pytest.mark.slow
@pytest.mark.parametrize("per_gpu, expected_peak", [(4, 4), (1, 1)])
def test_ray_packs_fractional_trials_on_one_gpu(tmp_path: Path, per_gpu: int, expected_peak: int) -> None:
    import ray
    from ray import tune

    started = tmp_path / "started"
    started.mkdir()

    def record(config: dict) -> None:  # defined here so Ray pickles it by value
        began = time.time()
        (started / str(config["i"])).touch()
        # hold the slot until all 4 trials run (packed), or, one by one, until Ray's own view of
        # the cluster shows this trial holding the whole GPU (then no other trial can start
        # beside it), at most 10 s: a loaded machine that starts trial actors slowly cannot
        # make packed trials look sequential
        while True:
            whole = config["per_gpu"] == 1 and ray.available_resources().get("GPU", 0.0) == 0.0
            if whole or len(list(started.iterdir())) == 4 or time.time() - began > 10.0:
                break
            time.sleep(0.1)
        time.sleep(0.5)
        tune.report({"began": began, "ended": time.time(), "whole": whole,
                     "gpu": ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0)})

    cfg = cfg_with(tmp_path, {"trials_per_gpu": per_gpu, "cpus_per_trial": 0.25, "max_concurrent_trials": 4})
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        grid = tune.Tuner(tune.with_resources(record, trial_resources(cfg)),
                          param_space={"i": tune.grid_search(list(range(4))), "per_gpu": per_gpu},
                          tune_config=tune.TuneConfig(max_concurrent_trials=4),
                          run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), verbose=0)).fit()
    finally:
        ray.shutdown()
    rows = [r.metrics for r in grid]
    assert len(rows) == 4 and all(r["gpu"] == pytest.approx(1 / per_gpu) for r in rows)
    assert overlaps(rows) == expected_peak  # 4 trials share the GPU at once, or run one by one
    if per_gpu == 1:
        assert all(r["whole"] for r in rows)  # one by one: each held all of it
