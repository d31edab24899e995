"""Atomic writes: results appear whole or not at all (temp file in the same folder + rename)."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

# mkstemp creates files 0600; results are shared (a team's mount), so they get the user's umask
UMASK = os.umask(0)
os.umask(UMASK)
FILE_MODE = 0o666 & ~UMASK
DIR_MODE = 0o777 & ~UMASK


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_text(obj: Any) -> str:
    """Strict JSON (NaN/inf become null, numpy values plain numbers)."""
    from autoscale_ray.formatting import jsonable

    return json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json_text(obj))
