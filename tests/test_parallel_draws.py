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


def _recording(tasks: list[int]):
    def solve_all(solve, items):  # ray_solve_all, recording the units it was given
        tasks.extend(items)
        return ray_solve_all(solve, items)
    return solve_all


def test_the_mixing_laws_fits_on_ray_tasks_give_the_same_laws_and_answer(ray_two_cpus) -> None:
    """The nested law's per-(mixture, domain) fits and the joint law's per-domain fits on Ray tasks
    (a mixing-law search's predictor runs them so): bit for bit the laws fitted in order, and the
    same whole answer (form choice, bootstrap, optimum)."""
    from dataclasses import asdict

    from autoscale_ray.fits.mixlaw_search import mixlaw_answer
    from autoscale_ray.laws.mixing_law import fit_joint_law, fit_nested_law
    from autoscale_ray.runs import validate
    from test_mixing_law import arrays, synthetic_runs

    frame = synthetic_runs(n_mix=6, per_run=4, noise=0.002)
    args = arrays(frame)
    tasks: list[int] = []
    nested = fit_nested_law(*args, solve_all=_recording(tasks))
    assert tasks == list(range(6 * 2))  # one unit per (mixture, validation domain)
    in_order = fit_nested_law(*args)
    for name in ("mixtures", "E", "A", "B", "alpha", "beta"):
        assert np.array_equal(getattr(nested, name), getattr(in_order, name)), name
    tasks.clear()
    joint = fit_joint_law(*args, solve_all=_recording(tasks))
    assert tasks == [0, 1]  # one unit per validation domain
    joint_in_order = fit_joint_law(*args)
    for name in ("E", "A", "B", "alpha", "beta", "T", "objective"):
        assert np.array_equal(getattr(joint, name), getattr(joint_in_order, name)), name
    table = validate(frame.assign(key=frame["run_id"], budget=frame["tokens"].max()), "<synthetic>")
    kw = dict(params=2e8, tokens=4e9, available=None, max_epochs=1.0, level=0.9, seed=0, bootstrap=4)
    assert asdict(mixlaw_answer(table, solve_all=ray_solve_all, **kw)) == asdict(mixlaw_answer(table, **kw))


def test_a_unit_rejected_on_a_task_raises_its_own_error(ray_two_cpus) -> None:
    """A fit that rejects its data (BadInput is a ValueError) comes back as None from the tasks;
    `solve_every` solves it again here so the caller gets the error fitting in order gives."""
    from autoscale_ray.errors import BadInput
    from autoscale_ray.laws.noise import solve_every

    def fit(i: int) -> np.ndarray:
        if i == 2:
            raise BadInput("unit 2 has too few points", "runs")
        return np.array([float(i)])

    assert [r[0] for r in solve_every(ray_solve_all, lambda i: np.array([i * 2.0]), 5)] == [0, 2, 4, 6, 8]
    with pytest.raises(BadInput, match="unit 2 has too few points"):
        solve_every(ray_solve_all, fit, 4)
