"""The embedded default corpus: real text that exists wherever autoscale-ray is installed.

Four domains, each taken from the Python installation and the package's own dependencies, so
`autoscale-ray corpus build` needs no network. They differ in how fast a small model learns them:

| domain   | text                                                        | learnability               |
| -------- | ----------------------------------------------------------- | -------------------------- |
| `stubs`  | type stubs (`.pyi`) of torch, numpy, pandas, ...             | very regular: saturates fast |
| `cpp`    | C/C++ headers shipped by torch, pyarrow, numpy              | regular code, licence banners |
| `python` | the standard library's Python source (tests excluded)       | varied code                |
| `prose`  | docstrings of transformers, torch, scipy, ... (via `ast`)   | English technical prose: keeps improving |

Files are chosen deterministically: every candidate file, in the order of the blake2b hash of its
path relative to its root (a fixed pseudo-random order that spreads the choice across packages and
folders), is taken whole until the domain holds `BYTES_PER_DOMAIN` bytes. `provenance.json` lists
every file used, its size, and the versions of Python and of the packages read.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from autoscale_ray.atomic import write_json, write_text
from autoscale_ray.data.sources import DomainSource
from autoscale_ray.errors import BadInput

log = logging.getLogger("autoscale_ray")

BUILDER_VERSION = 1
BYTES_PER_DOMAIN = 3_000_000      # >= 2 MB per domain, with room for the validation hold-out
MIN_BYTES = 2_000_000
_MAX_FILE_BYTES = 450_000         # one huge generated file must not make up a domain
_MIN_DOC_BYTES = 200
_DOCS_PER_PART = 2000
_STDLIB_EXCLUDE = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__",
                   "_bundled", "turtledemo"}


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
           exclude: set[str] = frozenset()) -> list[tuple[str, Path]]:
    """(label/relative path, path) of every candidate file, in blake2b order of the label."""
    found = []
    for label, root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in exclude and not d.startswith("."))
            for f in filenames:
                if f.endswith(suffixes):
                    p = Path(dirpath) / f
                    found.append((f"{label}/{p.relative_to(root).as_posix()}", p))
    return sorted(found, key=lambda t: (hashlib.blake2b(t[0].encode(), digest_size=8).digest(), t[0]))


def _whole_files(roots, suffixes, exclude=frozenset()) -> Iterator[tuple[str, str]]:
    for label, path in _files(roots, suffixes, exclude):
        try:
            size = path.stat().st_size
            if _MIN_DOC_BYTES <= size <= _MAX_FILE_BYTES:
                yield label, path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            continue


def _docstrings(roots) -> Iterator[tuple[str, str]]:
    """Each docstring (module, class, function) of >= _MIN_DOC_BYTES characters is a document."""
    for label, path in _files(roots, (".py",), {"__pycache__", "tests", "test"}):
        try:
            if path.stat().st_size > 2_000_000:
                continue
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        nodes = [tree] + [n for n in ast.walk(tree)
                          if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        for node in nodes:
            doc = ast.get_docstring(node, clean=False)
            if doc and len(doc) >= _MIN_DOC_BYTES:
                yield f"{label}:{getattr(node, 'lineno', 1)}", inspect.cleandoc(doc)


def _stdlib_root() -> list[tuple[str, Path]]:
    return [("stdlib", Path(sysconfig.get_paths()["stdlib"]))]


_STUB_PACKAGES = ("torch", "numpy", "pandas", "scipy", "pyarrow", "matplotlib", "tokenizers", "ray",
                  "transformers")
# name -> (description, packages read, document generator)
DOMAINS: dict[str, tuple[str, tuple[str, ...], Callable[[], Iterator[tuple[str, str]]]]] = {
    "stubs": ("type stubs (.pyi) of the installed dependencies", _STUB_PACKAGES,
              lambda: _whole_files(_package_dirs(_STUB_PACKAGES), (".pyi",), {"__pycache__"})),
    "cpp": ("C/C++ headers shipped by torch, pyarrow and numpy", ("torch", "pyarrow", "numpy"),
            lambda: _whole_files(_package_dirs(("torch",), "include") + _package_dirs(("pyarrow",), "include")
                                 + _package_dirs(("numpy",), "_core/include"), (".h", ".hpp", ".cuh"))),
    "python": ("Python standard library source (tests excluded)", (),
               lambda: _whole_files(_stdlib_root(), (".py",), _STDLIB_EXCLUDE)),
    "prose": ("docstrings of transformers, torch, scipy, ray and datasets, extracted with ast",
              ("transformers", "torch", "scipy", "ray", "datasets"),
              lambda: _docstrings(_package_dirs(("transformers", "torch", "scipy", "ray", "datasets")))),
}


def _versions(packages: set[str]) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in sorted(packages):
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = "missing"
    return out


def _corpus_key() -> str:
    """Identity of what would be read: builder version, Python and package versions."""
    ident = {"builder": BUILDER_VERSION, "bytes": BYTES_PER_DOMAIN, "platform": sys.platform,
             "versions": _versions({p for _, pk, _ in DOMAINS.values() for p in pk}),
             "stdlib": sysconfig.get_paths()["stdlib"]}
    return hashlib.blake2b(json.dumps(ident, sort_keys=True).encode(), digest_size=8).hexdigest()


def build_embedded_corpus(out_dir: str | Path | None = None, *, force: bool = False) -> Path:
    """Write the embedded corpus (Parquet per domain, `domains.json`, `provenance.json`); cached.

    Default folder: `$AUTOSCALE_RAY_CACHE/corpus/<key>` (else `~/.cache/autoscale-ray/corpus/<key>`),
    where the key names the builder and the installed versions, so an upgrade rebuilds it.
    Returns the folder; `embedded_sources(folder)` gives its `DomainSource`s.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    key = _corpus_key()
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
    tmp = Path(tempfile.mkdtemp(prefix=".build.", dir=out))
    provenance = {"key": key, "builder_version": BUILDER_VERSION, "bytes_per_domain": BYTES_PER_DOMAIN,
                  "versions": _versions({p for _, pk, _ in DOMAINS.values() for p in pk}),
                  "selection": "whole files (or docstrings) in blake2b order of their relative path "
                               "until the byte cap", "domains": {}}
    try:
        for name, (description, _, docs) in DOMAINS.items():
            texts, labels, used = [], [], 0
            for label, text in docs():
                texts.append(text)
                labels.append(label)
                used += len(text.encode("utf-8"))
                if used >= BYTES_PER_DOMAIN:
                    break
            if used < MIN_BYTES:
                raise RuntimeError(f"embedded corpus: domain `{name}` found only {used} bytes of text "
                                   f"in this installation (needs {MIN_BYTES})")
            (tmp / name).mkdir()
            for part, a in enumerate(range(0, len(texts), _DOCS_PER_PART)):
                table = pa.table({"text": texts[a:a + _DOCS_PER_PART], "source": labels[a:a + _DOCS_PER_PART]})
                pq.write_table(table, tmp / name / f"part-{part:05d}.parquet")
            provenance["domains"][name] = {
                "description": description, "documents": len(texts), "bytes": used,
                "files": [[lab, len(t.encode("utf-8"))] for lab, t in zip(labels, texts)]}
        for name in DOMAINS:
            shutil.rmtree(out / name, ignore_errors=True)
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    write_json(out / "domains.json", {name: {"paths": [name], "format": "parquet", "text_column": "text"}
                                      for name in DOMAINS})
    write_text(out / "README.txt",
               "autoscale-ray embedded corpus: real text from the Python installation, one folder of "
               "Parquet files (column `text`) per domain. provenance.json lists every source file.\n")
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
    """Build (or find cached) the embedded corpus; returns its folder, key and per-domain sizes."""
    root = build_embedded_corpus(out, force=force)
    prov = json.loads((root / "provenance.json").read_text(encoding="utf-8"))
    return {"path": str(root), "key": prov["key"],
            "domains": {name: {"documents": d["documents"], "bytes": d["bytes"],
                               "description": d["description"]}
                        for name, d in prov["domains"].items()}}
