"""The embedded default corpus: real text shipped with the package, the same bytes everywhere.

Four domains of ~3 MB of text each, taken ONCE from a Python installation (see
`autoscale_ray.data.embedded_build`, `autoscale-ray corpus build --from-installation`) and shipped
as one zstd-compressed Parquet shard per domain in `autoscale_ray/data/embedded_corpus/`, with a
`manifest.json` naming every source file and its sha256 and pinning the corpus hash.

| domain   | text                                                        | learnability               |
| -------- | ----------------------------------------------------------- | -------------------------- |
| `stubs`  | type stubs (`.pyi`) of torch, numpy, pandas, ...             | very regular: saturates fast |
| `cpp`    | C/C++ headers shipped by torch, pyarrow, numpy              | regular code, licence banners |
| `python` | the standard library's Python source (tests excluded)       | varied code                |
| `prose`  | docstrings of transformers, torch, scipy, ... (via `ast`)   | English technical prose: keeps improving |

`build_embedded_corpus` materialises the shards into the cache (Parquet per domain, documents in
the shipped order, `domains.json`, `provenance.json`) and never reads the installation, so another
machine, another set of installed packages or a package upgrade trains on the same text.
`corpus_content_hash` (sha256 over the domains' text in order) identifies a corpus's content;
`embedded_corpus_hash()` is the shipped corpus's, equal to the manifest's `corpus_hash`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from autoscale_ray.atomic import write_json, write_text
from autoscale_ray.data.sources import DomainSource
from autoscale_ray.errors import BadInput

log = logging.getLogger("autoscale_ray")

BUILDER_VERSION = 2               # 2: materialised from the shipped shards
BYTES_PER_DOMAIN = 3_000_000      # >= 2 MB per domain, with room for the validation hold-out
MIN_BYTES = 2_000_000
SHIPPED_DIR = Path(__file__).resolve().parent / "embedded_corpus"
MANIFEST = "manifest.json"
HASH_SCHEME = "sha256 corpus v1"  # what corpus_content_hash digests; bump if that changes
_DOCS_PER_PART = 2000
# name -> description; the order is the corpus's (and the hash's)
DOMAINS: dict[str, str] = {
    "stubs": "type stubs (.pyi) of torch, numpy, pandas, scipy, pyarrow, matplotlib, ray, ...",
    "cpp": "C/C++ headers shipped by torch, pyarrow and numpy",
    "python": "Python standard library source (tests excluded)",
    "prose": "docstrings of transformers, torch, scipy, ray and datasets, extracted with ast",
}


def cache_root() -> Path:
    """`$AUTOSCALE_RAY_CACHE`, else `$XDG_CACHE_HOME/autoscale-ray`, else `~/.cache/autoscale-ray`."""
    return Path(os.environ.get("AUTOSCALE_RAY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "autoscale-ray"))


def default_corpus_dir() -> Path:
    """Where `build_embedded_corpus()` writes (a `<key>` folder under it)."""
    return cache_root() / "corpus"


def default_packed_dir() -> Path:
    """A default `cache_dir` for `prepare_corpus` (packed shards, one `<key>` folder per corpus)."""
    return cache_root() / "packed"


def hash_domains(domains: Mapping[str, Sequence[str]]) -> str:
    """sha256 over {domain: documents} in order: per domain its name, document count, then each
    document's UTF-8 length and bytes (lengths make the encoding unambiguous). Hex digest."""
    h = hashlib.sha256(HASH_SCHEME.encode() + b"\0")
    for name, texts in domains.items():
        h.update(name.encode("utf-8") + b"\0" + struct.pack("<Q", len(texts)))
        for t in texts:
            b = t.encode("utf-8")
            h.update(struct.pack("<Q", len(b)))
            h.update(b)
    return h.hexdigest()


def _source_texts(source: DomainSource) -> list[str]:
    """A domain's documents in file order, read with pyarrow (no Ray): parquet, jsonl, text."""
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    from autoscale_ray.data.sources import resolve_source

    rs = resolve_source(source)
    texts: list[str] = []
    for f in rs.files:
        if f.format == "parquet":
            with rs.filesystem.open_input_file(f.uri) as fh:
                texts += pq.read_table(fh, columns=[source.text_column]).column(0).to_pylist()
        elif f.format == "jsonl":
            with rs.filesystem.open_input_stream(f.uri) as fh:
                texts += pajson.read_json(fh).column(source.text_column).to_pylist()
        elif f.format == "text":
            with rs.filesystem.open_input_stream(f.uri) as fh:
                texts += [line for line in fh.read().decode("utf-8").splitlines() if line.strip()]
        else:
            raise BadInput(f"a content hash of format `{f.format}` is not supported", f"domain `{source.name}`",
                           "hash a corpus of parquet, jsonl or text files")
    return texts


def corpus_content_hash(sources_or_root: str | Path | Sequence[DomainSource]) -> str:
    """`hash_domains` of a corpus: a folder with `domains.json` (embedded, synthetic) or
    `DomainSource`s of parquet / jsonl / text files, domains in their given order."""
    sources = (embedded_sources(sources_or_root) if isinstance(sources_or_root, (str, os.PathLike))
               else list(sources_or_root))
    return hash_domains({s.name: _source_texts(s) for s in sources})


def shipped_manifest() -> dict[str, Any]:
    """The shipped `manifest.json` (source files with sha256, versions, pinned `corpus_hash`)."""
    path = SHIPPED_DIR / MANIFEST
    if not path.is_file():
        raise RuntimeError(f"the embedded corpus is missing from the package ({path}); reinstall "
                           "autoscale-ray, or generate it with `autoscale-ray corpus build --from-installation`")
    return json.loads(path.read_text(encoding="utf-8"))


def _shipped_texts() -> tuple[dict[str, Any], dict[str, tuple[list[str], list[str]]]]:
    """The manifest and each domain's (texts, document labels) from the shipped shards, checked
    against the manifest's shard sha256 (a damaged install fails here, not as another mixture)."""
    import pyarrow.parquet as pq

    manifest = shipped_manifest()
    out = {}
    for name, d in manifest["domains"].items():
        shard = SHIPPED_DIR / d["shard"]
        if hashlib.sha256(shard.read_bytes()).hexdigest() != d["shard_sha256"]:
            raise RuntimeError(f"embedded corpus shard {shard} does not match its manifest sha256")
        table = pq.read_table(shard, columns=["text", "source"])
        out[name] = (table.column("text").to_pylist(), table.column("source").to_pylist())
    return manifest, out


@functools.lru_cache(maxsize=1)
def embedded_corpus_hash() -> str:
    """The content hash (`hash_domains`) of the shipped embedded corpus, computed from its shards;
    raises if it differs from the manifest's pinned `corpus_hash`. Record it with a result."""
    manifest, domains = _shipped_texts()
    got = hash_domains({name: texts for name, (texts, _) in domains.items()})
    if got != manifest["corpus_hash"]:
        raise RuntimeError(f"embedded corpus hash {got} differs from the manifest's {manifest['corpus_hash']}")
    return got


def _file_of(label: str, files: Mapping[str, str]) -> str:
    """The source file of a document label: itself (a whole file) or `file:line` (a docstring)."""
    return label if label in files else label.rsplit(":", 1)[0]


def _corpus_key(manifest: Mapping[str, Any]) -> str:
    """The cache folder's name: the builder version and the pinned content hash."""
    return hashlib.blake2b(f"{BUILDER_VERSION}:{manifest['corpus_hash']}".encode(), digest_size=8).hexdigest()


def build_embedded_corpus(out_dir: str | Path | None = None, *, force: bool = False) -> Path:
    """Write the embedded corpus (Parquet per domain, `domains.json`, `provenance.json`) from the
    shipped shards; cached.

    Default folder: `$AUTOSCALE_RAY_CACHE/corpus/<key>` (else `~/.cache/autoscale-ray/corpus/<key>`),
    the key naming the builder and the shipped content hash. Returns the folder;
    `embedded_sources(folder)` gives its `DomainSource`s.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    manifest = shipped_manifest()
    key = _corpus_key(manifest)
    out = Path(out_dir).expanduser() if out_dir is not None else default_corpus_dir() / key
    done = out / "provenance.json"
    if done.is_file() and not force:
        try:
            if json.loads(done.read_text()).get("key") == key:
                return out
        except ValueError:
            pass
    if out.exists() and not out.is_dir():
        raise BadInput("is a file, not a folder", str(out), "give a new or empty folder for --out")
    if out.exists() and any(out.iterdir()) and not (out / "domains.json").is_file():
        raise BadInput("folder exists and is not an embedded corpus", str(out),
                       "choose an empty or new folder for --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot create the folder ({exc.strerror})", str(out),
                       "give a writable folder for --out") from None
    manifest, domains = _shipped_texts()
    content = hash_domains({name: texts for name, (texts, _) in domains.items()})
    if content != manifest["corpus_hash"]:
        raise RuntimeError(f"embedded corpus hash {content} differs from the manifest's {manifest['corpus_hash']}")
    tmp = Path(tempfile.mkdtemp(prefix=".build.", dir=out))
    provenance: dict[str, Any] = {
        "key": key, "builder_version": BUILDER_VERSION, "corpus_hash": content,
        "hash_scheme": HASH_SCHEME, "bytes_per_domain": manifest["bytes_per_domain"],
        "versions": manifest["versions"], "generated_on": manifest.get("platform"),
        "selection": manifest["selection"], "domains": {}}
    try:
        for name, (texts, labels) in domains.items():
            d = manifest["domains"][name]
            (tmp / name).mkdir()
            for part, a in enumerate(range(0, len(texts), _DOCS_PER_PART)):
                table = pa.table({"text": texts[a:a + _DOCS_PER_PART], "source": labels[a:a + _DOCS_PER_PART]})
                pq.write_table(table, tmp / name / f"part-{part:05d}.parquet")
            sha = {label: s for label, _, s in d["files"]}
            provenance["domains"][name] = {
                "description": d["description"], "documents": len(texts), "bytes": d["bytes"],
                "text_sha256": d["text_sha256"],
                # one entry per document: its label, its bytes, the sha256 of its source file
                "files": [[lab, len(t.encode("utf-8")), sha[_file_of(lab, sha)]]
                          for lab, t in zip(labels, texts)]}
        for name in domains:
            shutil.rmtree(out / name, ignore_errors=True)
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_json(out / "domains.json", {name: {"paths": [name], "format": "parquet", "text_column": "text"}
                                      for name in domains})
    write_text(out / "README.txt",
               "autoscale-ray embedded corpus: real text shipped with the package, one folder of "
               "Parquet files (column `text`) per domain. provenance.json lists every source file "
               f"and its sha256; content hash {content}.\n")
    write_json(done, provenance)  # last: its presence with this key marks a complete corpus
    log.info("embedded corpus built in %s", out)
    return out


def embedded_sources(corpus_dir: str | Path | None = None) -> list[DomainSource]:
    """The `DomainSource`s of a corpus folder written by `build_embedded_corpus` or
    `synthetic_corpus` (its `domains.json`); builds the default embedded corpus when None."""
    root = Path(corpus_dir).expanduser() if corpus_dir is not None else build_embedded_corpus()
    spec_path = root / "domains.json"
    if not spec_path.is_file():
        raise BadInput("no domains.json here", str(root), "build it with `autoscale-ray corpus build`")
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    return [DomainSource(name, tuple(str(root / p) for p in d["paths"]), d.get("format", "auto"),
                         d.get("text_column", "text")) for name, d in spec.items()]


def describe_embedded_corpus(out: str | Path | None = None, *, force: bool = False) -> dict[str, Any]:
    """Build (or find cached) the embedded corpus; returns its folder, key, content hash and
    per-domain sizes."""
    root = build_embedded_corpus(out, force=force)
    prov = json.loads((root / "provenance.json").read_text(encoding="utf-8"))
    return {"path": str(root), "key": prov["key"], "hash": prov["corpus_hash"],
            "domains": {name: {"documents": d["documents"], "bytes": d["bytes"],
                               "description": d["description"]}
                        for name, d in prov["domains"].items()}}
