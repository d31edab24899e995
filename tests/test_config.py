"""The shipped experiment configs are valid, and the config checks what the search needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscale_ray.config import load_config
from autoscale_ray.errors import BadInput

EXPERIMENTS = sorted((Path(__file__).parent.parent / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_shipped_configs_parse(path: Path) -> None:
    cfg = load_config(path)
    s = cfg.search
    assert list(s.probe_budgets) == sorted(s.probe_budgets) and s.target_budget > max(s.probe_budgets)
    assert s.lr_grid or s.lr


def test_paper_setting() -> None:
    cfg = load_config(Path(__file__).parent.parent / "experiments" / "gpt2_large_redpajama.yaml")
    assert len(cfg.corpus.domains) == 7 and cfg.train["model"] == "gpt2-774m"
    assert cfg.search.probe_budgets == (300_000_000, 1_200_000_000)
    assert cfg.search.target_budget == 10_000_000_000


def test_budget_too_small_for_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("corpus: {embedded: true, seq_len: 128}\n"
                    "train: {global_batch_tokens: 65536, eval_count: 8}\n"
                    "search: {probe_budgets: [1.0e5, 2.0e5], target_budget: 1.0e6, lr: 1.0e-3}\n")
    with pytest.raises(BadInput, match="fewer than eval_count"):
        load_config(path)


def _with(tmp_path: Path, extra: str, train: str = "{}") -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"corpus: {{embedded: true}}\ntrain: {train}\n{extra}\n"
                    "search: {probe_budgets: [4.0e5, 8.0e5], target_budget: 4.0e6, lr: 1.0e-3}\n")
    return path


def test_object_storage_path_is_accepted(tmp_path: Path) -> None:
    assert load_config(_with(tmp_path, "storage_path: s3://bucket/runs")).storage_path == "s3://bucket/runs"


@pytest.mark.parametrize("resources, train, gpus", [
    ("{trials_per_gpu: 4}", "{}", 0.25),
    ("{gpus_per_trial: 0.5}", "{}", 0.5),
    ("{gpus_per_trial: 4}", "{model: gpt2-124m, num_workers: 4}", 4.0),
    ("{gpus_per_trial: 1}", "{model: gpt2-124m}", 1.0),
])
def test_gpu_shares(tmp_path: Path, resources: str, train: str, gpus: float) -> None:
    cfg = load_config(_with(tmp_path, f"resources: {resources}", train))
    assert cfg.resources.gpus_per_trial == gpus


@pytest.mark.parametrize("resources, train, message", [
    ("{trials_per_gpu: 2, gpus_per_trial: 0.5}", "{}", "both trials_per_gpu"),
    ("{trials_per_gpu: 2}", "{num_workers: 2}", "packs single-process proxies"),
    ("{trials_per_gpu: 0.5}", "{}", "trials_per_gpu"),
    ("{gpus_per_trial: 1.5}", "{}", "whole GPUs go one per Ray Train worker"),
    ("{gpus_per_trial: 2}", "{num_workers: 4}", "whole GPUs go one per Ray Train worker"),
    ("{gpus_per_trial: 0.5}", "{num_workers: 2}", "cannot be split across 2 Train workers"),
])
def test_impossible_gpu_shares(tmp_path: Path, resources: str, train: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        load_config(_with(tmp_path, f"resources: {resources}", train))


DDO_CONFIG = """corpus: {synthetic: true}
search: {probe_budgets: [1.0e+6, 3.0e+6], target_budget: 1.0e+7, lr: 1.0e-3, ddo: %s}
"""


def test_ddo_surrogate_and_rounds(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(DDO_CONFIG % "{surrogate: transfer, rounds: 2}")
    search = load_config(path).search
    assert (search.surrogate, search.rounds) == ("transfer", 2)
    path.write_text(DDO_CONFIG % "{}")
    assert (load_config(path).search.surrogate, load_config(path).search.rounds) == ("paper", 2)


@pytest.mark.parametrize("ddo, message", [
    ("{surrogate: magic}", "search.ddo.surrogate: surrogate 'magic' is unknown; use paper or transfer"),
    ("{rounds: 0}", "search.rounds: 0"),
    ("{rounds: 1.5}", "search.rounds"),
])
def test_bad_ddo_settings(tmp_path: Path, ddo: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(DDO_CONFIG % ddo)
    with pytest.raises(BadInput, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_config(path)
