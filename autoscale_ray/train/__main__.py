"""`python -m autoscale_ray.train CORPUS_DIR [--set key=value ...]`: train one proxy, print its rows.

Runs in this process (`--workers 0`, default) or on Ray Train (`--workers N`); one JSON row per
evaluation on stdout. Bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any, Sequence

import yaml

from autoscale_ray.errors import BadInput
from autoscale_ray.formatting import jsonable


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autoscale_ray.train", description=__doc__)
    parser.add_argument("corpus_dir", help="folder of a packed corpus")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a TrainConfig field (YAML value), e.g. --set model=gpt2-tiny")
    parser.add_argument("--run-id", default="proxy")
    parser.add_argument("--storage-path", default=None, help="Ray Train storage (workers >= 1)")
    args = parser.parse_args(argv)
    try:
        rows = run(args.corpus_dir, _parse_sets(args.set), args.run_id, args.storage_path)
    except BadInput as exc:
        print(f"autoscale-ray train: error: {exc}", file=sys.stderr)
        return 2
    for row in rows:
        print(json.dumps(jsonable(row)))
    return 0


def run(corpus_dir: str, values: dict[str, Any], run_id: str, storage_path: str | None) -> list[dict[str, Any]]:
    from autoscale_ray.data import PackedCorpus
    from autoscale_ray.train.config import TrainConfig
    from autoscale_ray.train.models import check_model_name
    from autoscale_ray.train.proxy import train_in_process

    cfg = TrainConfig.from_mapping({"num_workers": 0, **values}, "--set")
    check_model_name(cfg.model)
    if cfg.num_workers == 0:
        rows: list[dict[str, Any]] = []
        train_in_process(cfg, PackedCorpus.load(corpus_dir), run_id=run_id,
                         report=lambda row, save: rows.append(row))
        return rows
    from autoscale_ray.train.job import ProxyJob
    from autoscale_ray.train.runner import fit_proxy

    job = ProxyJob(cfg, corpus_dir, run_id)
    if storage_path:
        job = dataclasses.replace(job, storage_path=storage_path)
    result = fit_proxy(job)
    if result.error:
        raise result.error
    return list(result.return_value or [])


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        values[key.strip()] = yaml.safe_load(text)
    return values


if __name__ == "__main__":
    sys.exit(main())
