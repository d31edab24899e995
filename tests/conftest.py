"""Suite-wide settings. `make test` runs the test files on two pytest-xdist workers (`-n 2 --dist
loadfile`: a file's tests, and the Ray clusters and searches its module fixtures share, stay on one
worker). Each worker's Ray instances get a temp dir of their own: a local `ray.init()` registers its
cluster in `<RAY_TMPDIR>/ray_current_cluster`, and a search started by a test on the other worker must
never find (and join) it. Tests that own a head node (tests/ray_head.py) set their own RAY_TMPDIR."""

from __future__ import annotations

import os
import tempfile

_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER and "RAY_TMPDIR" not in os.environ:
    # short: Ray's Unix socket paths under it are limited to 107 characters
    os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix=f"r{_WORKER[-1]}", dir="/tmp")
