"""The search's trial designs and the DDO plan's state machine (no Ray)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from autoscale_ray.tuning.specs import ddo_perturbations, log_grid, lr_sweep
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
    """Answers as fixed functions; `lr_best` from the sweep rows it was given (lowest loss)."""

    def __init__(self) -> None:
        self.added: list[str] = []
        self.sweeps: dict[int, dict[float, float]] = {}

    def add(self, key, rows, meta=None):
        self.added.append(key)
        if key.startswith("lr/"):
            self.sweeps.setdefault(meta["probe"], {})[rows[-1]["lr"]] = rows[-1]["loss"]

    def lr_best(self, probe):
        sweep = self.sweeps.get(probe)
        return min(sorted(sweep), key=sweep.__getitem__) if sweep else None

    def lr_for(self, budget):
        return 1e-3 * (budget / 1000) ** -0.3

    def ddo_optimum(self, probe):
        return {"tokens": probe, "weights": OPTIMA[probe]}

    def note(self, text):
        self.notes = getattr(self, "notes", []) + [text]

    def recommendation(self):
        return REC


def sweep_loss(spec, optimum: dict[int, float] | None = None) -> float:
    """A loss minimal at log LR = log optimum[probe] (default 1.2e-3, inside the grids below)."""
    best = (optimum or {}).get(spec.probe, 1.2e-3)
    return 1.0 + (np.log(spec.lr) - np.log(best)) ** 2 if spec.lr else 1.0


def rows_of(spec, optimum: dict[int, float] | None = None) -> list[dict]:
    return [{"tokens": spec.budget, "lr": spec.lr, "loss": sweep_loss(spec, optimum)}]


def drain(plan: DDOPlan, fits: FakeFits, fail: set[str] = frozenset()) -> list:
    return drive_plan(plan, fits, rows_of, fail)


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


def drive_shuffled(plan: DDOPlan, fits, rows, slots: int = 3, seed: int = 0,
                   fail: frozenset[str] = frozenset()) -> list:
    """Drive a started plan as Tune would with `slots` trial slots: fill the slots, complete ONE
    trial chosen by a seeded generator, refill, ... Asserts that no DDO trial is issued while an
    LR-sweep trial is unfinished. Returns the specs in issue order."""
    rng = np.random.default_rng(seed)
    issued, out, n = [], {}, 0
    while not plan.finished:
        while len(out) < slots and (spec := plan.next_spec(f"t{n}")) is not None:
            if spec.stage == "ddo":
                assert not any(s.stage == "lr" for s in out.values()), "DDO issued mid LR stage"
                assert not any(k.startswith("lr/") for k in plan.waiting)
            out[f"t{n}"] = spec
            issued.append(spec)
            n += 1
        assert out, "plan stalled with nothing to issue"
        tid = sorted(out)[int(rng.integers(len(out)))]
        spec = out.pop(tid)
        ok = spec.key not in fail
        plan.complete(tid, rows(spec) if ok else [], ok, fits)
    return issued


def lr_plan(**kw) -> DDOPlan:
    cfg = PlanConfig(probes=[1000, 4000], base_weights=W, target=16000, lrs=log_grid(1e-3, 4, 2.0),
                     **kw)
    plan = DDOPlan(cfg)
    plan.start()
    return plan


@pytest.mark.parametrize("seed", range(4))
def test_no_ddo_trial_before_every_sweep_is_in(seed: int) -> None:
    plan = lr_plan()
    issued = drive_shuffled(plan, FakeFits(), rows_of, slots=3, seed=seed)
    order = [s.stage for s in issued]
    assert order.count("lr") == 8 and order.count("ddo") == 14
    assert max(i for i, st in enumerate(order) if st == "lr") < order.index("ddo")
    # DDO runs issued in probe order, whichever sweep finished last
    assert [s.probe for s in issued if s.stage == "ddo"] == [1000] * 7 + [4000] * 7


def test_a_sweep_completed_first_waits_for_the_other() -> None:
    """Probe 1000's sweep finishes while probe 4000's is still out: nothing more is issued."""
    plan = lr_plan()
    fits = FakeFits()
    specs = {f"t{i}": plan.next_spec(f"t{i}") for i in range(8)}
    assert plan.next_spec("t8") is None
    for tid, spec in specs.items():
        if spec.probe == 1000:
            plan.complete(tid, rows_of(spec), True, fits)
    assert plan.next_spec("t8") is None and plan.lr_open == {4000}
    for tid, spec in specs.items():
        if spec.probe == 4000:
            plan.complete(tid, rows_of(spec), True, fits)
    assert plan.next_spec("t8").stage == "ddo" and not plan.lr_open


def test_edge_sweeps_are_extended_in_their_direction() -> None:
    # probe 1000's optimum below its grid (3.5e-4 .. 2.8e-3), probe 4000's above it
    optimum = {1000: 1e-4, 4000: 1e-2}
    plan = lr_plan(target_seeds=0)
    fits = FakeFits()
    issued = drive_shuffled(plan, fits, lambda s: rows_of(s, optimum), seed=1)
    grid = log_grid(1e-3, 4, 2.0)
    extra = {p: sorted(s.lr for s in issued if s.stage == "lr" and s.probe == p
                       and s.lr not in grid) for p in (1000, 4000)}
    # two rounds of 2 each: the first round's far LR is the new best, the second brackets it
    np.testing.assert_allclose(extra[1000], [grid[0] / 16, grid[0] / 8, grid[0] / 4, grid[0] / 2])
    np.testing.assert_allclose(extra[4000], [grid[-1] * 2, grid[-1] * 4, grid[-1] * 8, grid[-1] * 16])
    assert plan.lr_rounds == {1000: 2, 4000: 2} and plan.lr_extra == 8
    assert plan.planned_trials() == plan.cfg.planned_trials() + 8 == len(issued)
    for p in (1000, 4000):  # the best LR ends strictly inside the swept LRs
        best = fits.lr_best(p)
        assert min(plan.lr_grids[p]) < best < max(plan.lr_grids[p])
    keys = [s.key for s in issued]
    assert len(keys) == len(set(keys)) and "lr/4000/0.01131" in keys and "lr/1000/8.839e-05" in keys
    last_lr = max(i for i, s in enumerate(issued) if s.stage == "lr")
    assert all(s.stage != "ddo" for s in issued[:last_lr])


def test_extension_stops_at_the_round_limit_and_says_so() -> None:
    plan = lr_plan(lr_extend=1, lr_extend_rounds=2)
    fits = FakeFits()
    issued = drive_shuffled(plan, fits, lambda s: rows_of(s, {4000: 1.0}))
    ext = [s for s in issued if s.stage == "lr" and s.probe == 4000][4:]
    assert len(ext) == 2 and plan.lr_rounds == {1000: 0, 4000: 2}
    assert any("4000 tokens" in n and "not bracketed" in n for n in fits.notes)
    # no extension at all when lr_extend is 0
    plan = lr_plan(lr_extend=0)
    issued = drive_shuffled(plan, FakeFits(), lambda s: rows_of(s, {4000: 1.0}))
    assert sum(s.stage == "lr" for s in issued) == 8


def test_a_diverged_lr_above_the_best_brackets_it() -> None:
    """The largest LR failed (diverged): the best of the rest is not at the grid's edge."""
    plan = lr_plan()
    grid = log_grid(1e-3, 4, 2.0)
    fail = frozenset({f"lr/4000/{grid[-1]:.4g}"})
    issued = drive_shuffled(plan, FakeFits(), lambda s: rows_of(s, {4000: 1.0}), fail=fail)
    assert sum(s.stage == "lr" for s in issued) == 8 and plan.lr_extra == 0


def test_refinement_rounds_centre_at_the_last_optimum_and_stop_when_it_settles() -> None:
    """rounds=3: round 2 is issued around round 1's optimum; a round-2 optimum that moved less
    than the threshold ends the probe without a third round."""
    from autoscale_ray.searchers.ddo import DDOPlan, PlanConfig

    optima = iter([{"a": 0.6, "b": 0.4}, {"a": 0.605, "b": 0.395}])

    class Fits:
        notes: list[str] = []

        def add(self, key, rows, meta=None): ...
        def lr_for(self, budget): return 1e-3
        def lr_best(self, probe): return None
        def note(self, text): self.notes.append(text)
        def recommendation(self): return {"weights": {"a": 0.6, "b": 0.4}, "lr": 1e-3}

        def ddo_optimum(self, probe):
            return {"weights": next(optima), "objective_predicted_ratio": 0.9}

    fits = Fits()
    plan = DDOPlan(PlanConfig(probes=[1000], base_weights={"a": 0.5, "b": 0.5}, target=10_000,
                              lr=1e-3, rounds=3))
    plan.start()
    issued = drive_plan(plan, fits, lambda spec: [{"loss": 1.0, "tokens": spec.budget}])
    keys = [s.key for s in issued]
    assert keys[:5] == ["ddo/1000/base", "ddo/1000/a-down", "ddo/1000/a-up", "ddo/1000/b-down",
                        "ddo/1000/b-up"]
    round2 = [s for s in issued if "/r2/" in s.key]
    assert [s.key for s in round2][0] == "ddo/1000/r2/base" and len(round2) == 5
    assert round2[0].weights == {"a": 0.6, "b": 0.4}  # centred at round 1's optimum
    assert not any("/r3/" in k for k in keys) and any("no round 3" in n for n in fits.notes)
    assert plan.results["ddo"][1000]["weights"] == {"a": 0.605, "b": 0.395}
    assert plan.planned_trials() == len(issued) and plan.finished
