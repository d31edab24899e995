"""Reading resolved domains (sources.py) with Ray Data: their documents as datasets with the columns
`text` and `domain` (the domain's index).

Files that share a format, a text column and a filesystem are read together, in ONE read of all of
them, whichever domains they belong to; each row's domain comes from its file (Ray Data's `path`
column). One read per domain joined with `union` took 8x as long on the embedded corpus (4 domains,
one Parquet file each: 9.5-12 s against 1.3-1.7 s on 2 CPUs, Ray 2.60), and its time grows with the
number of domains; one read of many files runs them in parallel anyway. A file two domains list is
read once for each (a second group).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import pyarrow.fs as pafs

from autoscale_ray.data.sources import ResolvedSource

PATH = "path"  # Ray Data's column of each row's file (include_paths=True)


def read_domains(resolved: Sequence[ResolvedSource], *, rows_per_block: int = 2048) -> list[Any]:
    """Ray Datasets with the columns `text` and `domain` (index into `resolved`) that together hold
    every document of every domain once per domain that lists its file."""
    parts = []
    for fmt, column, fs, files in _groups(resolved):
        parts += _read_group(fmt, column, fs, files, rows_per_block)
    return parts


def _groups(resolved: Sequence[ResolvedSource]) -> list[tuple[str, str, pafs.FileSystem, dict[str, int]]]:
    """(format, text column, filesystem, {file: domain}) of the files read together."""
    groups: list[tuple[str, str, pafs.FileSystem, dict[str, int]]] = []
    for i, rs in enumerate(resolved):
        column = rs.source.text_column
        for f in rs.files:
            group = next((g for g in groups if g[0] == f.format and g[1] == column
                          and g[2].equals(rs.filesystem) and f.uri not in g[3]), None)
            if group is None:
                group = (f.format, column, rs.filesystem, {})
                groups.append(group)
            group[3][f.uri] = i
    return groups


def _read_group(fmt: str, column: str, fs: pafs.FileSystem, files: dict[str, int],
                rows_per_block: int) -> list[Any]:
    import ray.data

    if fmt == "hf":  # row ranges of the saved Arrow shards, each read (memory-mapped) in a Ray task
        ranges = [{"file": f, "start": a, "stop": min(a + rows_per_block, n), "domain": d}
                  for uri, d in files.items() for f, n in _hf_shards(uri) for a in range(0, n, rows_per_block)]
        return [ray.data.from_items(ranges).map_batches(
            _read_hf_rows, fn_kwargs={"column": column}, batch_size=1, batch_format="pyarrow")] if ranges else []
    if column == PATH:  # the text column is named like Ray's path column: one read per domain
        by_domain: dict[int, list[str]] = {}
        for uri, d in files.items():
            by_domain.setdefault(d, []).append(uri)
        return [_read(fmt, uris, fs, paths=False).select_columns([column]).map_batches(
                    _label, batch_format="pyarrow", fn_kwargs={"column": column, "domain": d})
                for d, uris in by_domain.items()]
    # the files' paths as resolved (pyarrow's, without a scheme) are what Ray Data reports in `path`
    return [_read(fmt, list(files), fs, paths=True).select_columns([column, PATH]).map_batches(
        _label, batch_format="pyarrow", fn_kwargs={"column": column, "domains": files})]


def _read(fmt: str, uris: list[str], fs: pafs.FileSystem, *, paths: bool) -> Any:
    import ray.data

    if fmt == "parquet":
        return ray.data.read_parquet(uris, filesystem=fs, include_paths=paths)
    if fmt == "jsonl":
        # Arrow's JSON reader reads newline-delimited JSON and takes a filesystem (lines=True does not)
        return ray.data.read_json(uris, filesystem=fs, file_extensions=None, include_paths=paths)
    return ray.data.read_text(uris, filesystem=fs, include_paths=paths)  # column `text`


def _label(batch, column: str, domains: dict[str, int] | None = None, domain: int | None = None):
    """map_batches UDF: `column` as `text`, and each row's domain (from its file, or `domain`)."""
    import numpy as np
    import pyarrow as pa

    if domains is None:
        labels = np.full(batch.num_rows, domain, dtype=np.int32)
    else:
        paths = batch.column(PATH).to_pylist()
        missing = next((p for p in paths if p not in domains), None)
        if missing is not None:
            raise RuntimeError(f"Ray Data read `{missing}`, which no domain lists")
        labels = np.array([domains[p] for p in paths], dtype=np.int32)
    return pa.table({"text": batch.column(column), "domain": labels})


def _hf_shards(path: str) -> list[tuple[str, int]]:
    """(Arrow file, rows) of a `save_to_disk` folder (its `train` split for a DatasetDict)."""
    import pyarrow as pa

    root = Path(path)
    if (root / "dataset_dict.json").is_file():
        root = root / "train"
    state = json.loads((root / "state.json").read_text(encoding="utf-8"))
    shards = []
    for entry in state["_data_files"]:
        file = str(root / entry["filename"])
        with pa.memory_map(file) as mm:  # zero-copy: only the row count is read
            shards.append((file, pa.ipc.open_stream(mm).read_all().num_rows))
    return shards


def _read_hf_rows(batch, column: str):
    """map_batches UDF: rows [start, stop) of an Arrow shard, each range with its `domain` -> a
    table with the columns `text` and `domain`."""
    import numpy as np
    import pyarrow as pa

    tables = []
    for file, start, stop, d in zip(*(batch.column(c).to_pylist() for c in ("file", "start", "stop", "domain"))):
        # the map stays open while the (zero-copy) slice refers to it; Ray copies it out on return
        table = pa.ipc.open_stream(pa.memory_map(file)).read_all()
        text = table.column(column).slice(start, stop - start)
        tables.append(pa.table({"text": text, "domain": np.full(len(text), d, dtype=np.int32)}))
    return pa.concat_tables(tables)
