"""Tokenise and pack each domain once, with Ray Data, into a cached `PackedCorpus`.

Ray Data reads every domain (read_parquet / read_json / read_text / a saved `datasets` dataset;
data/read.py: one read of all the files of a format, the formats in turn), tokenises documents in
`map_batches` and hashes each document's text. The driver streams
the token ids to one scratch file per domain and keeps only a small index (hash, offset, length per
document). Then, per domain:

* documents are ordered by the blake2b hash of their text: stable across runs, machines and file
  orders, and independent of any trial's weights;
* validation takes documents in that order until it holds ceil(val_tokens / seq_len) full sequences
  (a document is wholly validation or wholly training, so the two never overlap);
* the remaining documents, each followed by the end-of-document token, are concatenated and cut into
  sequences of seq_len tokens (the tail shorter than one sequence is dropped and counted).

The result lives in `cache_dir/<key>/`, where the key hashes the files' identities (paths, sizes,
modification times), the tokeniser, seq_len and val_tokens: the same inputs are packed only once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from autoscale_ray.atomic import DIR_MODE, write_json
from autoscale_ray.data.packed import FORMAT_VERSION, MANIFEST, PackedCorpus
from autoscale_ray.data.read import read_domains
from autoscale_ray.data.sources import DomainSource, ResolvedSource, check_sources, resolve_source
from autoscale_ray.data.tokenize import TokenizerSpec, encode, tokenizer_spec
from autoscale_ray.errors import BadInput

log = logging.getLogger("autoscale_ray")

DEFAULT_VAL_TOKENS = 1 << 16
_CHUNK_TOKENS = 1 << 22  # documents are packed in chunks of ~4M tokens: bounded memory


def prepare_corpus(sources: Sequence[DomainSource], cache_dir: str | Path, *, seq_len: int,
                   tokenizer: str = "byte", val_tokens: int = DEFAULT_VAL_TOKENS,
                   num_cpus: int | None = None) -> PackedCorpus:
    """Read, tokenise, split and pack `sources` (cached; see the module docstring).

    `num_cpus` caps the number of concurrent tokenising tasks (default: what Ray Data chooses).
    Starts a local Ray if none is running.
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 2:
        raise BadInput(f"seq_len {seq_len!r} is not an integer >= 2", "seq_len")
    if isinstance(val_tokens, bool) or not isinstance(val_tokens, int) or val_tokens < 1:
        raise BadInput(f"val_tokens {val_tokens!r} is not an integer >= 1", "val_tokens",
                       "every domain needs a held-out validation set")
    if num_cpus is not None and (not isinstance(num_cpus, int) or num_cpus < 1):
        raise BadInput(f"num_cpus {num_cpus!r} is not an integer >= 1", "num_cpus")
    sources = list(sources)
    check_sources(sources)
    spec = tokenizer_spec(tokenizer)
    resolved = [resolve_source(s) for s in sources]
    key = cache_key(resolved, spec, seq_len, val_tokens)
    cache_dir = Path(cache_dir).expanduser()
    root = cache_dir / key
    if (root / MANIFEST).is_file():
        return PackedCorpus.load(root)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache_dir))
    os.chmod(tmp, DIR_MODE)  # mkdtemp makes it 0700; a shared cache needs the umask
    try:
        manifest = _build(resolved, spec, seq_len, val_tokens, num_cpus, tmp, key)
        write_json(tmp / MANIFEST, manifest)
        try:
            os.rename(tmp, root)
        except OSError:  # another process packed the same key first: keep theirs
            if not (root / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return PackedCorpus.load(root)


def cache_key(resolved: Sequence[ResolvedSource], spec: TokenizerSpec, seq_len: int, val_tokens: int) -> str:
    ident = {"format_version": FORMAT_VERSION, "seq_len": seq_len, "val_tokens": val_tokens,
             "tokenizer": [spec.name, spec.sha256, spec.vocab_size],
             "sources": [r.identity() for r in resolved]}
    return hashlib.blake2b(json.dumps(ident, sort_keys=True).encode(), digest_size=10).hexdigest()


def _doc_keys(texts: Sequence[str]) -> np.ndarray:
    return np.fromiter((int.from_bytes(hashlib.blake2b(t.encode("utf-8", errors="replace"),
                                                       digest_size=8).digest(), "little")
                        for t in texts), dtype=np.uint64, count=len(texts))


def _tokenize_block(batch, names: Sequence[str], spec: TokenizerSpec):
    """map_batches UDF: pyarrow batch of `text` and `domain` (data/read.py) -> (domain, key, ids,
    error) per non-empty document.

    Bad input found here travels as the `error` column (an exception raised in a Ray task reaches
    the driver wrapped, and loses its type): the driver turns it into one BadInput line.
    """
    import pyarrow as pa

    texts = batch.column("text").to_pylist()
    domains = batch.column("domain").to_numpy()
    bad = next(((t, d) for t, d in zip(texts, domains) if t is not None and not isinstance(t, str)), None)
    error = None
    if bad is not None:
        error = str(BadInput(f"text value of type {type(bad[0]).__name__}, not a string",
                             f"domain `{names[bad[1]]}`", "point text_column at a string column"))
        texts, domains = [], np.full(1, bad[1], dtype=np.int32)
    kept = [i for i, t in enumerate(texts) if t]
    texts = [texts[i] for i in kept]
    flat, lengths = encode(texts, spec)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    value_type = pa.uint16() if spec.dtype == np.uint16 else pa.int32()
    n = len(texts) if error is None else 1
    if error is not None:
        offsets = np.zeros(2, dtype=np.int64)
    return pa.table({
        "domain": pa.array(np.asarray(domains if error is not None else domains[kept], dtype=np.int32)),
        "key": pa.array(_doc_keys(texts) if error is None else np.zeros(1, dtype=np.uint64)),
        "ids": pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat, type=value_type)),
        "error": pa.array([error] * n, type=pa.string()),
    })


class _DomainSpill:
    """One domain's token ids on disk in arrival order, plus each document's (key, offset, length)."""

    def __init__(self, path: Path, dtype: np.dtype) -> None:
        self.path, self.dtype = path, dtype
        self.fh = open(path, "wb")
        self.n_tokens = 0
        self.keys: list[np.ndarray] = []
        self.offsets: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []

    def add(self, keys: np.ndarray, offsets: np.ndarray, values: np.ndarray) -> None:
        self.fh.write(np.ascontiguousarray(values, dtype=self.dtype).tobytes())
        self.keys.append(keys)
        self.offsets.append(offsets[:-1] - offsets[0] + self.n_tokens)
        self.lengths.append(np.diff(offsets))
        self.n_tokens += len(values)

    def close(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.fh.close()
        return _cat(self.keys, np.uint64), _cat(self.offsets, np.int64), _cat(self.lengths, np.int64)


def _cat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype=dtype)


def _build(resolved: Sequence[ResolvedSource], spec: TokenizerSpec, seq_len: int, val_tokens: int,
           num_cpus: int | None, out: Path, key: str) -> dict[str, Any]:
    import ray.data

    t0 = time.time()
    compute = ray.data.TaskPoolStrategy(size=num_cpus) if num_cpus else None
    names = [r.source.name for r in resolved]
    # one part per format (and text column, filesystem), each one read of all its files; in turn,
    # not joined with `union`, whose cost grows faster than the parts' (data/read.py)
    parts = [ds.map_batches(_tokenize_block, batch_format="pyarrow", compute=compute,
                            fn_kwargs={"names": names, "spec": spec}) for ds in read_domains(resolved)]
    spills = [_DomainSpill(out / f".{i}.tokens", spec.dtype) for i in range(len(resolved))]
    batches = (batch for ds in parts for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None))
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            errors = batch.column("error").drop_null()
            if len(errors):
                raise BadInput(errors[0].as_py())
            ids = batch.column("ids").combine_chunks()
            offsets = ids.offsets.to_numpy()
            values = ids.values.to_numpy()
            domain = batch.column("domain").to_numpy()
            keys = batch.column("key").to_numpy()
            for d in np.unique(domain):
                rows = np.flatnonzero(domain == d)
                if len(rows) == batch.num_rows:  # the usual case: a block holds one domain
                    spills[d].add(keys, offsets, values[offsets[0]:offsets[-1]])
                    continue
                lens = offsets[rows + 1] - offsets[rows]
                sub_off = np.concatenate([[0], np.cumsum(lens)])
                sub_vals = np.concatenate([values[offsets[r]:offsets[r + 1]] for r in rows])
                spills[d].add(keys[rows], sub_off, sub_vals)
    finally:
        index = [s.close() for s in spills]
    (out / "train").mkdir()
    (out / "val").mkdir()
    domains = []
    for r, spill, (keys, offs, lens) in zip(resolved, spills, index):
        raw = np.memmap(spill.path, dtype=spec.dtype, mode="r") if spill.n_tokens else np.empty(0, spec.dtype)
        stats = _split_and_pack(r.source.name, raw, keys, offs, lens, spec, seq_len, val_tokens, out)
        del raw
        spill.path.unlink()
        domains.append({"name": r.source.name,
                        "source": {"paths": list(r.source.paths), "format": r.source.format,
                                   "text_column": r.source.text_column},
                        **stats})
    log.info("packed %d domain(s) into %s in %.1f s", len(domains), out, time.time() - t0)
    return {"format_version": FORMAT_VERSION, "key": key, "seq_len": seq_len, "val_tokens": val_tokens,
            "tokenizer": {"name": spec.name, "sha256": spec.sha256, "vocab_size": spec.vocab_size,
                          "eod_id": spec.eod_id, "pad_id": spec.pad_id, "mask_id": spec.mask_id},
            "dtype": spec.dtype.name, "domains": domains,
            "provenance": {"sources": [r.identity() for r in resolved],
                           "split": "validation = documents in ascending blake2b-64 hash of their "
                                    "text until ceil(val_tokens/seq_len) sequences are full"}}


def _split_and_pack(name: str, raw: np.ndarray, keys: np.ndarray, offs: np.ndarray, lens: np.ndarray,
                    spec: TokenizerSpec, seq_len: int, val_tokens: int, out: Path) -> dict[str, Any]:
    where = f"domain `{name}`"
    if len(keys) == 0:
        raise BadInput("no documents (every text is empty)", where, "the domain has no text to train on")
    total = int(lens.sum() + len(lens))  # + one end-of-document token per document
    if total < seq_len:
        raise BadInput(f"only {total} tokens, fewer than one sequence of {seq_len}", where,
                       "add data or lower seq_len")
    order = np.argsort(keys, kind="stable")
    n_val = math.ceil(val_tokens / seq_len)
    cum = np.cumsum(lens[order] + 1)
    n_val_docs = int(np.searchsorted(cum, n_val * seq_len)) + 1  # first prefix holding n_val sequences
    train_tokens = total - (int(cum[n_val_docs - 1]) if n_val_docs <= len(cum) else total)
    if n_val_docs > len(cum) or train_tokens < seq_len:
        raise BadInput(f"{total} tokens are too few to hold out {n_val * seq_len} validation tokens "
                       f"and keep one training sequence of {seq_len}", where,
                       "add data, or lower val_tokens or seq_len")
    val_docs, train_docs = order[:n_val_docs], order[n_val_docs:]
    n_val_written, _ = _pack(raw, offs[val_docs], lens[val_docs], spec, seq_len,
                             out / "val" / f"{name}.npy", max_sequences=n_val)
    n_train, dropped = _pack(raw, offs[train_docs], lens[train_docs], spec, seq_len,
                             out / "train" / f"{name}.npy")
    return {"documents": int(len(keys)), "tokens": total, "train_documents": int(len(train_docs)),
            "val_documents": int(n_val_docs), "train_sequences": n_train, "val_sequences": n_val_written,
            "dropped_tail_tokens": dropped}


def _pack(raw: np.ndarray, offs: np.ndarray, lens: np.ndarray, spec: TokenizerSpec, seq_len: int,
          path: Path, max_sequences: int | None = None) -> tuple[int, int]:
    """Concatenate documents (each + EOD) and write them as [n, seq_len]; returns (n, dropped tokens)."""
    sizes = lens + 1
    total = int(sizes.sum())
    n = total // seq_len if max_sequences is None else min(max_sequences, total // seq_len)
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=spec.dtype, shape=(n, seq_len))
    flat = mm.reshape(-1)
    cum = np.cumsum(sizes)
    pos, start = 0, 0
    while start < len(sizes) and pos < flat.size:
        stop = max(start + 1, int(np.searchsorted(cum, (cum[start - 1] if start else 0) + _CHUNK_TOKENS)))
        chunk = _concat_docs(raw, offs[start:stop], lens[start:stop], spec.eod_id)
        take = min(len(chunk), flat.size - pos)
        flat[pos:pos + take] = chunk[:take]
        pos += take
        start = stop
    mm.flush()
    del mm
    return n, total - n * seq_len


def _concat_docs(raw: np.ndarray, offs: np.ndarray, lens: np.ndarray, eod: int) -> np.ndarray:
    """raw[o:o+l] + [eod] for each document, concatenated, vectorised."""
    sizes = lens + 1
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    rel = np.arange(int(sizes.sum()), dtype=np.int64) - starts  # position within its document
    is_eod = rel == np.repeat(lens, sizes)
    src = np.repeat(offs, sizes) + rel
    out = np.full(len(rel), eod, dtype=raw.dtype)
    out[~is_eod] = raw[src[~is_eod]]
    return out
