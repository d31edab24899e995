"""Helpers for the data tests: small documents in every supported format, Ray, an S3 server; and the
`cli` fixture (the command in the test's process)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest


def documents(n: int, seed: int, words: int = 60, prefix: str = "") -> list[str]:
    """n distinct one-line documents of random lowercase words (ASCII, no newlines)."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return [prefix + f"doc{seed}-{i} " + " ".join("".join(rng.choice(letters, rng.integers(2, 9)))
                                                 for _ in range(int(rng.integers(words // 2, words * 2))))
            for i in range(n)]


def write_parquet(path: Path, docs: list[str], column: str = "text") -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({column: docs, "n": list(range(len(docs)))}), path)
    return path


def write_jsonl(path: Path, docs: list[str], column: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({column: d, "meta": i}) + "\n" for i, d in enumerate(docs)))
    return path


def write_text(path: Path, docs: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(docs) + "\n")
    return path


def write_hf(path: Path, docs: list[str], column: str = "text") -> Path:
    import datasets

    datasets.Dataset.from_dict({column: docs, "n": list(range(len(docs)))}).save_to_disk(str(path))
    return path


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    os.environ["RAY_DATA_DISABLE_PROGRESS_BARS"] = "1"
    import ray

    started = not ray.is_initialized()  # reuse a Ray that another fixture started
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    yield
    if started:
        ray.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[dict]:
    """An S3-compatible server on loopback (moto); yields the storage_options to reach it."""
    pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield {"endpoint_override": f"http://127.0.0.1:{port}", "access_key": "testing",
               "secret_key": "testing", "region": "us-east-1"}
    finally:
        server.stop()


def s3_upload(options: dict, bucket: str, key: str, data: bytes) -> str:
    import boto3

    client = boto3.client("s3", endpoint_url=options["endpoint_override"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    try:
        client.create_bucket(Bucket=bucket)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    client.put_object(Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}/{key}"


def split_documents(seqs: np.ndarray, eod: int) -> list[bytes]:
    """Byte documents of packed sequences, split at EOD (the last, unterminated piece dropped)."""
    flat = np.asarray(seqs).reshape(-1)
    ends = np.flatnonzero(flat == eod)
    out, start = [], 0
    for e in ends:
        out.append(bytes(flat[start:e].astype(np.uint8)))
        start = e + 1
    return out


def ray_running() -> bool:
    ray = sys.modules.get("ray")  # never imported: not running
    return ray is not None and ray.is_initialized()


@pytest.fixture
def cli(monkeypatch, capsys):
    """`autoscale-ray ARGS...` in this process (autoscale_ray.cli.main): returns (exit code,
    stdout, stderr). A search starts Ray here, as the command does in its own process; a Ray the
    test started is shut down after it, so later tests find none running (their refusals check
    that none was started). A Ray that was already running (`ray_local`) is joined and kept."""
    from autoscale_ray.cli import main

    already = ray_running()
    monkeypatch.setenv("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    if not already and ray_running():
        sys.modules["ray"].shutdown()
