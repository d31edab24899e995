"""The output folder of a search: what identifies it, who may write it, and what may be deleted.

A search folder holds `autoscale-ray-search.json` (the marker): the config's fingerprint and its
values, the Tune experiments the search started, and its state (running | interrupted |
complete). A folder is only ever cleared when it holds the marker (`--restart`), and then only of
the names in `OWNED_FILES`/`OWNED_FOLDERS`, which the tool itself writes; a Tune experiment folder
is deleted only when it holds the owner file this tool put there, naming this output. A lock
(`.autoscale-ray.lock`) keeps a second run out of a folder while one is active.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from autoscale_ray.config import ExperimentConfig
from autoscale_ray.errors import BadInput, short
from autoscale_ray.names import check_name
from autoscale_ray.tuning.layout import LOCK, MARKER, OWNED_FILES, OWNED_FOLDERS, OWNER
from autoscale_ray.storage import Store, filesystem_for

PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")


# -- what identifies a search ---------------------------------------------------------------------
def config_values(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config values a search's trials depend on (resources and storage may change on resume:
    a bigger cluster trains the same trials)."""
    corpus = {k: v for k, v in dataclasses.asdict(cfg.corpus).items() if k != "cache_dir"}
    return json.loads(json.dumps({"name": cfg.name, "corpus": corpus, "train": dict(cfg.train),
                                  "search": dataclasses.asdict(cfg.search)}, default=str))


def fingerprint(values: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    return {prefix: obj}


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    a, b = _flat(old), _flat(new)
    return [f"{k}: {short(a.get(k, '(unset)'))} -> {short(b.get(k, '(unset)'))}"
            for k in sorted(set(a) | set(b)) if a.get(k, "(unset)") != b.get(k, "(unset)")]


# -- where it may be written ----------------------------------------------------------------------
def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _source_folders(sources: Sequence[Any]) -> list[tuple[Path, bool]]:
    """(local folder, read recursively?) of each path a corpus reads: a folder or a `**` glob
    reads everything below it, a `*` glob one folder's entries, a file only itself."""
    folders = []
    for source in sources:
        for raw in source.paths:
            fs, path = filesystem_for(raw, getattr(source, "storage_options", None))
            if fs.type_name != "local":
                continue
            glob = [path.find(c) for c in "*?[" if c in path]
            if glob:
                base = Path(path[:min(glob)].rsplit("/", 1)[0] or "/")
                folders.append((base.resolve(), "**" in path or path.count("/") > str(base).count("/") + 1))
            elif Path(path).is_dir():
                folders.append((Path(path).resolve(), True))
            else:
                folders.append((Path(path).resolve().parent, False))
    return folders


def check_location(store: Store, sources: Sequence[Any] = ()) -> None:
    """Refuse, before anything is written, an output the search cannot or must not write."""
    if not store.local:
        return
    target = Path(store.path).resolve()
    where = f"--out {store.location}"
    if target == Path(target.anchor) or target == Path.home().resolve():
        raise BadInput("is the filesystem root or your home folder", where, "give a folder for this search")
    if any(_inside(target, Path(p)) for p in PSEUDO_FILESYSTEMS):
        raise BadInput("is on a system pseudo-filesystem", where, "give a folder on a real disk")
    existing = target
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise BadInput(f"`{existing}` is a file, not a folder", where, "give a new or empty folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInput(f"`{existing}` is not writable", where, "give a folder you can write to")
    for folder, recursive in _source_folders(sources):
        if target == folder or (recursive and _inside(target, folder)) or _inside(folder, target):
            raise BadInput(f"overlaps the corpus folder `{folder}` (a later run would train on the "
                           "search's own outputs)", where, "put the output outside the data folders")


# -- the marker -----------------------------------------------------------------------------------
def read_marker(store: Store) -> dict[str, Any] | None:
    """The folder's marker, None for a new or empty folder; BadInput for a folder this tool did
    not write (it is never cleared or written into)."""
    if store.exists(MARKER):
        try:
            marker = json.loads(store.read_text(MARKER))
        except (ValueError, UnicodeDecodeError):
            marker = None
        if not isinstance(marker, dict) or not isinstance(marker.get("fingerprint"), str) \
                or not isinstance(marker.get("experiments"), list):
            raise BadInput(f"{MARKER} is unreadable", store.location,
                           "give another --out (the folder is left as it is)")
        return marker
    if store.local and Path(store.path).is_file():
        raise BadInput("is a file, not a folder", f"--out {store.location}", "give a new or empty folder")
    if not store.is_empty(ignore=(LOCK,)):
        raise BadInput("holds files that autoscale-ray did not write (no search marker)",
                       f"--out {store.location}", "give a new or empty folder for the search")
    return None


def check_resumable(marker: dict[str, Any] | None, cfg: ExperimentConfig, store: Store,
                    *, resume: bool, restart: bool) -> None:
    if resume and restart:
        raise BadInput("--resume and --restart exclude each other", "run",
                       "--resume continues the search in --out, --restart starts it over")
    if resume:
        if marker is None:
            raise BadInput("nothing to resume (no search in this folder)", f"--out {store.location}",
                           "run without --resume first, or give the --out of the search")
        values = config_values(cfg)
        diff = differences(marker.get("config", {}), values)
        if diff or marker["fingerprint"] != fingerprint(values):
            raise BadInput(f"the config differs from the search's ({'; '.join(diff[:3])}"
                           f"{'; ...' if len(diff) > 3 else ''})", f"--resume {cfg.source}",
                           "resume with the original config, or start over with --restart")
    elif marker is not None and not restart:
        raise BadInput(f"holds a search ({marker.get('state', 'unknown')})", f"--out {store.location}",
                       "continue it with --resume, start over with --restart, or give another --out")


def _owned_experiment(tune_store: Store, exp: str, store: Store) -> bool:
    name = f"{exp}/{OWNER}"
    return tune_store.exists(name) and tune_store.read_text(name).strip() == store.location


def clear(store: Store, tune_store: Store, marker: Mapping[str, Any], name: str) -> list[str]:
    """`--restart`: delete what the earlier search wrote (and nothing else); returns the names."""
    gone = [f for f in (*OWNED_FILES, *OWNED_FOLDERS) if store.exists(f)]
    for f in gone:
        store.delete(f)
    for exp in marker.get("experiments", []):
        if isinstance(exp, str) and exp.startswith(name) and check_name(exp, MARKER) \
                and _owned_experiment(tune_store, exp, store):
            tune_store.delete(exp)
            gone.append(tune_store.uri(exp))
    store.delete(MARKER)
    return gone


def begin(store: Store, tune_store: Store, cfg: ExperimentConfig, marker: dict[str, Any] | None) -> str:
    """Record this session of the search in the marker; returns its Tune experiment's name (a new
    one per session: a resumed search starts a fresh Tune experiment and replays finished trials
    from `done/`, so nothing Tune pickled is ever read back)."""
    values = config_values(cfg)
    marker = dict(marker or {"tool": "autoscale-ray", "created": time.time(), "experiments": []})
    n = len(marker["experiments"])
    while True:
        exp = cfg.name if n == 0 else f"{cfg.name}-resume{n}"
        if not tune_store.exists(exp):
            break
        if not _owned_experiment(tune_store, exp, store):
            raise BadInput(f"Tune storage already holds an experiment `{exp}` that this search did "
                           "not start", f"{cfg.source}: name", "give the search another name or storage_path")
        n += 1
    tune_store.write_text(f"{exp}/{OWNER}", store.location + "\n")
    marker.update(fingerprint=fingerprint(values), config=values, state="running", updated=time.time(),
                  experiments=[*marker["experiments"], exp], storage=tune_store.location)
    store.write_json(MARKER, marker)
    return exp


def mark(store: Store, state: str) -> None:
    marker = json.loads(store.read_text(MARKER))
    marker.update(state=state, updated=time.time())
    store.write_json(MARKER, marker)


# -- one run at a time ----------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SearchLock:
    """Held while a search runs in a folder. Local: an flock (released by the OS if the process
    dies). Object storage: a lock object naming host and pid; one whose process is gone (same
    host) is taken over, any other is reported with how to remove it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._fd: int | None = None

    def __enter__(self) -> "SearchLock":
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        if not self.store.local:
            check_unlocked(self.store)
            self.store.write_json(LOCK, me)
            return self
        Path(self.store.path).mkdir(parents=True, exist_ok=True)
        fd = os.open(Path(self.store.path) / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        _flock_or_refuse(fd, self.store)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(me).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock; the (empty-purpose) file stays
            self._fd = None
        elif not self.store.local:
            self.store.delete(LOCK)


def check_unlocked(store: Store) -> None:
    """Refuse, in one line, a folder another run holds, without taking its lock or writing
    anything: `run` asks this before it starts Ray or packs the corpus, and takes the lock
    (`SearchLock`) once both are ready, so a bad shard still leaves no trace. On object storage
    the lock is an object naming host and pid; one whose process is gone (same host) is free."""
    if store.local:
        try:
            fd = os.open(Path(store.path) / LOCK, os.O_RDWR)
        except OSError:  # no lock file (a new folder) or not ours to open: SearchLock decides
            return
        _flock_or_refuse(fd, store)
        os.close(fd)  # releases the flock just taken
        return
    if not store.exists(LOCK):
        return
    try:
        holder = json.loads(store.read_text(LOCK))
    except ValueError:
        holder = {}
    holder = holder if isinstance(holder, dict) else {}
    if holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", 0) or 0)):
        return
    raise BadInput(f"another autoscale-ray run is using this folder (pid {holder.get('pid')} on "
                   f"{holder.get('host')})", f"--out {store.location}",
                   f"if no run is active there, delete {store.uri(LOCK)}")


def _flock_or_refuse(fd: int, store: Store) -> None:
    """Take the flock on the lock file `fd` without waiting; when another process holds it, close
    `fd` and refuse, naming the holder from the file's text."""
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode(errors="replace").strip()
        os.close(fd)
        raise BadInput(f"another autoscale-ray run is using this folder ({short(holder)})",
                       f"--out {store.location}", "wait for it to finish or give another --out") from None
