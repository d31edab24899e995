"""`Store` on a local folder and on an S3-compatible server (moto on loopback), the report verb on
an s3:// output, a node without the packed corpus fetching it from the output store, and the
search lock on S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autoscale_ray.cli import main
from autoscale_ray.storage import Store, is_uri
from data_fixtures import s3_server, s3_upload  # noqa: F401


@pytest.fixture
def s3(s3_server, monkeypatch) -> str:  # noqa: F811
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["endpoint_override"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3_upload(s3_server, "store", "keep", b"")  # creates the bucket
    return "s3://store"


def roundtrip(store: Store) -> None:
    assert not store.exists("a/b.json") and store.list("a") == []
    store.write_json("a/b.json", {"x": np.float32(1.5), "nan": float("nan")})
    assert json.loads(store.read_text("a/b.json")) == {"x": 1.5, "nan": None}
    store.add_record("log", {"key": "k1"})
    store.add_record("log", {"key": "k1"})  # two records of one key stay two (no overwrite)
    assert [r["key"] for r in store.records("log")] == ["k1", "k1"]
    assert store.list("a") == ["b.json"] and store.child("a").exists("b.json")


def test_local_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "out")
    assert store.local and not is_uri(str(tmp_path))
    roundtrip(store)
    assert not list((tmp_path / "out" / "a").glob(".*"))  # no temp file left behind


def test_s3_store_upload_download(s3: str, tmp_path: Path) -> None:
    store = Store(f"{s3}/run1")
    assert not store.local and is_uri(store.location)
    roundtrip(store)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "top.txt").write_text("t")
    (src / "sub" / "deep.bin").write_bytes(b"\x00\x01")
    store.upload(src, "copy")
    assert store.read_text("copy/top.txt") == "t" and store.read_bytes("copy/sub/deep.bin") == b"\x00\x01"
    store.download("copy", tmp_path / "back")
    assert (tmp_path / "back" / "sub" / "deep.bin").read_bytes() == b"\x00\x01"
    # a Store pickles as its location (each Ray process opens its own filesystem, no secrets)
    import pickle
    assert pickle.loads(pickle.dumps(store)).location == store.location
    assert b"testing" not in pickle.dumps(store)


def test_node_without_the_corpus_fetches_it(s3: str, tmp_path: Path, monkeypatch) -> None:
    from autoscale_ray.tuning.trial import local_corpus

    monkeypatch.setenv("AUTOSCALE_RAY_CACHE", str(tmp_path / "node-cache"))
    packed = tmp_path / "driver" / "abc123"
    packed.mkdir(parents=True)
    (packed / "manifest.json").write_text('{"key": "abc123"}')
    (packed / "web.train.bin").write_bytes(bytes(range(256)))
    store = Store(f"{s3}/run2")
    store.upload(packed, "corpus/abc123")
    # the driver's own node: used in place
    assert local_corpus(store.uri("corpus/abc123"), str(packed)) == packed
    # another node (no such folder there): fetched once into its cache, then reused
    elsewhere = str(tmp_path / "not-on-this-node" / "abc123")
    got = local_corpus(store.uri("corpus/abc123"), elsewhere)
    assert got == tmp_path / "node-cache" / "packed" / "abc123"
    assert (got / "web.train.bin").read_bytes() == bytes(range(256))
    assert local_corpus(store.uri("corpus/abc123"), elsewhere) == got
    assert [p.name for p in got.parent.iterdir()] == ["abc123"]  # no temp folder left


def test_report_verb_on_s3(s3: str, tmp_path: Path, capsys) -> None:
    store = Store(f"{s3}/run3")
    assert main(["report", store.location]) == 2
    assert "not a finished search folder" in capsys.readouterr().err


def test_tune_snapshots_of_an_object_store_experiment_are_every_60_s(tmp_path: Path, monkeypatch) -> None:
    """Tune re-uploads its whole experiment folder at each snapshot (10 s by default); on object
    storage a search takes them every 60 s, only while Tuner.fit runs; a local folder and a
    user's own TUNE_GLOBAL_CHECKPOINT_S are left alone."""
    from autoscale_ray.pipeline import SNAPSHOT_ENV, experiment_snapshots

    monkeypatch.delenv(SNAPSHOT_ENV, raising=False)
    remote = Store("s3://bucket/tune")
    with experiment_snapshots(remote):
        assert float(os.environ[SNAPSHOT_ENV]) == 60.0
    assert SNAPSHOT_ENV not in os.environ
    with experiment_snapshots(Store(tmp_path)):
        assert SNAPSHOT_ENV not in os.environ
    monkeypatch.setenv(SNAPSHOT_ENV, "5")
    with experiment_snapshots(remote):
        assert os.environ[SNAPSHOT_ENV] == "5"
    assert os.environ[SNAPSHOT_ENV] == "5"
    monkeypatch.delenv(SNAPSHOT_ENV)
    with pytest.raises(RuntimeError), experiment_snapshots(remote):
        raise RuntimeError("Tuner.fit failed")
    assert SNAPSHOT_ENV not in os.environ  # restored on an error too


def test_a_small_object_is_one_put_not_a_multipart_upload(s3: str, s3_server) -> None:  # noqa: F811
    """Every record the search writes per trial (done/, trained/, progress.json) and Tune's small
    result files go up as one PutObject; a 3-request multipart upload each made S3 searches slower."""
    import boto3

    from autoscale_ray.storage import _DELAYED_OPEN

    if not _DELAYED_OPEN:
        pytest.skip("pyarrow < 21 has no allow_delayed_open")
    store = Store(f"{s3}/puts")
    store.write_json("done/a.json", {"key": "a"})
    store.write_bytes("big.bin", b"x" * (12 << 20))  # over one part: still written whole
    client = boto3.client("s3", endpoint_url=s3_server["endpoint_override"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    # a multipart upload's ETag ends in -<parts>; a single PutObject's is a plain MD5
    assert "-" not in client.head_object(Bucket="store", Key="puts/done/a.json")["ETag"]
    assert json.loads(store.read_text("done/a.json")) == {"key": "a"} and len(store.read_bytes("big.bin")) == 12 << 20


def test_s3_lock_refuses_a_live_holder_and_takes_over_a_dead_one(s3: str) -> None:
    """The lock object of an output on object storage: a live run's refuses (SearchLock and the
    look `run` takes before starting Ray, which writes nothing); one whose process is gone on this
    host is taken over; the holder deletes it on leaving."""
    import socket

    from autoscale_ray.errors import BadInput
    from autoscale_ray.tuning import folder
    from autoscale_ray.tuning.layout import LOCK

    store = Store(f"{s3}/locked")
    folder.check_unlocked(store)
    with folder.SearchLock(store):
        holder = store.read_text(LOCK)
        assert json.loads(holder)["pid"] == os.getpid()  # this process: alive
        for take in (lambda: folder.check_unlocked(store), lambda: folder.SearchLock(store).__enter__()):
            with pytest.raises(BadInput, match=r"another autoscale-ray run is using this folder \(pid \d+ on .*"
                                               r"if no run is active there, delete s3://store/locked/"):
                take()
        assert store.read_text(LOCK) == holder
    assert not store.exists(LOCK)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store.write_json(LOCK, {"host": socket.gethostname(), "pid": int(dead.stdout), "since": 0})
    folder.check_unlocked(store)  # its process is gone: free
    with folder.SearchLock(store):
        assert json.loads(store.read_text(LOCK))["pid"] == os.getpid()
