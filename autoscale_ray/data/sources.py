"""Domain sources: a name plus paths / globs / URIs in one of four formats, on any pyarrow filesystem.

`resolve_source` turns a `DomainSource` into concrete files (with sizes and modification times, the
identity used by the packing cache) and checks them before any Ray work starts, so that a wrong
path, an empty glob, an unknown format or a missing text column is one clear `BadInput` line.
`autoscale_ray.data.read` then reads the files with Ray Data.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pyarrow.fs as pafs

from autoscale_ray.errors import BadInput
from autoscale_ray.names import check_name
from autoscale_ray.storage import filesystem_for

FORMATS = ("auto", "parquet", "jsonl", "text", "hf")
_EXTENSIONS = {
    ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
    ".txt": "text", ".text": "text", ".md": "text", ".rst": "text",
}
# Files a Parquet/Spark/HF writer leaves beside the data.
_SKIP_PREFIXES = (".", "_")
_HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class DomainSource:
    """One domain of the user's corpus.

    `paths`: local paths, globs (`data/web/*.parquet`, `**` for any depth) or URIs
    (`file://`, `s3://`, `gs://`, anything `pyarrow.fs.FileSystem.from_uri` knows).
    `format`: auto (from the file extension) | parquet | jsonl | text (one document per line) |
    hf (a `datasets` dataset saved with `save_to_disk`, local).
    `storage_options`: extra keyword arguments of the pyarrow filesystem, e.g.
    `{"endpoint_override": "http://127.0.0.1:9000"}` for an S3-compatible store
    (`AWS_ENDPOINT_URL` is honoured too).
    """

    name: str
    paths: tuple[str, ...]
    format: str = "auto"
    text_column: str = "text"
    storage_options: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.paths, (str, os.PathLike)):
            object.__setattr__(self, "paths", (str(self.paths),))
        else:
            object.__setattr__(self, "paths", tuple(str(p) for p in self.paths))


@dataclass(frozen=True)
class ResolvedFile:
    uri: str          # as given to the filesystem (path inside it)
    size: int
    mtime_ns: int
    format: str       # parquet | jsonl | text | hf


@dataclass(frozen=True)
class ResolvedSource:
    source: DomainSource
    filesystem: pafs.FileSystem
    files: tuple[ResolvedFile, ...]

    def identity(self) -> dict[str, Any]:
        """What the packing cache key is made of: the files and their sizes and mtimes."""
        return {"name": self.source.name, "format": self.source.format,
                "text_column": self.source.text_column,
                "filesystem": self.filesystem.type_name,
                "files": [[f.uri, f.size, f.mtime_ns, f.format] for f in self.files]}


def sources_from_config(obj: Any, where: str = "data.domains") -> list[DomainSource]:
    """Parse the `domains` section of a config: {name: {paths: [...], format, text_column,
    storage_options}} (a bare list or string of paths is also accepted as `paths`)."""
    if not isinstance(obj, Mapping) or not obj:
        raise BadInput("`domains` must be a non-empty mapping {domain_name: {paths: [...]}}", where)
    out = []
    for name, spec in obj.items():
        key = f"{where}.{name}"
        if isinstance(spec, (str, list, tuple)):
            spec = {"paths": spec}
        if not isinstance(spec, Mapping):
            raise BadInput("a domain must be a mapping with `paths`", key,
                           "write e.g. {paths: [\"data/web/*.parquet\"]}")
        unknown = set(spec) - {"paths", "format", "text_column", "storage_options"}
        if unknown:
            raise BadInput(f"unknown key(s) {sorted(unknown)}", key,
                           "allowed: paths, format, text_column, storage_options")
        paths = spec.get("paths")
        if isinstance(paths, str):
            paths = [paths]
        if not paths or not all(isinstance(p, str) and p for p in paths):
            raise BadInput("`paths` must be a non-empty list of paths, globs or URIs", f"{key}.paths")
        options = spec.get("storage_options") or {}
        if not isinstance(options, Mapping):
            raise BadInput("`storage_options` must be a mapping of pyarrow filesystem options",
                           f"{key}.storage_options", "write e.g. {endpoint_override: http://host:9000}")
        out.append(DomainSource(str(name), tuple(paths), str(spec.get("format", "auto")),
                                str(spec.get("text_column", "text")),
                                dict(spec.get("storage_options") or {})))
    return out


def check_sources(sources: Sequence[DomainSource]) -> None:
    if not sources:
        raise BadInput("no domains given", "sources", "give at least one DomainSource")
    seen: set[str] = set()
    for s in sources:
        if not isinstance(s, DomainSource):
            raise BadInput(f"expected a DomainSource, got {type(s).__name__}", "sources")
        check_name(s.name, "corpus.domains", "domain")  # it names files and columns
        if s.name in seen:
            raise BadInput(f"domain `{s.name}` is given twice", "sources", "merge its paths into one")
        seen.add(s.name)
        if s.format not in FORMATS:
            raise BadInput(f"unknown format `{s.format}`", f"domain `{s.name}`",
                           f"use one of {', '.join(FORMATS)}")
        if not s.paths:
            raise BadInput("no paths", f"domain `{s.name}`", "give at least one path, glob or URI")


def _format_of(path: str, declared: str, where: str) -> str:
    if declared != "auto":
        return declared
    ext = os.path.splitext(path)[1].lower()
    if ext not in _EXTENSIONS:
        raise BadInput(f"unknown format of `{path}` (extension `{ext or 'none'}`)", where,
                       "set format: parquet | jsonl | text | hf, or use .parquet/.jsonl/.txt files")
    return _EXTENSIONS[ext]


def _is_hf_dir(fs: pafs.FileSystem, path: str) -> bool:
    infos = fs.get_file_info([f"{path.rstrip('/')}/{m}" for m in _HF_MARKERS])
    return any(i.type == pafs.FileType.File for i in infos)


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Shell-style glob: `*`, `?`, `[...]` stay within one folder; `**/` matches any folders."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape("["))
                i += 1
            else:
                body = pattern[i + 1:end]
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _expand(fs: pafs.FileSystem, path: str, where: str) -> list[pafs.FileInfo]:
    """Files named by one path: the file itself, the files under a folder, or a glob's matches."""
    if any(c in path for c in _GLOB_CHARS):
        first = min(path.find(c) for c in _GLOB_CHARS if c in path)
        base = path[:first].rsplit("/", 1)[0] or "/"
        try:
            found = fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        except OSError as exc:
            raise BadInput(f"cannot list `{base}`: {str(exc).splitlines()[0]}", where) from None
        pattern = _glob_regex(path)
        matches = [i for i in found if i.type == pafs.FileType.File
                   and pattern.fullmatch(i.path)
                   and not i.base_name.startswith(_SKIP_PREFIXES)]
        if not matches:
            raise BadInput(f"glob `{path}` matches no file", where,
                           "check the pattern and that the files exist")
        return sorted(matches, key=lambda i: i.path)
    try:
        info = fs.get_file_info(path)
    except (OSError, ValueError) as exc:  # an unreachable or unauthorised store, a malformed path
        raise BadInput(f"cannot read `{path}`: {str(exc).strip().splitlines()[0][:200]}", where,
                       "check the URI, the endpoint and the credentials") from None
    if info.type == pafs.FileType.NotFound:
        raise BadInput(f"path `{path}` does not exist", where, "check the path or URI")
    if info.type == pafs.FileType.File:
        return [info]
    if _is_hf_dir(fs, path):
        return [info]  # the saved dataset as a whole
    found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    files = sorted((i for i in found if i.type == pafs.FileType.File
                    and not any(part.startswith(_SKIP_PREFIXES)
                                for part in i.path[len(path):].split("/") if part)),
                   key=lambda i: i.path)
    if not files:
        raise BadInput(f"folder `{path}` holds no files", where, "point at the data files")
    return files


def resolve_source(source: DomainSource) -> ResolvedSource:
    """Expand paths and globs to files and check them (existence, format, text column)."""
    where = f"domain `{source.name}`"
    fs: pafs.FileSystem | None = None
    files: list[ResolvedFile] = []
    for raw in source.paths:
        fs_i, path = filesystem_for(raw, source.storage_options)
        if fs is None:
            fs = fs_i
        elif fs_i.type_name != fs.type_name:
            raise BadInput(f"`{raw}` is on a different filesystem ({fs_i.type_name}) than the "
                           f"domain's first path ({fs.type_name})", where,
                           "keep one domain's files on one filesystem")
        for info in _expand(fs_i, path, where):
            if info.type == pafs.FileType.Directory:
                fmt = "hf"
                if source.format not in ("auto", "hf"):
                    raise BadInput(f"`{info.path}` is a saved `datasets` dataset, not {source.format}",
                                   where, "set format: hf")
            else:
                fmt = _format_of(info.path, source.format, where)
                if fmt == "hf":
                    raise BadInput(f"`{info.path}` is a file, not a `save_to_disk` folder", where,
                                   "point format hf at the folder the dataset was saved to")
            mtime = int(info.mtime_ns or 0)
            files.append(ResolvedFile(info.path, int(info.size or 0), mtime, fmt))
    assert fs is not None
    if all(f.size == 0 for f in files if f.format != "hf"):
        if not any(f.format == "hf" for f in files):
            raise BadInput("every file is empty", where, "the domain has no text to train on")
    resolved = ResolvedSource(source, fs, tuple(files))
    _check_columns(resolved)
    return resolved


def _check_columns(rs: ResolvedSource) -> None:
    """Every file holds text: a Parquet string column (not all null), JSONL records that each
    carry the text field as a string, UTF-8 text files. JSONL and text files are read through
    once, so a bad line in the middle of a shard is one clear line now, not a failed trial later."""
    where = f"domain `{rs.source.name}`"
    for f in rs.files:
        if f.format == "parquet":
            _check_parquet(rs, f.uri, where)
        elif f.format == "jsonl" and f.size:
            _check_jsonl(rs, f.uri, where)
        elif f.format == "text" and f.size:
            _check_utf8(rs, f.uri, where)
        elif f.format == "hf":
            _check_hf(rs, f.uri)


def _check_parquet(rs: ResolvedSource, uri: str, where: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    col = rs.source.text_column
    try:
        with rs.filesystem.open_input_file(uri) as fh:
            meta = pq.ParquetFile(fh).metadata
            schema = meta.schema.to_arrow_schema()
    except Exception as exc:
        raise BadInput(f"`{uri}` is not a readable Parquet file "
                       f"({str(exc).splitlines()[0][:200]})", where) from None
    if col not in schema.names:
        raise BadInput(f"no column `{col}` in `{uri}` (columns: {', '.join(schema.names[:8])})",
                       where, "set text_column to the column holding the text")
    kind = schema.field(col).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)
            or getattr(pa.types, "is_string_view", lambda _: False)(kind)):
        raise BadInput(f"column `{col}` of `{uri}` holds {kind}, not text", where,
                       "set text_column to a string column")
    index = schema.names.index(col)
    nulls = [meta.row_group(g).column(index).statistics for g in range(meta.num_row_groups)]
    if meta.num_rows and all(st is not None and st.has_null_count for st in nulls) \
            and sum(st.null_count for st in nulls) == meta.num_rows:
        raise BadInput(f"column `{col}` of `{uri}` is empty (every value is null)", where,
                       "point text_column at the column holding the text")


_CHUNK = 1 << 20


def _lines(rs: ResolvedSource, uri: str):
    """(line number, bytes) of a file, read in chunks (a line may be longer than a chunk)."""
    number, rest = 0, b""
    with rs.filesystem.open_input_stream(uri) as fh:
        while True:
            chunk = fh.read(_CHUNK)
            if not chunk:
                break
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            for part in parts:
                number += 1
                yield number, part
    if rest:
        yield number + 1, rest


def _check_jsonl(rs: ResolvedSource, uri: str, where: str) -> None:
    col = rs.source.text_column
    first = True
    for number, line in _lines(rs, uri):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            what = "does not start with a JSON object per line" if first else \
                f"line {number} is not a JSON object"
            raise BadInput(f"`{uri}` {what}", where, "JSONL needs one JSON object per line") from None
        if not isinstance(record, dict) or col not in record:
            keys = ", ".join(list(record)[:8]) if isinstance(record, dict) else type(record).__name__
            which = "the first record" if first else f"line {number}"
            raise BadInput(f"no field `{col}` in {which} of `{uri}` (found: {keys})",
                           where, "set text_column to the field holding the text")
        if not isinstance(record[col], str):
            raise BadInput(f"field `{col}` on line {number} of `{uri}` is "
                           f"{type(record[col]).__name__}, not text", where, "give every record its text")
        first = False


def _check_utf8(rs: ResolvedSource, uri: str, where: str) -> None:
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    with rs.filesystem.open_input_stream(uri) as fh:
        while True:
            chunk = fh.read(_CHUNK)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                raise BadInput(f"`{uri}` is not UTF-8 text (byte {offset + max(exc.start, 0)})", where,
                               "convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8)") from None
            if not chunk:
                return
            offset += len(chunk)


def _check_hf(rs: ResolvedSource, path: str) -> None:
    """A `save_to_disk` folder: local, loadable, with a `train` split if a DatasetDict, with the column."""
    where = f"domain `{rs.source.name}`"
    if not isinstance(rs.filesystem, pafs.LocalFileSystem):
        raise BadInput(f"`{path}`: format hf is read from local folders only", where,
                       "copy the dataset locally or convert it to Parquet")
    import datasets

    try:
        ds = datasets.load_from_disk(path)  # memory-mapped: reads metadata, not the data
    except Exception as exc:
        raise BadInput(f"cannot load `{path}` with datasets.load_from_disk "
                       f"({str(exc).splitlines()[0]})", where) from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise BadInput(f"`{path}` holds splits {list(ds)} but no `train`", where,
                           "point at one split's folder")
        ds = ds["train"]
    col = rs.source.text_column
    if col not in ds.column_names:
        raise BadInput(f"no column `{col}` in `{path}` (columns: {', '.join(ds.column_names[:8])})",
                       where, "set text_column to the column holding the text")
