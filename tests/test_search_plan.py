"""The search's trial designs and the DDO plan's state machine (no Ray)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from autoscale_ray.search.specs import ddo_perturbations, log_grid, lr_sweep
from autoscale_ray.searchers.ddo import DDOPlan, PlanConfig
from helpers import drive_plan

W = {"a": 0.25, "b": 0.25, "c": 0.5}


@pytest.mark.parametrize("design", ["fixed-others", "fixed-total"])
def test_perturbation_design_moves_one_domain(design: str) -> None:
    w = {"a": 0.25, "b": 0.25, "c": 0.2, "d": 0.3}
    specs = ddo_perturbations(1000, w, down=0.2, up=3.0, design=design)
    assert len(specs) == 2 * len(w) + 1 and len({s.key for s in specs}) == len(specs)
    base = np.array([w[d] for d in w]) * 1000
    for spec in specs[1:]:
        q = np.array([spec.weights[d] for d in w]) * spec.budget
        i = list(w).index(spec.tags["perturbed"])
        assert q[i] == pytest.approx(base[i] * float(spec.tags["factor"]), rel=1e-3)
        others = np.arange(len(w)) != i
        if design == "fixed-others":
            np.testing.assert_allclose(q[others], base[others], rtol=1e-3)
        else:
            assert spec.budget == 1000
            ratio = q[others] / base[others]
            np.testing.assert_allclose(ratio, ratio[0])  # others rescaled together


def test_fixed_total_design_rejects_an_impossible_up_factor() -> None:
    with pytest.raises(ValueError, match="leaves no tokens"):
        ddo_perturbations(1000, W, up=3.0, design="fixed-total")  # 0.5 x 3 > the whole budget


def test_lr_grid_and_sweep() -> None:
    grid = log_grid(1e-3, 4, 2.0)
    np.testing.assert_allclose(np.diff(np.log(grid)), np.log(2.0))
    assert np.exp(np.mean(np.log(grid))) == pytest.approx(1e-3)
    assert {s.lr for s in lr_sweep(500, W, grid)} == set(grid)


OPTIMA = {1000: {"a": 0.2, "b": 0.3, "c": 0.5}, 4000: {"a": 0.15, "b": 0.35, "c": 0.5}}
REC = {"tokens": 8000, "weights": {"a": 0.1, "b": 0.3, "c": 0.6}, "lr": 5e-4}


class FakeFits:
    def __init__(self) -> None:
        self.added: list[str] = []

    def add(self, key, rows, meta=None):
        self.added.append(key)

    def lr_for(self, budget):
        return 1e-3 * (budget / 1000) ** -0.3

    def ddo_optimum(self, probe):
        return {"tokens": probe, "weights": OPTIMA[probe]}

    def note(self, text):
        self.notes = getattr(self, "notes", []) + [text]

    def recommendation(self):
        return REC


def drain(plan: DDOPlan, fits: FakeFits, fail: set[str] = frozenset()) -> list:
    return drive_plan(plan, fits, lambda spec: [{"tokens": spec.budget, "loss": 1.0}], fail)


def test_plan_runs_stages_in_order_and_finishes() -> None:
    cfg = PlanConfig(probes=[1000, 4000], base_weights=W, target=16000, lrs=log_grid(1e-3, 4, 2.0),
                     verify_probe=True, target_seeds=2)
    plan = DDOPlan(cfg)
    plan.start()
    fits = FakeFits()
    issued = drain(plan, fits, fail={"ddo/1000/a-up"})
    stages = [s.stage for s in issued]
    assert stages.count("lr") == 8 and stages.count("ddo") == 14 and stages.count("verify") == 2
    assert stages.count("target") == 6  # 3 arms x 2 seeds
    # DDO runs of a probe only after its LR sweep, at the LR the law gives for their budget
    for spec in issued:
        if spec.stage == "ddo":
            assert spec.lr == pytest.approx(fits.lr_for(spec.budget))
    assert "ddo/1000/a-up" not in fits.added and plan.done["ddo/1000/a-up"] == "failed"
    assert any("ddo/1000/a-up" in n and "fewer runs than designed" in n for n in fits.notes)
    # each probe's DDO optimum (as the fits gave it) is recorded and verified at that probe
    assert plan.results["ddo"] == {p: {"tokens": p, "weights": w} for p, w in OPTIMA.items()}
    verify = [s for s in issued if s.stage == "verify"]
    assert [(s.key, s.budget, s.probe, dict(s.weights)) for s in verify] == \
        [(f"verify/{p:.4g}", p, p, w) for p, w in OPTIMA.items()]
    assert all(s.lr == pytest.approx(fits.lr_for(s.budget)) for s in verify)
    # the target stage starts once every probe's DDO runs are in: the projected mixture, the
    # uniform one and the smallest probe's optimum, each with 2 seeds, at the target budget and
    # the recommended LR
    order = [s.stage for s in issued]
    assert order.index("target") > max(i for i, st in enumerate(order) if st == "ddo")
    arms = {"projected": REC["weights"], "uniform": {d: 1 / 3 for d in W}, "small-optimum": OPTIMA[1000]}
    target = {(s.tags["arm"], s.seed): s for s in issued if s.stage == "target"}
    assert sorted(target) == sorted((arm, seed) for arm in arms for seed in (0, 1))
    for (arm, seed), s in target.items():
        assert s.key == f"target/{arm}/{seed}" and s.budget == 16000 and s.lr == REC["lr"]
        assert dict(s.weights) == pytest.approx(arms[arm])
    assert plan.finished and not plan.in_flight and not plan.queue and not plan.waiting
    assert plan.done == {s.key: "failed" if s.key == "ddo/1000/a-up" else "ok" for s in issued}


def test_plan_pickles_midway_and_resumes() -> None:
    plan = DDOPlan(PlanConfig(probes=[1000], base_weights=W, target=4000, lr=1e-3))
    plan.start()
    fits = FakeFits()
    first = plan.next_spec("t0")
    plan.complete("t0", [{"tokens": first.budget}], True, fits)
    out = plan.next_spec("t1")  # in flight when the driver dies
    restored = pickle.loads(pickle.dumps(plan))
    assert restored.in_flight["t1"].key == out.key and first.key in restored.done
    restored.complete("t1", [{"tokens": out.budget}], True, fits)
    rest = drain(restored, fits)
    keys = [first.key, out.key] + [s.key for s in rest]
    assert len(keys) == len(set(keys)) == 2 * len(W) + 1
