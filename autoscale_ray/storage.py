"""A results folder on any pyarrow filesystem: a local path, `s3://bucket/prefix`, `gs://...`.

The search's outputs (runs table, recommendation, report, per-trial markers) go through a `Store`
so the same code writes to a laptop folder or to the object storage a cluster shares. Local writes
are atomic (temp file + rename); an object PUT is atomic by itself, so nothing appears half-written.
S3-compatible endpoints come from `AWS_ENDPOINT_URL` (credentials from the usual AWS chain, never
from configs, so they are never written anywhere).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from autoscale_ray.atomic import atomic_path, json_text
from autoscale_ray.errors import BadInput, redact


# pyarrow >= 21's S3FileSystem(allow_delayed_open=...): writes smaller than a part become one request
_DELAYED_OPEN = int(pa.__version__.split(".")[0]) >= 21


def is_uri(location: str | os.PathLike[str]) -> bool:
    scheme = urlparse(str(location)).scheme
    return len(scheme) > 1  # a one-letter scheme is a Windows drive


def filesystem_for(uri: str, storage_options: Mapping[str, Any] | None = None
                   ) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and the path inside it for a local path or a URI."""
    opts = dict(storage_options or {})
    if not is_uri(uri):
        return pafs.LocalFileSystem(), str(Path(uri).expanduser().absolute())
    parsed = urlparse(uri)
    if "@" in parsed.netloc:  # s3://KEY:SECRET@bucket/...: never take (or echo) credentials from a URI
        raise BadInput(f"`{redact(uri)}` carries credentials", "paths",
                       "remove them from the URI; give credentials through the environment "
                       "(AWS_ACCESS_KEY_ID, ...), an instance role or a service account")
    if parsed.scheme == "s3":
        endpoint = opts.pop("endpoint_override", None) or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            ep = urlparse(endpoint)
            opts.setdefault("scheme", ep.scheme or "https")
            endpoint = ep.netloc or ep.path
        if "region" not in opts and os.environ.get("AWS_DEFAULT_REGION"):
            opts["region"] = os.environ["AWS_DEFAULT_REGION"]
        if _DELAYED_OPEN:
            # a file smaller than one part goes up as one PutObject at close, not a 3-request
            # multipart upload: the search's records, Tune's result files and small checkpoints
            opts.setdefault("allow_delayed_open", True)
        try:
            fs = pafs.S3FileSystem(endpoint_override=endpoint, **opts)
        except TypeError as exc:  # an unknown storage option
            raise BadInput(f"storage option not understood ({str(exc).splitlines()[0][:160]})",
                           "storage_options", "use pyarrow.fs.S3FileSystem's keyword arguments") from None
        return fs, f"{parsed.netloc}{parsed.path}"
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow raises ArrowInvalid / ValueError for unknown schemes
        raise BadInput(f"cannot open `{uri}`: {str(exc).splitlines()[0]}", "paths",
                       "use a local path or a file://, s3:// or gs:// URI") from None
    return fs, path


class Store:
    """A folder (`location`) on a pyarrow filesystem; names are '/'-separated relative paths."""

    def __init__(self, location: str | os.PathLike[str]) -> None:
        self.location = str(location).rstrip("/") if is_uri(location) else str(
            Path(location).expanduser().absolute())
        self.fs, self.path = filesystem_for(self.location)
        self.local = isinstance(self.fs, pafs.LocalFileSystem)

    def __repr__(self) -> str:
        return f"Store({self.location!r})"

    def __reduce__(self):  # ship the location only; each process opens its own filesystem
        return (Store, (self.location,))

    def child(self, name: str) -> "Store":
        return Store(self.uri(name))

    def uri(self, name: str = "") -> str:
        return f"{self.location}/{name}" if name else self.location

    def _full(self, name: str) -> str:
        return f"{self.path}/{name}" if name else self.path

    def write_bytes(self, name: str, data: bytes) -> None:
        if self.local:
            with atomic_path(self._full(name)) as tmp:
                tmp.write_bytes(data)
            return
        with self.fs.open_output_stream(self._full(name)) as f:
            f.write(data)

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode("utf-8"))

    def write_json(self, name: str, obj: Any) -> None:
        self.write_text(name, json_text(obj))

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open_input_stream(self._full(name)) as f:
            return f.read()

    def read_text(self, name: str) -> str:
        return self.read_bytes(name).decode("utf-8")

    def exists(self, name: str = "") -> bool:
        return self.fs.get_file_info(self._full(name)).type != pafs.FileType.NotFound

    def list(self, folder: str = "") -> list[str]:
        """Names of the files directly in `folder` (empty if it does not exist)."""
        selector = pafs.FileSelector(self._full(folder), allow_not_found=True)
        return sorted(i.base_name for i in self.fs.get_file_info(selector)
                      if i.type == pafs.FileType.File)

    def is_empty(self, folder: str = "", ignore: tuple[str, ...] = ()) -> bool:
        """No file or folder under `folder` but the names in `ignore` (true when it does not exist)."""
        selector = pafs.FileSelector(self._full(folder), allow_not_found=True)
        try:
            return all(i.base_name in ignore for i in self.fs.get_file_info(selector))
        except (NotADirectoryError, FileNotFoundError):
            return False

    def delete(self, name: str) -> None:
        """Remove a file or a folder (with its contents); nothing if it does not exist."""
        info = self.fs.get_file_info(self._full(name))
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(self._full(name))
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(self._full(name))

    def add_record(self, folder: str, record: Mapping[str, Any]) -> None:
        """Append-only log as one object per record (object stores cannot append to a file)."""
        self.write_json(f"{folder}/{uuid.uuid4().hex}.json", dict(record))

    def records(self, folder: str) -> list[dict[str, Any]]:
        return [json.loads(self.read_text(f"{folder}/{n}")) for n in self.list(folder)]

    def upload(self, local_dir: str | os.PathLike[str], name: str = "") -> None:
        """Copy a local folder's files under `name` (nothing to do when it is that folder)."""
        src, dest = str(Path(local_dir).absolute()), self._full(name)
        if self.local and Path(dest).exists() and os.path.samefile(src, dest):
            return
        pafs.copy_files(src, dest, source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.fs)

    def download(self, name: str, local_dir: str | os.PathLike[str]) -> None:
        pafs.copy_files(self._full(name), str(Path(local_dir).absolute()), source_filesystem=self.fs,
                        destination_filesystem=pafs.LocalFileSystem())
