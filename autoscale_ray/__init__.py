"""autoscale-ray: the data mixture and learning rate of a pretraining run from small proxy runs on
Ray, extrapolated with scaling laws. The layers and the pipeline: docs/architecture.md."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path

_CHECKOUT_SEARCHERS = Path(__file__).resolve().parent.parent / "searchers"


class _CheckoutSearchers(importlib.abc.MetaPathFinder):
    """An install maps the top-level searchers/ folder to `autoscale_ray.searchers` (pyproject's
    package-dir); a checkout run from its root (`ray job submit --working-dir .`, a source tree on
    PYTHONPATH) imports this package from the folder, so the same mapping is made here."""

    def find_spec(self, name: str, path: object = None, target: object = None):
        init = _CHECKOUT_SEARCHERS / "__init__.py"
        if name != "autoscale_ray.searchers" or not init.is_file():
            return None
        return importlib.util.spec_from_file_location(
            name, init, submodule_search_locations=[str(_CHECKOUT_SEARCHERS)])


if not (Path(__file__).resolve().parent / "searchers").is_dir():
    sys.meta_path.insert(0, _CheckoutSearchers())  # the searchers beside this very package


def __getattr__(name: str):
    """`autoscale_ray.search(...)` and `SearchResult`, imported on first use: importing the
    package stays light (no Ray, no torch) for the pure laws and fits."""
    if name in ("search", "SearchResult"):
        from autoscale_ray import api

        return getattr(api, name)
    raise AttributeError(f"module 'autoscale_ray' has no attribute {name!r}")
