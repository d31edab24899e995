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


def test_object_storage_path_is_refused_until_supported(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("storage_path: s3://bucket/runs\ncorpus: {embedded: true}\n"
                    "search: {probe_budgets: [1.0e5, 2.0e5], target_budget: 1.0e6, lr: 1.0e-3}\n")
    with pytest.raises(BadInput, match="storage_path.*not supported yet"):
        load_config(path)
