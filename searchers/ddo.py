"""DDO's outer bilevel loop as a Ray Tune `Searcher`.

`DDOPlan` is the state machine (pure Python): which trials are out, which stages and probe budgets
are complete, what comes next. `DDOSearcher` is the thin Tune adapter around it, shaped like Ray's
`OptunaSearch`: `suggest` asks the plan, `on_trial_complete` tells it, `save`/`restore` persist it.
All math is asked of a predictor (`autoscale_ray.predictor.Predictor`, a named Ray actor in a search).

Stages (docs/architecture.md, "The pipeline"), pipelined per probe budget after the LR stage:
  lr      at each probe budget N_k, a sweep of peak LRs on the base mixture; a sweep whose best
          observed LR is at its grid's edge is extended past that edge (`lr_extend` LRs a round,
          continuing the grid's log spacing, at most `lr_extend_rounds` rounds);
  ddo     once EVERY probe's sweep is in (extensions too): the 2m+1 perturbation runs at each N_k,
          at LR*(budget) from the LR law over all horizons. Waiting for all sweeps costs no slot
          time that could change an answer (nothing else can run before the LR law), and it makes
          each DDO run's LR the same whatever order the sweep trials finished in; with
          `rounds` > 1, further rounds centred at the last optimum (search/refine.py), each
          refitted on every run of the probe, until the optimum settles;
  verify  once N_k's DDO runs are in: optionally one run at the DDO optimum of N_k;
  target  once every probe is in: optionally the projected, uniform and smallest-probe optimum
          mixtures trained at the target budget (each with several seeds).

    >>> import ray
    >>> from ray import tune
    >>> from autoscale_ray.searchers.ddo import DDOSearcher
    >>> searcher = DDOSearcher(plan, predictor_name="autoscale-predictor")  # doctest: +SKIP
    >>> tune.Tuner(trainable, tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1,
    ...            max_concurrent_trials=2)).fit()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from ray.tune.search import Searcher

from autoscale_ray.tuning.layout import read_done, write_done
from autoscale_ray.tuning.refine import GAIN, MOVED, keep_refining, refinement_specs
from autoscale_ray.tuning.specs import TrialSpec, ddo_perturbations, lr_sweep
from autoscale_ray.interrupt import STOPPING
from autoscale_ray.storage import Store
from autoscale_ray.searchers.plan_queue import Fits, PlanQueue
from autoscale_ray.searchers.persist import PickledState

log = logging.getLogger("autoscale_ray")


@dataclass
class PlanConfig:
    probes: Sequence[int]                 # probe budgets N_1 < ... < N_k (tokens)
    base_weights: Mapping[str, float]     # base mixture of the LR sweep and of DDO
    target: int                           # target budget (tokens)
    lrs: Sequence[float] = ()             # LR sweep grid; empty = no LR stage, use `lr`
    lr: float | None = None               # fixed peak LR when there is no LR stage
    down: float = 0.2
    up: float = 3.0
    design: str = "fixed-others"
    verify_probe: bool = False            # a run at each probe's DDO optimum
    target_seeds: int = 0                 # > 0: train predicted/uniform/small-optimum at the target
    seed: int = 0
    lr_extend: int = 2                    # LRs added past an edge sweep's best LR per round (0: none)
    lr_extend_rounds: int = 3             # extension rounds at most, per probe
    rounds: int = 1                       # DDO rounds per probe (> 1: refinement, search/refine.py)
    replicates: int = 0                   # extra seeds of each probe's base run (the noise)

    def planned_trials(self) -> int:
        """Trials the design asks for, every DDO round included, before any LR-sweep extension
        (`DDOPlan.planned_trials` adds the extensions enqueued so far and takes off the rounds
        a settled optimum made unnecessary)."""
        m = len(self.base_weights)
        k = len(self.probes)
        return k * len(self.lrs) + k * (2 * m + 1) * self.rounds + k * self.replicates \
            + (k if self.verify_probe else 0) \
            + 3 * self.target_seeds


@dataclass
class DDOPlan(PlanQueue):
    """The search's state machine (the queue and groups: PlanQueue)."""

    cfg: PlanConfig
    lr_grids: dict[int, list[float]] = field(default_factory=dict)  # probe -> LRs swept, sorted
    lr_rounds: dict[int, int] = field(default_factory=dict)  # probe -> extension rounds issued
    lr_open: set[int] = field(default_factory=set)           # probes whose LR stage is not final
    lr_extra: int = 0                                         # extension trials enqueued
    centres: dict[int, dict[str, float]] = field(default_factory=dict)  # probe -> last round's centre
    rounds_skipped: int = 0                                   # refinement trials not needed

    def start(self) -> None:
        cfg = self.cfg
        if not cfg.lrs:
            for probe in cfg.probes:
                self._enqueue(f"ddo/{probe}", self._ddo_specs(probe, lambda b: float(cfg.lr)))
            return
        for probe in cfg.probes:
            self.lr_grids[probe] = sorted(float(lr) for lr in cfg.lrs)
            self.lr_rounds[probe] = 0
            self.lr_open.add(probe)
            self._enqueue(f"lr/{probe}", lr_sweep(probe, cfg.base_weights, self.lr_grids[probe],
                                                  cfg.seed))

    def planned_trials(self) -> int:
        """The design's trials plus the LR-sweep extensions enqueued so far."""
        return self.cfg.planned_trials() + self.lr_extra - self.rounds_skipped

    LEFT_OUT = "left out of every fit, so its stage rests on fewer runs than designed"

    def _meta(self, spec: TrialSpec) -> dict[str, Any]:
        return {"probe": spec.probe, "arm": spec.tags.get("arm"), "round": int(spec.tags.get("round", 1))}

    def _ddo_specs(self, probe: int, lr_for) -> list[TrialSpec]:
        cfg = self.cfg
        specs = ddo_perturbations(probe, cfg.base_weights, cfg.down, cfg.up, cfg.design, cfg.seed,
                                  cfg.replicates)
        return [replace(s, lr=lr_for(s.budget)) for s in specs]

    def _group_done(self, group: str, fits: Fits) -> None:
        stage, _, probe_text = group.partition("/")
        cfg = self.cfg
        if stage == "lr":
            self._lr_sweep_done(int(probe_text), fits)
        elif stage == "ddo":
            probe_part, _, round_part = probe_text.partition("/r")
            probe, round_ = int(probe_part), int(round_part or 1)
            try:
                optimum = fits.ddo_optimum(probe)
            except Exception as exc:  # e.g. a failed trial left a domain with too few points
                fits.note(f"DDO at {probe:.4g} tokens could not be fitted, this probe is left out: "
                          f"{str(exc).strip().splitlines()[-1]}")
                optimum = None
            if optimum is not None and self._refine(probe, round_, optimum, fits):
                return
            # the rounds this probe will not run
            self.rounds_skipped += (2 * len(cfg.base_weights) + 1) * max(0, cfg.rounds - round_)
            self.results.setdefault("ddo", {})[probe] = optimum
            if optimum is not None and cfg.verify_probe:
                self._enqueue(f"verify/{probe}", [TrialSpec(
                    f"verify/{probe:.4g}", "verify", probe, optimum["weights"], fits.lr_for(probe),
                    cfg.seed, probe)])
            if all(p in self.results["ddo"] for p in cfg.probes) and \
                    any(self.results["ddo"].values()):
                self._recommend(fits)
        elif stage == "target":
            self.results["recommendation"] = fits.recommendation()

    def _lr_sweep_done(self, probe: int, fits: Fits) -> None:
        """A round of `probe`'s sweep is in: extend it past an edge best LR, or close its LR
        stage; once every probe's is closed, issue every probe's DDO runs (in probe order)."""
        cfg = self.cfg
        grid = self.lr_grids[probe]
        side = _edge_side(fits.lr_best(probe), grid)
        if side is not None and cfg.lr_extend > 0 and len(grid) >= 2:
            if self.lr_rounds[probe] < cfg.lr_extend_rounds:
                new = _extend(grid, side, cfg.lr_extend)
                self.lr_rounds[probe] += 1
                self.lr_grids[probe] = sorted(grid + new)
                self.lr_extra += len(new)
                self._enqueue(f"lr/{probe}", lr_sweep(probe, cfg.base_weights, new, cfg.seed))
                return
            fits.note(f"LR sweep at {probe:.4g} tokens: best LR still at the "
                      f"{'smallest' if side == 'low' else 'largest'} of {len(grid)} swept after "
                      f"{cfg.lr_extend_rounds} extension round(s); its optimum is not bracketed")
        self.lr_open.discard(probe)
        if self.lr_open:
            return
        for p in cfg.probes:
            self._enqueue(f"ddo/{p}", self._ddo_specs(p, fits.lr_for))

    def _refine(self, probe: int, round_: int, optimum: Mapping[str, Any], fits: Fits) -> bool:
        """Enqueue round `round_` + 1 at `probe`, centred at `optimum`, unless the rounds are
        spent or the optimum settled (search/refine.py). True when a round was enqueued."""
        cfg = self.cfg
        if round_ >= cfg.rounds:
            return False
        centre = self.centres.get(probe, dict(cfg.base_weights))
        gain = self._centre_ratio(probe, round_) - float(optimum.get("objective_predicted_ratio", 1.0))
        if not keep_refining(centre, optimum["weights"], gain):
            fits.note(f"DDO at {probe:.4g} tokens: no round {round_ + 1}, the optimum settled (moved "
                      f"< {MOVED} in every weight, or a predicted gain below {GAIN:.0e})")
            return False
        self.centres[probe] = dict(optimum["weights"])
        specs = [replace(s, lr=fits.lr_for(s.budget)) for s in refinement_specs(
            probe, optimum["weights"], cfg.down, cfg.up, cfg.design, round_ + 1, cfg.seed)]
        self._enqueue(f"ddo/{probe}/r{round_ + 1}", specs)
        return True

    def _centre_ratio(self, probe: int, round_: int) -> float:
        """Observed final loss of round `round_`'s centre run over the base run's (1 in round 1)."""
        base = self.rows.get(f"ddo/{probe:.4g}/base")
        centre = self.rows.get(f"ddo/{probe:.4g}/r{round_}/base") if round_ > 1 else base
        if not base or not centre:
            return 1.0
        return _final_loss(centre) / _final_loss(base)

    def _recommend(self, fits: Fits) -> None:
        cfg = self.cfg
        rec = fits.recommendation()
        self.results["recommendation"] = rec
        if cfg.target_seeds <= 0:
            return
        names = list(cfg.base_weights)
        smallest = self.results["ddo"][min(p for p, o in self.results["ddo"].items() if o)]["weights"]
        arms = {"projected": rec["weights"], "uniform": {d: 1 / len(names) for d in names},
                "small-optimum": smallest}
        lr = float(rec["lr"]) if rec.get("lr") else fits.lr_for(cfg.target)
        specs = [TrialSpec(f"target/{arm}/{seed}", "target", cfg.target, weights, lr, seed, None,
                           {"arm": arm})
                 for arm, weights in arms.items() for seed in range(cfg.seed, cfg.seed + cfg.target_seeds)]
        self._enqueue("target/all", specs)


def _final_loss(rows: list[dict]) -> float:
    """A run's last `loss` (the mean of its `loss.<domain>` values when it reports no `loss`)."""
    last = rows[-1]
    if "loss" in last:
        return float(last["loss"])
    per_domain = [float(v) for k, v in last.items() if k.startswith("loss.")]
    return sum(per_domain) / len(per_domain)


def _edge_side(best: float | None, grid: Sequence[float]) -> str | None:
    """"low" / "high" when the best observed LR is the smallest / largest swept (failed LRs
    included: a diverged LR above the best brackets it), else None."""
    if best is None or not grid:
        return None
    if math.isclose(best, grid[0], rel_tol=1e-9):
        return "low"
    if math.isclose(best, grid[-1], rel_tol=1e-9):
        return "high"
    return None


def _extend(grid: Sequence[float], side: str, n: int) -> list[float]:
    """n LRs past the `side` end of the sorted `grid`, continuing the log spacing of its last two."""
    if side == "high":
        ratio = grid[-1] / grid[-2]
        return [float(grid[-1] * ratio ** k) for k in range(1, n + 1)]
    ratio = grid[1] / grid[0]
    return [float(grid[0] / ratio ** k) for k in range(1, n + 1)]


class DDOSearcher(PickledState, Searcher):
    """Tune adapter over `DDOPlan`; the predictor actor is looked up by name, so this pickles."""

    def __init__(self, plan: DDOPlan, predictor_name: str, metric: str = "loss",
                 mode: str = "min", output: str | None = None) -> None:
        super().__init__(metric=metric, mode=mode)
        self.plan = plan
        self.predictor_name = predictor_name
        self.output = output  # output store: finished trials' rows, replayed on --resume
        self._store = Store(output) if output else None  # opened once: suggest reads it per trial
        self._partial: dict[str, list[dict]] = {}
        self.replayed = 0  # trials taken from done/ records instead of being trained again
        if not plan.queue and not plan.done and not plan.in_flight:
            plan.start()

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True

    def _fits(self) -> Fits:
        from autoscale_ray.predictor import PredictorClient

        return PredictorClient(self.predictor_name)

    def suggest(self, trial_id: str):
        # a trial recorded as finished in the output (a resumed search) is replayed from its
        # done/ record here, without a Tune trial; the first one not recorded is issued
        while not self.plan.finished:
            if STOPPING.is_set():
                return None
            spec = self.plan.next_spec(trial_id)
            if spec is None:
                return None
            rows = read_done(self._store, spec.key) if self._store else None
            if rows is None:
                return spec.to_config()
            self.replayed += 1
            self.plan.complete(trial_id, rows, True, self._fits())
        return Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if "tokens" in result:
            self._partial.setdefault(trial_id, []).append(dict(result))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        rows = self._partial.pop(trial_id, [])
        if result and "tokens" in result:
            rows.append(dict(result))
        # a trial restored or replayed after a restart reports some evaluations again: keep one each
        rows = sorted({float(r["tokens"]): r for r in rows}.values(), key=lambda r: float(r["tokens"]))
        status = (result or {}).get("status", "ok")
        ok = not error and bool(rows) and status not in ("diverged", "failed")
        spec = self.plan.in_flight.get(trial_id)
        if STOPPING.is_set() and (spec is None or not rows or
                                  float(rows[-1]["tokens"]) < 0.9 * float(spec.budget)):
            return  # cut short by the stop: not finished, so --resume trains it again
        if ok and spec is not None and self._store:
            write_done(self._store, spec.key, rows)
        try:
            self.plan.complete(trial_id, rows, ok, self._fits())
        except Exception:  # an exception in a searcher hook would end the whole experiment
            log.exception("searcher could not process trial %s; the search stops", trial_id)
            self.plan.finished = True

    def get_state(self) -> dict:
        return {"plan": self.plan, "partial": self._partial}

    def set_state(self, state: dict) -> None:
        # Trials in flight at the snapshot are re-run by Tune under the same ids, so `in_flight` stays.
        self.plan = state["plan"]
        self._partial = state["partial"]
        try:  # a resumed search has a fresh predictor: give it every finished trial again
            fits = self._fits()
            for key, rows in self.plan.rows.items():
                fits.add(key, rows, self.plan.meta.get(key))
        except Exception:
            log.exception("could not refill the predictor after restore")
