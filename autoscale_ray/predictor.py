"""The predictor: holds the search's runs table and answers with the fitted laws.

`Predictor` is plain Python (testable without Ray); in a search it runs as a named Ray actor
(`start_predictor`) that every completed trial is sent to, and the searcher asks it through
`PredictorClient`: the LR for a horizon (Bjorck et al. LR*(D) law), the DDO optimum at a probe
budget (AutoScale's DDO), and the recommendation at the target (AutoScale's projection + LR law +
per-domain L(D) fits of the expected losses).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.loss_law import fit_loss_law
from autoscale_ray.laws.lr_horizon import BETA_BJORCK, fit_horizon, fit_lr_horizon
from autoscale_ray.mixture import Mixture
from autoscale_ray.runs import LOSS_PREFIX, WEIGHT_PREFIX, validate
from autoscale_ray.fits.ddo import ddo
from autoscale_ray.fits.project import project

log = logging.getLogger("autoscale_ray")

BETA_PRIOR = BETA_BJORCK  # Bjorck et al.'s LR-horizon exponent, used until two horizons are fitted
META = ("key", "stage", "probe", "arm", "round")


class Predictor:
    def __init__(self, domains: Sequence[str], target: int, *, probes: Sequence[int],
                 lr: float | None = None, min_multiplier: float = 0.2, metric: str = "mean-loss",
                 min_weight: float = 0.0, base_weights: Mapping[str, float] | None = None,
                 design: str = "auto", down: float = 0.2, up: float = 3.0,
                 batch_tokens: int | None = None, surrogate: str = "paper") -> None:
        self.domains = tuple(domains)
        self.base_weights = dict(base_weights or {d: 1 / len(self.domains) for d in self.domains})
        self.target = int(target)
        self.probes = tuple(sorted(int(p) for p in probes))
        self.fixed_lr = lr
        self.min_multiplier = min_multiplier
        self.metric = metric
        self.min_weight = min_weight
        # the search's DDO design, so the fit never has to guess it from the runs
        self.design, self.down, self.up = design, down, up
        # the proxies' global batch (tokens): LR*(D) is fitted at it, so the LR holds for it
        self.batch_tokens = None if batch_tokens is None else int(batch_tokens)
        self.surrogate = surrogate  # DDO's surrogate: "paper" (additive) or "transfer"
        self.rows: list[dict] = []
        self.optima: dict[int, Mixture] = {}
        self.notes: list[str] = []

    # -- data -------------------------------------------------------------------------------
    def add(self, key: str, rows: list[dict], meta: Mapping[str, Any] | None = None) -> None:
        """Add a completed trial's evaluation rows (one per checkpoint)."""
        self.rows = [r for r in self.rows if r["key"] != key]  # a retried trial replaces its rows
        stage = key.split("/", 1)[0]
        for row in rows:
            keep = {k: v for k, v in row.items()
                    if k in ("run_id", "tokens", "budget", "params", "lr", "seed", "status", "loss",
                             "node")
                    or k.startswith((WEIGHT_PREFIX, LOSS_PREFIX, "epochs."))}
            keep.update({"key": key, "stage": stage, **dict(meta or {})})
            self.rows.append(keep)

    def frame(self, stage: str | None = None, probe: int | None = None) -> pd.DataFrame:
        f = pd.DataFrame(self.rows)
        if f.empty:
            return f
        # one order whatever order the trials finished (or were replayed) in: the fits sum in it
        f = f.sort_values(["key", "tokens"], kind="stable")
        if stage is not None:
            f = f[f["stage"] == stage]
        if probe is not None:
            f = f[f["probe"] == probe]
        return f.reset_index(drop=True)

    def _table(self, frame: pd.DataFrame, what: str):
        return validate(frame, f"<search: {what}>", require=["loss"])

    # -- questions --------------------------------------------------------------------------
    def lr_law(self):
        """LR*(D) over the complete LR sweeps, or None with fewer than two usable horizons."""
        f = self.frame("lr")
        if f.empty or f["probe"].nunique() < 2:
            return None
        final = self._table(f, "lr sweep").final()
        try:
            return fit_lr_horizon(final["lr"], final["loss"], final["budget"])
        except BadInput as exc:
            self._note(f"LR law not fitted ({exc}); using per-horizon optima")
            return None

    def lr_for(self, budget: float) -> float:
        """Peak LR for a run of `budget` tokens: the fitted LR*(D) law; with one swept horizon, its
        vertex moved along D^-0.32 (Bjorck et al.); without a sweep, the configured LR."""
        f = self.frame("lr")
        if f.empty:
            if self.fixed_lr is None:
                raise RuntimeError("no LR sweep and no fixed LR in the configuration")
            return float(self.fixed_lr)
        law = self.lr_law()
        if law is not None:
            return float(law.predict(budget))
        final = self._table(f, "lr sweep").final()
        horizon = min(final["budget"].unique(), key=lambda d: abs(math.log(d / budget)))
        sel = final[final["budget"] == horizon]
        fit = fit_horizon(sel["lr"].to_numpy(float), sel["loss"].to_numpy(float), float(horizon))
        if fit.used:
            lr = fit.lr_star
        else:
            lr = float(sel.loc[sel["loss"].idxmin(), "lr"])
            self._note(f"LR sweep at {horizon:.4g} tokens did not bracket its optimum ({fit.reason});"
                       f" using its best observed LR {lr:.3g}")
        return float(lr * (budget / horizon) ** -BETA_PRIOR)

    def lr_best(self, probe: int) -> float | None:
        """The LR of `probe`'s sweep with the lowest final loss (mean over replicates), None
        before any of its runs is in. Ties go to the smaller LR (the frame's order is fixed)."""
        f = self.frame("lr", probe)
        if f.empty:
            return None
        final = self._table(f, f"lr sweep {probe}").final()
        mean = final.groupby("lr", sort=True)["loss"].mean()
        return float(mean.idxmin())

    def lr_horizons(self) -> list[dict[str, Any]]:
        """Each swept horizon's quadratic fit (vertex LR*, whether the grid bracketed it)."""
        f = self.frame("lr")
        if f.empty:
            return []
        final = self._table(f, "lr sweep").final()
        horizons = []
        for horizon, sel in final.groupby("budget"):
            if sel["lr"].nunique() >= 3:
                fit = fit_horizon(sel["lr"].to_numpy(float), sel["loss"].to_numpy(float), float(horizon))
                horizons.append({"tokens": float(horizon), "lr_star": fit.lr_star, "used": fit.used,
                            "reason": fit.reason, "n_lrs": fit.n_lrs})
        return horizons

    def ddo_optimum(self, probe: int) -> dict[str, Any]:
        f = self.frame("ddo", probe)
        if f.empty:
            raise RuntimeError(f"no completed DDO runs at probe budget {probe}")
        # the first round is the perturbation design; later rounds (refinement) are fitted too
        first = f if "round" not in f.columns else f[f["round"].fillna(1).astype(int) == 1]
        designed = 2 * len(self.domains) + 1
        runs = first["key"].nunique()
        if runs < designed:
            self._note(f"DDO at {probe:.4g} tokens rests on {runs} of {designed} designed runs")
        base = first.loc[first["key"].str.endswith("/base"), "run_id"]
        mix = ddo(self._table(f, f"ddo {probe}"), base=str(base.iloc[0]) if len(base) else None,
                  metric=self.metric, min_multiplier=self.min_multiplier, design=self.design,
                  down=self.down, up=self.up, surrogate=self.surrogate,
                  design_runs=set(first["run_id"].astype(str)))
        if mix.extra.get("contradicted"):
            self._note(f"DDO at {probe:.4g} tokens: the runs of {', '.join(mix.extra['contradicted'])} "
                       "contradict the surrogate (fewer tokens helped or more hurt, beyond the noise "
                       "the replicates show); their shift is not extrapolated to the target")
        self.optima[probe] = mix
        return mix.to_json()

    def expected_losses(self, tokens: float) -> dict[str, Any]:
        """Per-domain L(D) = E + B/D^beta fitted on the checkpoints of the runs at each probe's
        optimum (`verify` runs) or, without those, of the base-mixture DDO runs."""
        source = "verify" if self.frame("verify").shape[0] else "ddo"
        f = self.frame(source)
        if source == "ddo":  # the base mixture: round 1's base runs (later rounds centre elsewhere)
            first = f["round"].fillna(1).astype(int) == 1 if "round" in f.columns else True
            f = f[f["key"].str.endswith("/base") & first]
        expected: dict[str, Any] = {"source": source, "runs": sorted(f["key"].unique()) if len(f) else []}
        losses = {}
        for d in self.domains:
            col = LOSS_PREFIX + d
            if col not in f.columns or len(f) < 4:
                continue
            pts = f[(f["tokens"] > 0) & np.isfinite(f[col])]
            try:
                law = fit_loss_law(pts[col].to_numpy(float), pts["tokens"].to_numpy(float))
                losses[d] = float(law.predict(None, tokens))
            except BadInput as exc:
                self._note(f"L(D) for {d} not fitted: {exc}")
        expected["per_domain"] = losses
        return expected

    def recommendation(self) -> dict[str, Any]:
        for p in self.probes:
            if p not in self.optima:
                try:
                    self.ddo_optimum(p)
                except BadInput as exc:
                    self._note(f"DDO at {p:.4g} tokens could not be fitted and is left out: {exc}")
        probes = [p for p in self.probes if p in self.optima]
        if not probes:
            raise RuntimeError("no probe budget has a DDO optimum: see the warnings")
        sources = [self.optima[p] for p in probes]
        if len(sources) >= 2:
            # DDO's bound says nothing about a domain's optimum (AutoScale): re-impose it at the
            # target, as the floor x_i >= min_multiplier on the base quantities
            floor = max(self.min_weight, self.min_multiplier * min(self.base_weights.values()))
            mix = project(sources, self.target, min_weight=floor)
        else:
            mix = sources[0]
            self._note("one probe budget only: the recommendation is its DDO optimum, not projected")
        law = self.lr_law()
        lr = float(law.predict(self.target)) if law else self.lr_for(self.target)
        interval = list(law.interval(self.target)) if law else [math.nan, math.nan]
        if self.batch_tokens is not None:
            self._note(f"the LR holds for the proxies' global batch of {self.batch_tokens} tokens: "
                       f"LR*(D) is fitted at a fixed batch size (Bjorck et al.); a target run with "
                       f"another batch needs its LR re-derived")
        at_bound = sorted({d for m in sources for d in m.at_bound} | set(mix.at_bound))
        return {
            "tokens": self.target, "weights": dict(mix.weights), "at_bound": at_bound,
            "lr": lr, "lr_interval": interval, "lr_batch_tokens": self.batch_tokens,
            "expected_loss": self.expected_losses(self.target),
            "evidence": {
                "probe_optima": {str(p): self.optima[p].to_json() for p in probes},
                "projection": {k: mix.extra.get(k) for k in ("exponent", "ratios", "rmse_log",
                                                              "extrapolation_factor", "warnings")},
                "lr_law": None if law is None else law.to_json(),
                "lr_horizons": self.lr_horizons(),
                "trials": sorted({r["key"] for r in self.rows}),
                "notes": list(dict.fromkeys(self.notes)),
            },
        }

    def note(self, text: str) -> None:
        """A warning for the recommendation's evidence (and the log)."""
        self._note(text)

    def _note(self, text: str) -> None:
        if text not in self.notes:
            log.warning(text)
            self.notes.append(text)


class PredictorClient:
    """The searcher's handle on the named predictor actor (looked up by name: pickle-safe)."""

    def __init__(self, name: str) -> None:
        import ray

        self._actor = ray.get_actor(name)

    def __getattr__(self, method: str):
        import ray

        remote = getattr(self._actor, method)
        return lambda *a, **kw: ray.get(remote.remote(*a, **kw))


def start_predictor(name: str, **kwargs: Any):
    """Start (or reconnect to) the named predictor actor. It takes no CPU from trials and lives on
    the driver's node (the head on a cluster), so losing a worker node never loses the fits."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    actor_cls = ray.remote(num_cpus=0)(Predictor)
    return actor_cls.options(name=name, get_if_exists=True, scheduling_strategy=here).remote(**kwargs)
