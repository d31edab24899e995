"""The bootstrap's redraws solved on Ray tasks (fits/parallel.py) give the rows solving them in
order gives, rejected redraws included, and really run in other processes."""

from __future__ import annotations

import os

import numpy as np
import pytest

from autoscale_ray.fits.parallel import ray_solve_all
from autoscale_ray.laws.noise import parametric_draws, solve_each

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_two_cpus():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _solver(scale: np.ndarray):
    def solve(y: np.ndarray) -> np.ndarray:
        if y[0] > 1.5:  # the solver rejects some redraws, as a fit without a root does
            raise ValueError("no root")
        return np.array([float(y @ scale), float(os.getpid())])
    return solve


def test_parallel_redraws_give_the_rows_in_order_and_run_in_tasks(ray_two_cpus) -> None:
    solve = _solver(np.array([1.0, -2.0, 0.5]))
    fitted = np.array([1.0, 2.0, 3.0])
    in_order = parametric_draws(solve, fitted, 0.5, 40, seed=7)
    parallel = parametric_draws(solve, fitted, 0.5, 40, seed=7, solve_all=ray_solve_all)
    assert 0 < len(in_order) < 40  # some redraws were rejected and skipped in both
    assert np.array_equal(parallel[:, 0], in_order[:, 0])
    assert set(in_order[:, 1]) == {os.getpid()}
    assert os.getpid() not in set(parallel[:, 1])  # solved in Ray's worker processes


def test_chunks_keep_the_redraws_order_and_the_rejections_in_place(ray_two_cpus) -> None:
    redraws = [np.array([v, 0.0, 0.0]) for v in (0.1, 2.0, 0.3, 0.4, 1.9, 0.6, 0.7)]
    solve = _solver(np.array([1.0, 0.0, 0.0]))
    expected = [None if r is None else r[0] for r in solve_each(solve, redraws)]
    got = [None if r is None else r[0] for r in ray_solve_all(solve, redraws)]
    assert got == expected == [0.1, None, 0.3, 0.4, None, 0.6, 0.7]


def test_the_budget_laws_domains_fitted_on_ray_tasks_give_the_same_law(ray_two_cpus) -> None:
    """laws/budget_transfer.py fits each domain's law on its own: on Ray tasks (the search's
    predictor does this), bit for bit the law fitted in order."""
    from autoscale_ray.laws.budget_transfer import fit_budget_transfer
    from test_budget_transfer import UNIT, ddo_quantities, true_losses

    q = ddo_quantities()
    y = true_losses(q) * (1 + 0.003 * np.random.default_rng(3).standard_normal(q.shape))
    in_order = fit_budget_transfer(q, y, ref=UNIT)
    tasks: list[int] = []

    def counted(solve, items):  # ray_solve_all, recording that it got one item per domain
        tasks.extend(items)
        return ray_solve_all(solve, items)

    parallel = fit_budget_transfer(q, y, ref=UNIT, solve_all=counted)
    assert tasks == list(range(q.shape[1]))
    for name in ("transfer", "a", "b", "e", "k", "residuals"):
        assert np.array_equal(getattr(parallel, name), getattr(in_order, name)), name
