"""Generate the shipped embedded corpus ONCE from an installation: `autoscale-ray corpus build
--from-installation` (maintainers only; users never run it).

Four domains, each taken from the Python installation and the package's dependencies, which differ
in how fast a small model learns them (the table is in `autoscale_ray.data.embedded`).

Files are chosen deterministically: every candidate file, in the order of the blake2b hash of its
path relative to its root (a fixed pseudo-random order that spreads the choice across packages and
folders), is taken whole until the domain holds `BYTES_PER_DOMAIN` bytes. The result is one
zstd-compressed Parquet shard per domain (columns `text`, `source`, documents in that order) and
`manifest.json`: every source file with its size and sha256, the versions read, each domain's
text hash and the corpus hash (`corpus_hash`). `build_embedded_corpus` reads only these shards, so
every machine trains on the same bytes whatever is installed there.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import inspect
import os
import platform
import sysconfig
from pathlib import Path
from typing import Any, Callable, Iterator

from autoscale_ray.atomic import atomic_path, write_json
from autoscale_ray.data.embedded import (BUILDER_VERSION, BYTES_PER_DOMAIN, DOMAINS, MANIFEST,
                                         MIN_BYTES, SHIPPED_DIR, hash_domains)
from autoscale_ray.errors import BadInput

_MAX_FILE_BYTES = 450_000         # one huge generated file must not make up a domain
_MIN_DOC_BYTES = 200
_STDLIB_EXCLUDE = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__",
                   "_bundled", "turtledemo"}
_ZSTD_LEVEL = 19                  # level 22 saves < 0.2% more and is slower


def _package_dirs(names: tuple[str, ...], sub: str = "") -> list[tuple[str, Path]]:
    out = []
    for name in names:
        spec = importlib.util.find_spec(name)
        for loc in (spec.submodule_search_locations or []) if spec else []:
            p = Path(loc) / sub if sub else Path(loc)
            if p.is_dir():
                out.append((name + (f"/{sub}" if sub else ""), p))
    return out


def _files(roots: list[tuple[str, Path]], suffixes: tuple[str, ...],
           exclude: frozenset[str] | set[str] = frozenset()) -> list[tuple[str, Path]]:
    """(label/relative path, path) of every candidate file, in blake2b order of the label."""
    found = []
    for label, root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in exclude and not d.startswith("."))
            for f in sorted(filenames):
                if f.endswith(suffixes):
                    p = Path(dirpath) / f
                    found.append((f"{label}/{p.relative_to(root).as_posix()}", p))
    return sorted(found, key=lambda t: (hashlib.blake2b(t[0].encode(), digest_size=8).digest(), t[0]))


# A document: (label, source file label, the file's bytes, text).
Doc = tuple[str, str, bytes, str]


def _whole_files(roots: list[tuple[str, Path]], suffixes: tuple[str, ...],
                 exclude: frozenset[str] | set[str] = frozenset()) -> Iterator[Doc]:
    for label, path in _files(roots, suffixes, exclude):
        try:
            size = path.stat().st_size
            if _MIN_DOC_BYTES <= size <= _MAX_FILE_BYTES:
                raw = path.read_bytes()
                yield label, label, raw, raw.decode("utf-8", errors="replace")
        except OSError:
            continue


def _docstrings(roots: list[tuple[str, Path]]) -> Iterator[Doc]:
    """Each docstring (module, class, function) of >= _MIN_DOC_BYTES characters is a document."""
    for label, path in _files(roots, (".py",), {"__pycache__", "tests", "test"}):
        try:
            if path.stat().st_size > 2_000_000:
                continue
            raw = path.read_bytes()
            tree = ast.parse(raw, filename=str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        nodes = [tree] + [n for n in ast.walk(tree)
                          if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        for node in nodes:
            doc = ast.get_docstring(node, clean=False)
            if doc and len(doc) >= _MIN_DOC_BYTES:
                yield f"{label}:{getattr(node, 'lineno', 1)}", label, raw, inspect.cleandoc(doc)


def _stdlib_root() -> list[tuple[str, Path]]:
    return [("stdlib", Path(sysconfig.get_paths()["stdlib"]))]


_STUB_PACKAGES = ("torch", "numpy", "pandas", "scipy", "pyarrow", "matplotlib", "tokenizers", "ray",
                  "transformers")
_PROSE_PACKAGES = ("transformers", "torch", "scipy", "ray", "datasets")
# name -> (packages read, document generator); the names and order are DOMAINS's
READERS: dict[str, tuple[tuple[str, ...], Callable[[], Iterator[Doc]]]] = {
    "stubs": (_STUB_PACKAGES, lambda: _whole_files(_package_dirs(_STUB_PACKAGES), (".pyi",), {"__pycache__"})),
    "cpp": (("torch", "pyarrow", "numpy"),
            lambda: _whole_files(_package_dirs(("torch",), "include") + _package_dirs(("pyarrow",), "include")
                                 + _package_dirs(("numpy",), "_core/include"), (".h", ".hpp", ".cuh"))),
    "python": ((), lambda: _whole_files(_stdlib_root(), (".py",), _STDLIB_EXCLUDE)),
    "prose": (_PROSE_PACKAGES, lambda: _docstrings(_package_dirs(_PROSE_PACKAGES))),
}
assert list(READERS) == list(DOMAINS)


def _versions(packages: set[str]) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in sorted(packages):
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = "missing"
    return out


def collect_domain(name: str) -> tuple[list[str], list[str], dict[str, list[Any]]]:
    """(texts, document labels, {source file: [bytes, sha256]}) of one domain from this installation."""
    texts: list[str] = []
    labels: list[str] = []
    files: dict[str, list[Any]] = {}
    used = 0
    for label, file_label, raw, text in READERS[name][1]():
        texts.append(text)
        labels.append(label)
        if file_label not in files:
            files[file_label] = [len(raw), hashlib.sha256(raw).hexdigest()]
        used += len(text.encode("utf-8"))
        if used >= BYTES_PER_DOMAIN:
            break
    if used < MIN_BYTES:
        raise RuntimeError(f"embedded corpus: domain `{name}` found only {used} bytes of text "
                           f"in this installation (needs {MIN_BYTES})")
    return texts, labels, files


def build_from_installation(out_dir: str | Path | None = None) -> dict[str, Any]:
    """Write the shipped shards (`<domain>.parquet`, zstd) and `manifest.json` into `out_dir`
    (default: the package's `embedded_corpus/` folder) from this installation; returns the manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir).expanduser() if out_dir is not None else SHIPPED_DIR
    if out.exists() and not out.is_dir():
        raise BadInput("is a file, not a folder", str(out), "give a new or empty folder for --out")
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "builder_version": BUILDER_VERSION, "bytes_per_domain": BYTES_PER_DOMAIN,
        "platform": platform.platform(),
        "versions": _versions({p for pk, _ in READERS.values() for p in pk}),
        "selection": "whole files (or docstrings) in blake2b order of their relative path until the "
                     "byte cap", "domains": {}}
    domains: dict[str, list[str]] = {}
    for name, description in DOMAINS.items():
        texts, labels, files = collect_domain(name)
        domains[name] = texts
        shard = out / f"{name}.parquet"
        with atomic_path(shard) as tmp:
            # no dictionary (documents are distinct), one row group: the best zstd ratio
            pq.write_table(pa.table({"text": texts, "source": labels}), tmp, compression="zstd",
                           compression_level=_ZSTD_LEVEL, use_dictionary=False,
                           row_group_size=len(texts), data_page_size=1 << 20)
        manifest["domains"][name] = {
            "description": description, "shard": shard.name, "documents": len(texts),
            "bytes": sum(len(t.encode("utf-8")) for t in texts),
            "text_sha256": hash_domains({name: texts}),
            "shard_sha256": hashlib.sha256(shard.read_bytes()).hexdigest(),
            "files": [[label, size, sha] for label, (size, sha) in files.items()]}
    manifest["corpus_hash"] = hash_domains(domains)
    write_json(out / MANIFEST, manifest)
    return manifest
