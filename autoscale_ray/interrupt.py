"""Stopping a search cleanly on SIGINT (Ctrl-C) or SIGTERM (`ray job stop`, a scheduler).

The first signal asks Tune to stop (through the handler Tune installs for SIGUSR1, which ends its
loop and snapshots the experiment) and marks the search as stopping, so the searcher records no
trial that Tune cut short; the driver then keeps the state for `--resume` and exits 130. A second
signal stops at once (KeyboardInterrupt).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

log = logging.getLogger("autoscale_ray")

STOPPING = threading.Event()  # set by the first signal; read by the searcher (same process)
TUNE_RUNNING = threading.Event()  # set around Tuner.fit(): only then is Tune's handler live


def _handler(signum: int, frame: Any) -> None:
    if STOPPING.is_set():
        raise KeyboardInterrupt
    STOPPING.set()
    log.warning("%s received: stopping the search after Tune saves its state (again to abort)",
                signal.Signals(signum).name)
    tune_handler = signal.getsignal(signal.SIGUSR1) if hasattr(signal, "SIGUSR1") else None
    if TUNE_RUNNING.is_set() and callable(tune_handler) and tune_handler is not _handler:
        tune_handler(signum, frame)  # Tune's own graceful stop
    else:  # Tune is not running yet (or any more): stop where we are
        raise KeyboardInterrupt


@contextmanager
def graceful_stop() -> Iterator[threading.Event]:
    """Within the block, SIGINT and SIGTERM stop the search gracefully (main thread only)."""
    STOPPING.clear()
    TUNE_RUNNING.clear()
    if threading.current_thread() is not threading.main_thread():
        yield STOPPING
        return
    # Tune would install its own SIGINT handler; ours forwards to its SIGUSR1 one instead
    previous_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    old = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield STOPPING
    finally:
        TUNE_RUNNING.clear()
        for s, h in old.items():
            signal.signal(s, h)
        if previous_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous_env
