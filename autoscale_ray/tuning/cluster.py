"""Which Ray cluster a search runs on, said in one line, and a registered cluster that does not answer
refused within seconds.

`ray.init()` with no address joins the cluster named by RAY_ADDRESS, else the one an earlier
`ray start` registered on this machine (`<ray temp dir>/ray_current_cluster`), else starts a local
instance. A registration left by a cluster that died without `ray stop` made `ray.init()` retry for
minutes and end with "Failed to get cluster ID from GCS server: TimedOut": its GCS port is probed first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from typing import Iterator

from autoscale_ray.errors import BadInput

PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Target:
    address: str | None  # None: a fresh local instance
    source: str          # "--address", "RAY_ADDRESS", "ray start", "local", "this process"


def target(address: str | None = None) -> Target:
    """What `ray.init(address)` would connect to, resolved the way Ray resolves it."""
    import ray
    from ray._common.utils import get_ray_address_file
    from ray._private.services import find_bootstrap_address

    if ray.is_initialized():
        return Target(None, "this process")
    if address and address not in ("auto", "local"):
        return Target(address, "--address")
    env = os.environ.get("RAY_ADDRESS", "")
    if address == "local" or env == "local":
        return Target(None, "local")
    if env and env != "auto":
        return Target(env, "RAY_ADDRESS")
    try:
        registered = find_bootstrap_address(None)
    except OSError:
        registered = None
    if registered:
        return Target(registered, f"ray start ({get_ray_address_file(None)})")
    return Target(None, "local")


def _host_port(address: str) -> tuple[str, int] | None:
    bare = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = bare.rpartition(":")
    return (host.strip("[]") or "127.0.0.1", int(port)) if sep and port.isdigit() else None


def check_answers(t: Target) -> None:
    """A cluster address whose port refuses a TCP connection: one line saying how to fix it."""
    where = _host_port(t.address) if t.address else None
    if where is None:
        return
    try:
        with socket.create_connection(where, timeout=PROBE_TIMEOUT_S):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
    if t.source.startswith("ray start"):
        raise BadInput(f"the Ray cluster registered on this machine at {t.address} does not answer "
                       f"({reason}): it stopped without `ray stop`", t.source,
                       "run `ray stop` to clear the registration, or RAY_ADDRESS=local autoscale-ray run ... "
                       "for a fresh local Ray")
    raise BadInput(f"no Ray cluster answers at {t.address} ({reason})", t.source,
                   "start the cluster (`ray start --head`), fix the address, or use RAY_ADDRESS=local")


def describe(t: Target, resources: dict[str, float], dashboard_url: str | None) -> str:
    """The first line of a search: the cluster, its size, its dashboard."""
    size = ", ".join(f"{resources[k]:g} {k}" for k in ("CPU", "GPU") if resources.get(k))
    if t.source == "this process":
        what = "the Ray instance this process started (ray.init)"
    elif t.address is None:
        what = "a fresh local Ray instance"
    else:
        what = f"the Ray cluster at {t.address} (from {t.source})"
    url = dashboard_url or ""
    if url and "://" not in url:
        url = f"http://{url}"
    return f"Ray: {what}, {size or 'no resources yet'}" + (f"; dashboard {url}" if url else "; no dashboard")


class _SaidByUs(logging.Filter):
    """Drops `ray.init`'s own start-up lines that the search's first line says instead: which
    instance it started or joined and its dashboard (INFO), and the notice that token
    authentication is on by default. Every other warning, the one for authentication turned
    off included, still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "ray._private.worker":
            return record.levelno >= logging.WARNING
        return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


@contextlib.contextmanager
def one_line_start() -> Iterator[None]:
    """Around `ray.init`: its start-up lines are left to the search's own (see `_SaidByUs`); only
    while it runs, so a Ray started later in the same process logs as Ray does."""
    said = _SaidByUs()
    loggers = [logging.getLogger(n) for n in ("ray._private.worker",
                                                "ray._private.authentication.authentication_token_setup")]
    for logger in loggers:
        logger.addFilter(said)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(said)
