"""Bootstrap redraws solved in parallel on Ray: the same rows as solving them in order.

A DDO fit's and the budget law's intervals refit 100 redraws each, one least-squares fit per redraw
(~0.25 s each on a laptop core); at the end of a search they were most of its fitting time, on one
core. `ray_solve_all` splits the redraws into one contiguous chunk per CPU of the cluster (at most
MAX_CHUNKS) and solves each chunk with `laws.noise.solve_each` in a task. Each result depends on its
redraw alone (the redraws are drawn before, in order, from the fixed seed), so the rows, and the
intervals, are the same as in order. The tasks ask for no CPU: the predictor calls them while the
Tune loop waits on it and trials may hold every CPU, so a task that waited for a CPU could wait on
a trial that waits on the loop."""

from __future__ import annotations

from functools import cache
from typing import Any, Callable, Sequence

import numpy as np

from autoscale_ray.laws.noise import solve_each

MAX_CHUNKS = 32


@cache
def _solve_task() -> Any:
    """`solve_each` as a Ray task, defined once per process (each `ray.remote` of a function
    exports it to the cluster again)."""
    import ray

    return ray.remote(num_cpus=0)(solve_each)


def ray_solve_all(solve: Callable[[np.ndarray], np.ndarray], redraws: Sequence[np.ndarray]) -> list:
    """`solve_each(solve, redraws)`, in chunks on Ray tasks (falls back to in order without Ray)."""
    import ray

    if not ray.is_initialized() or len(redraws) < 2:
        return solve_each(solve, redraws)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    chunks = np.array_split(np.arange(len(redraws)), max(1, min(cpus, MAX_CHUNKS, len(redraws))))
    solve_ref = ray.put(solve)
    parts = ray.get([_solve_task().remote(solve_ref, [redraws[i] for i in chunk]) for chunk in chunks])
    return [row for part in parts for row in part]
