"""The Python API of a whole search: `autoscale_ray.search(config, out=...)` -> SearchResult.

The same function as `autoscale-ray run`; usable in a process that already called `ray.init()` (a
notebook, a Ray job), where the search joins that Ray instead of starting one. The verbs' fits are
importable too: `autoscale_ray.fits` (ddo, project, lr, law, mixlaw, regress) over a runs table.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from autoscale_ray.config import ExperimentConfig
from autoscale_ray.storage import Store
from autoscale_ray.tuning import layout


@dataclass(frozen=True)
class SearchResult:
    """A finished search: its recommendation, and where its runs table and report are."""

    recommendation: dict[str, Any]
    out: str  # the output folder or URI

    @property
    def runs(self) -> pd.DataFrame:
        """Every evaluation of every trial (runs.parquet), read from the output store."""
        return pd.read_parquet(io.BytesIO(Store(self.out).read_bytes(layout.RUNS)))

    @property
    def report_path(self) -> str:
        return Store(self.out).uri(layout.REPORT)

    @classmethod
    def load(cls, out: str | Path) -> "SearchResult":
        """A search finished earlier (by the CLI or this API), from its output folder or URI."""
        store = Store(out)
        return cls(json.loads(store.read_text(layout.RECOMMENDATION)), store.location)


def search(config: str | Path | Mapping[str, Any] | ExperimentConfig, out: str | Path | None = None, *,
           resume: bool = False, restart: bool = False, address: str | None = None,
           dashboard: bool = True) -> SearchResult:
    """Run (or `resume`, or `restart`) the search of `config` (a YAML path, the same mapping, or a
    parsed ExperimentConfig) into `out` (default results/<name>; a folder or s3:// / gs:// URI).

    Raises autoscale_ray.errors.BadInput for bad input (the CLI's exit code 2) and Interrupted when
    stopped by a signal (finished trials kept: call again with resume=True)."""
    from autoscale_ray.pipeline import as_config, run

    cfg = as_config(config)
    run(cfg, out, resume=resume, restart=restart, address=address, dashboard=dashboard)
    # as written (JSON: NaN is null), so a result in hand equals one loaded later
    return SearchResult.load(out if out is not None else Path("results") / cfg.name)
