"""The predictor: holds the search's runs table and answers with the fitted laws.

`Predictor` is plain Python (testable without Ray); in a search it runs as a named Ray actor
(`start_predictor`) that every completed trial is sent to, and the searcher asks it through
`PredictorClient`: the LR for a horizon (Bjorck et al. LR*(D) law), the DDO optimum at a probe
budget (AutoScale's DDO), and the recommendation at the target (AutoScale's projection + LR law +
per-domain L(D) fits of the expected losses), each number with its interval and the evidence of
how far to trust it (`autoscale_ray.fits.trust`).
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import time
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from autoscale_ray.errors import BadInput
from autoscale_ray.laws.epochs import MAX_EPOCHS, cap_epochs
from autoscale_ray.laws.loss_law import bootstrap_predictions, fit_loss_law
from autoscale_ray.laws.lr_horizon import BETA_BJORCK, fit_horizon, fit_lr_horizon, lr_prior_interval
from autoscale_ray.laws.noise import DEFAULT_LEVEL, percentile_interval, solve_each
from autoscale_ray.mixture import Mixture
from autoscale_ray.runs import LOSS_PREFIX, WEIGHT_PREFIX, validate
from autoscale_ray.fits.budget_law import NAME as BUDGET_LAW, budget_law_alternative, pooled_noise_sd, widen
from autoscale_ray.fits.ddo import ddo
from autoscale_ray.fits.ddo_models import with_other_surrogate
from autoscale_ray.fits.parallel import ray_solve_all
from autoscale_ray.fits.project import project
from autoscale_ray.fits.mixlaw_search import held_out_line, mixlaw_answer
from autoscale_ray.fits.swarm import CHOOSING, at_bound as swarm_at_bound, choose_mixture
from autoscale_ray.fits.trust import mixlaw_trust, swarm_trust, trust_summary

log = logging.getLogger("autoscale_ray")

BETA_PRIOR = BETA_BJORCK  # Bjorck et al.'s LR-horizon exponent, used until two horizons are fitted
META = ("key", "stage", "probe", "arm", "round")
ANCHOR = 3.0  # a swept horizon within this factor of a run's budget sets the run's LR (lr_for)
LOSS_DRAWS = 60  # bootstrap replicates of each domain's L(D) for the expected losses' intervals


def _timed(method):
    """Add the method's seconds to `self.fit_seconds`: a search's slots wait on these fits (the
    searcher asks for them in Tune's event loop), so the evidence reports them apart from training."""
    @functools.wraps(method)
    def timed(self, *args, **kwargs):
        if self._timing:  # inside another timed fit (recommendation fits missing optima)
            return method(self, *args, **kwargs)
        started, self._timing = time.perf_counter(), True
        try:
            return method(self, *args, **kwargs)
        finally:
            self.fit_seconds += time.perf_counter() - started
            self._timing = False
    return timed


class Predictor:
    def __init__(self, domains: Sequence[str], target: int, *, probes: Sequence[int],
                 lr: float | None = None, min_multiplier: float = 0.2, metric: str = "mean-loss",
                 min_weight: float = 0.0, base_weights: Mapping[str, float] | None = None,
                 design: str = "auto", down: float = 0.2, up: float = 3.0,
                 batch_tokens: int | None = None, surrogate: str = "paper",
                 available: Mapping[str, float] | None = None, max_epochs: float = MAX_EPOCHS,
                 level: float = DEFAULT_LEVEL, loss_draws: int = LOSS_DRAWS,
                 compare_models: bool = True, method: str = "autoscale",
                 fixed_weights: Mapping[str, float] | None = None, seed: int = 0,
                 projector: str = "autoscale", target_params: float | None = None,
                 bootstrap: int | None = None, parallel_draws: bool = False) -> None:
        self.domains = tuple(domains)
        # the bootstraps' refits on Ray tasks (the actor does this), same rows as in order
        self.solve_all = ray_solve_all if parallel_draws else solve_each
        # autoscale: DDO optima across budgets; mixing-law: the law over probe models (fits/mixlaw_search.py)
        self.projector = projector
        self.target_params = target_params
        self.method = method  # autoscale (DDO + projection) or a swarm method (fits/swarm.py)
        self.fixed_weights = dict(fixed_weights) if fixed_weights else None
        self.seed = int(seed)
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
        # tokens per domain (corpus or config): no domain repeats over max_epochs at the target
        self.available = dict(available) if available else None
        self.max_epochs = float(max_epochs)
        self.level = float(level)  # of every interval the recommendation reports
        self.loss_draws = int(loss_draws)  # 0: the expected losses without intervals
        self.bootstrap = bootstrap  # redraws of every fit's interval; None: each fit's own default
        self.compare_models = compare_models  # fit the other DDO surrogate as model uncertainty
        self.rows: list[dict] = []
        self.optima: dict[int, Mixture] = {}
        self.notes: list[str] = []
        self._version = 0  # bumped by every add: a recommendation is computed once per state
        self._cached: tuple[tuple[int, int], dict[str, Any]] | None = None
        self.fit_seconds = 0.0  # spent in the fits (ddo_optimum, recommendation)
        self._timing = False

    # -- data -------------------------------------------------------------------------------
    def add(self, key: str, rows: list[dict], meta: Mapping[str, Any] | None = None) -> None:
        """Add a completed trial's evaluation rows (one per checkpoint)."""
        self.rows = [r for r in self.rows if r["key"] != key]  # a retried trial replaces its rows
        self._version += 1
        stage = key.split("/", 1)[0]
        for row in rows:
            keep = {k: v for k, v in row.items()
                    if k in ("run_id", "tokens", "budget", "params", "lr", "seed", "status", "loss",
                             "node", "device")
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
            return fit_lr_horizon(final["lr"], final["loss"], final["budget"], level=self.level)
        except BadInput as exc:
            self._note(f"LR law not fitted ({exc}); using per-horizon optima")
            return None

    def lr_for(self, budget: float) -> float:
        """Peak LR for a run of `budget` tokens. Near a swept horizon (within ANCHOR x), that
        horizon's own vertex moved along the fitted law's D^-beta: a probe's runs train at the LR
        its sweep measured, not at the law's value there, which the prior on beta pulls away from
        it (seen in the demo: 2.9e-3 against a measured 2.2e-3 at 3e5 tokens, 4.4e-3 against
        1.7e-2 at 1e5). Far from every
        horizon (the target), the fitted LR*(D) law; with one swept horizon, its vertex moved along
        D^-0.32 (Bjorck et al.); without a sweep, the configured LR."""
        f = self.frame("lr")
        if f.empty:
            if self.fixed_lr is None:
                raise RuntimeError("no LR sweep and no fixed LR in the configuration")
            return float(self.fixed_lr)
        law = self.lr_law()
        if law is not None:
            anchor = min((h for h in law.horizons if h.used and max(budget / h.tokens, h.tokens / budget) <= ANCHOR),
                         key=lambda h: abs(math.log(budget / h.tokens)), default=None)
            if anchor is not None:
                return float(anchor.lr_star * (budget / anchor.tokens) ** -law.beta)
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

    @_timed
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
        table = self._table(f, f"ddo {probe}")
        fit = dict(base=str(base.iloc[0]) if len(base) else None, metric=self.metric,
                   min_multiplier=self.min_multiplier, design=self.design, down=self.down,
                   up=self.up, design_runs=set(first["run_id"].astype(str)))
        mix = ddo(table, surrogate=self.surrogate, solve_all=self.solve_all, **self._draws("bootstrap"), **fit)
        if self.compare_models:  # the other surrogate, where equally good, widens the intervals
            mix = with_other_surrogate(table, mix, **fit)
        if mix.extra.get("contradicted"):
            self._note(f"DDO at {probe:.4g} tokens: the runs of {', '.join(mix.extra['contradicted'])} "
                       "contradict the surrogate (fewer tokens helped or more hurt, beyond the noise "
                       "the replicates show); their shift is not extrapolated to the target")
        self.optima[probe] = mix
        return mix.to_json()

    def expected_losses(self, tokens: float, weights: Mapping[str, float],
                        draws: np.ndarray | None = None) -> dict[str, Any]:
        """Each domain's loss at the target for the recommended mixture: L_i(D_i) = E_i + B_i /
        D_i^beta_i in the domain's OWN tokens D_i = w_i D, fitted on every checkpoint of every DDO
        (and verify) run, which move each domain's tokens 0.2x-3x, and evaluated at D_i = w_i x
        target. Interval: a bootstrap over runs (a run's checkpoints resampled together), replicate
        r evaluated at draw r of the projected weights when given (`draws`, domains' order)."""
        f = self.frame()
        f = f[f["stage"].isin(("ddo", "verify", "swarm"))] if len(f) else f
        out: dict[str, Any] = {"source": "own-tokens", "runs": sorted(f["key"].unique()) if len(f) else [],
                               "per_domain": {}, "interval": {}, "level": self.level}
        for i, d in enumerate(self.domains):
            col, wcol = LOSS_PREFIX + d, WEIGHT_PREFIX + d
            if col not in f.columns or wcol not in f.columns:
                continue
            pts = f[(f["tokens"] > 0) & np.isfinite(f[col]) & (f[wcol] > 0)]
            if pts["key"].nunique() < 3 or len(pts) < 4:
                continue
            own = (pts[wcol] * pts["tokens"]).to_numpy(float)
            loss = pts[col].to_numpy(float)
            if weights[d] * tokens < 0.1 * own.min():  # L(D) far below the tokens it was fitted on
                self._note(f"{d} gets {weights[d] * tokens:.3g} tokens at the target, under a tenth "
                           f"of the fewest its runs saw ({own.min():.3g}): its loss is not predicted")
                continue
            try:
                law = fit_loss_law(loss, own)
            except BadInput as exc:
                self._note(f"L(D) for {d} not fitted: {exc}")
                continue
            point = float(law.predict(None, weights[d] * tokens))
            out["per_domain"][d] = point
            if self.loss_draws <= 0:
                continue
            at = np.full(self.loss_draws, weights[d] * tokens)
            if draws is not None and len(draws):
                at = draws[np.arange(self.loss_draws) % len(draws), i] * tokens
            preds = bootstrap_predictions(law, loss, own, pts["key"].to_numpy(), at, seed=i)
            lo, hi = percentile_interval(preds[:, None], self.level, np.array([[point]]))
            out["interval"][d] = [float(lo[0]), float(hi[0])]
        return out

    def lr_interval(self, law: Any) -> tuple[list[float], str]:
        """The target LR's interval and how it was found: the LR law's own ("law"), or, when the
        law has none or there is no law, the nearest horizon's vertex moved along D^-beta with
        Bjorck et al.'s exponent uncertain ("prior", laws/lr_horizon.lr_prior_interval)."""
        if law is not None:
            lo, hi = law.interval(self.target)
            if math.isfinite(lo) and math.isfinite(hi):
                return [float(lo), float(hi)], "law"
        f = self.frame("lr")
        if f.empty:
            return [math.nan, math.nan], "fixed"
        final = self._table(f, "lr sweep").final()
        horizon = float(max(final["budget"].unique()))
        sel = final[final["budget"] == horizon]
        fit = fit_horizon(sel["lr"].to_numpy(float), sel["loss"].to_numpy(float), horizon)
        lrs = np.log(np.sort(sel["lr"].unique()))
        step = float(np.median(np.diff(lrs))) if len(lrs) > 1 else math.log(10.0)
        centre = fit.lr_star if fit.used else float(sel.loc[sel["loss"].idxmin(), "lr"])
        se = fit.log_lr_star_se if fit.used else math.nan
        beta_sd = law.beta_se if law is not None and math.isfinite(law.beta_se) else None
        lo, hi = lr_prior_interval(centre, horizon, self.target, se, step, self.level,
                                   **({"beta_sd": beta_sd} if beta_sd is not None else {}))
        lr = float(law.predict(self.target)) if law is not None else self.lr_for(self.target)
        return [min(lo, lr), max(hi, lr)], "prior"

    def fit_time(self) -> float:
        """Seconds spent in the fits so far (a client reads the actor's attribute through this)."""
        return self.fit_seconds

    @_timed
    def recommendation(self) -> dict[str, Any]:
        """The answer for the runs so far; the same runs and notes give the cached answer (the
        searcher asks when the last probe is fitted, the pipeline again at the end)."""
        if self._cached is not None and self._cached[0] == (self._version, len(self.notes)):
            return copy.deepcopy(self._cached[1])
        if self.projector == "mixing-law":
            rec = self._mixlaw_recommendation()
        else:
            rec = self._recommendation() if self.method == "autoscale" else self._swarm_recommendation()
        self._cached = ((self._version, len(self.notes)), copy.deepcopy(rec))
        return rec

    def _recommendation(self) -> dict[str, Any]:
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
            # no floor beyond the configured min_weight: DDO's bound at a probe says nothing
            # about the optimum at the target, and what stays at it is reported (trust)
            mix = project(sources, self.target, min_weight=self.min_weight,
                          available=self.available, max_epochs=self.max_epochs, level=self.level)
            intervals, draws = mix.extra["intervals"], np.asarray(mix.extra["bootstrap_weights"])
            capped, epochs = mix.extra["capped"], mix.extra["epochs"]
            budget_law = self._budget_law(sources, mix)
            intervals = widen(intervals, budget_law)
        else:
            mix = sources[0]
            budget_law = {"name": BUDGET_LAW, "used": False, "reason": "not fitted: one probe budget"}
            self._note("one probe budget only: the recommendation is its DDO optimum, not projected")
            weights, capped, epochs = self._capped(mix.weights)
            mix = Mixture(tokens=float(self.target), weights=weights, at_bound=mix.at_bound, extra=mix.extra)
            intervals, draws = mix.extra.get("intervals", {}), np.asarray(mix.extra.get("bootstrap_weights") or [])
        law = self.lr_law()
        lr = float(law.predict(self.target)) if law else self.lr_for(self.target)
        lr_interval, lr_method = self.lr_interval(law)
        if self.batch_tokens is not None:
            self._note(f"the LR holds for the proxies' global batch of {self.batch_tokens} tokens: "
                       f"LR*(D) is fitted at a fixed batch size (Bjorck et al.); a target run with "
                       f"another batch needs its LR re-derived")
        at_bound = sorted({d for m in sources for d in m.at_bound} | set(mix.at_bound))
        expected = self.expected_losses(self.target, mix.weights, draws if draws.ndim == 2 else None)
        probe_optima = {str(p): self.optima[p].to_json() for p in probes}
        trust = trust_summary(probe_optima=probe_optima, weights=dict(mix.weights),
                              weights_interval=intervals, at_bound=at_bound, capped=capped,
                              epochs=epochs, max_epochs=self.max_epochs, lr_law=law,
                              lr_method=lr_method, target=self.target, probes=probes,
                              rounds=self._rounds(), level=self.level, budget_law=budget_law)
        for line in trust["at_bound_lines"]:
            self._note(line)
        return {
            "tokens": self.target, "weights": dict(mix.weights), "weights_interval": intervals,
            "interval_level": self.level, "at_bound": at_bound, "capped": capped,
            "epochs": epochs, "max_epochs": self.max_epochs,
            "available_tokens": self.available,
            "lr": lr, "lr_interval": lr_interval, "lr_interval_method": lr_method,
            "lr_batch_tokens": self.batch_tokens,
            "expected_loss": expected, "expected_loss_interval": expected["interval"],
            "trust": trust,
            "evidence": {
                "probe_optima": probe_optima,
                "projection": {k: mix.extra.get(k) for k in ("exponent", "ratios", "rmse_log",
                                                              "extrapolation_factor", "warnings",
                                                              "model_alternatives")},
                "budget_law": budget_law,
                "lr_law": None if law is None else law.to_json(),
                "lr_horizons": self.lr_horizons(),
                "trials": sorted({r["key"] for r in self.rows}),
                "notes": list(dict.fromkeys(self.notes)),
            },
        }

    def _budget_law(self, sources: Sequence[Mixture], projected: Mixture) -> dict[str, Any]:
        """The budget transfer law over every probe's DDO runs (fits/budget_law.py): a second
        extrapolation whose interval joins the projected weights' where it fits the runs."""
        if not self.compare_models:
            return {"name": BUDGET_LAW, "used": False, "reason": "not compared (compare_models off)"}
        f = self.frame("ddo")
        f = f[f["probe"].isin([p for p in self.probes if p in self.optima])]
        alt = budget_law_alternative(
            self._table(f, "ddo, every probe"), self.domains, self.target,
            noise_sd=pooled_noise_sd([s.extra for s in sources], self.domains), metric=self.metric,
            available=self.available, max_epochs=self.max_epochs, level=self.level, seed=self.seed,
            starts=[np.array([projected.weights[d] for d in self.domains])], solve_all=self.solve_all,
            **self._draws("draws"))
        if not alt["used"]:
            self._note(f"the budget transfer law is left out of the intervals: {alt['reason']}")
        return alt

    def _capped(self, weights: Mapping[str, float]) -> tuple[dict[str, float], list[str], dict[str, float]]:
        """A mixture used unprojected at the target, under the data cap (laws/epochs.py): the
        weights, the domains the cap binds, each known domain's epochs."""
        cap = cap_epochs(np.array([weights[d] for d in self.domains]), self.target,
                         np.array([float((self.available or {}).get(d, np.inf)) for d in self.domains]),
                         self.max_epochs)
        capped = [d for d, c in zip(self.domains, cap.capped) if c and self.available]
        epochs = {d: float(e) for d, e in zip(self.domains, cap.epochs) if d in (self.available or {})}
        return dict(zip(self.domains, map(float, cap.weights))), capped, epochs

    def _swarm_recommendation(self) -> dict[str, Any]:
        """A swarm method's answer (fits/swarm.py): its mixture from the runs at the swarm's budget,
        used unchanged at the target (capped by the data there), the LR moved to the target, the
        same keys as DDO's answer."""
        f = self.frame("swarm")
        if f.empty:
            raise RuntimeError("no completed swarm runs: see the warnings")
        budget = float(f["budget"].max())
        choice = choose_mixture(self._table(f, "swarm"), self.method, metric=self.metric,
                                fixed=self.fixed_weights, level=self.level, seed=self.seed,
                                **self._draws("draws"))
        weights, capped, epochs = self._capped(choice.weights)
        law = self.lr_law()
        lr, lr_interval, lr_method = self._swarm_lr(f, budget)
        # the data cap may move the point: its interval holds the capped point too
        interval = {d: [min(lo, weights[d]), max(hi, weights[d])] for d, (lo, hi) in choice.interval.items()}
        bound = swarm_at_bound(choice) if self.method in CHOOSING else []
        expected = self.expected_losses(self.target, weights)
        swarm = {"method": self.method, "budget": budget, **choice.to_json()}
        trust = swarm_trust(swarm=swarm, weights=weights, weights_interval=interval,
                            at_bound=bound, capped=capped, epochs=epochs, max_epochs=self.max_epochs,
                            lr_method=lr_method, target=self.target, budget=budget, level=self.level)
        for line in trust["at_bound_lines"]:
            self._note(line)
        return {
            "method": self.method, "tokens": self.target, "weights": weights,
            "weights_interval": interval, "interval_level": self.level, "at_bound": bound,
            "capped": capped, "epochs": epochs, "max_epochs": self.max_epochs,
            "available_tokens": self.available, "lr": lr, "lr_interval": lr_interval,
            "lr_interval_method": lr_method, "lr_batch_tokens": self.batch_tokens,
            "expected_loss": expected, "expected_loss_interval": expected["interval"], "trust": trust,
            "evidence": {"probe_optima": {}, "swarm": swarm, "projection": None,
                         "lr_law": None if law is None else law.to_json(),
                         "lr_horizons": self.lr_horizons(),
                         "trials": sorted({r["key"] for r in self.rows}),
                         "notes": list(dict.fromkeys(self.notes))},
        }

    def _mixlaw_recommendation(self) -> dict[str, Any]:
        """The mixing-law projector's answer: the law over every probe model's runs, its mixture
        at (target_params, target budget) under the data cap; the same keys as DDO's answer plus
        `projector`, `target_params` and `evidence.mixing_law` (the form, its held-out error)."""
        f = self.frame("mixlaw")
        if f.empty:
            raise RuntimeError("no completed probe runs: see the warnings")
        ans = mixlaw_answer(validate(f, "<search: mixing law>", require=["loss", "params"]),
                            params=float(self.target_params), tokens=float(self.target),
                            available=self.available, max_epochs=self.max_epochs, level=self.level,
                            seed=self.seed, solve_all=self.solve_all, **self._draws("bootstrap"))
        self._note(held_out_line(ans.fit))
        if ans.fit["bootstrap"] < ans.fit["bootstrap_drawn"]:
            self._note(f"mixing law: {ans.fit['bootstrap_drawn'] - ans.fit['bootstrap']} of "
                       f"{ans.fit['bootstrap_drawn']} bootstrap resamples could not be fitted (too few "
                       "distinct mixtures) or predicted no finite loss, and are left out of the intervals"
                       + ("; no intervals" if ans.fit["bootstrap"] < 2 else ""))
        trust = mixlaw_trust(fit=ans.fit, noise=ans.noise, weights_interval=ans.interval,
                             at_zero=ans.at_zero, capped=ans.capped, epochs=ans.epochs,
                             max_epochs=self.max_epochs, level=self.level)
        for line in trust["at_bound_lines"]:
            self._note(line)
        lr = float(self.fixed_lr)
        self._note(f"the LR is the configured search.lr ({lr:.3g}) of every probe model; the "
                   "mixing-law projector does not move it to the target model")
        expected = {"source": "mixing-law", "runs": sorted(f["key"].unique()), "per_domain": ans.expected,
                    "interval": ans.expected_interval, "level": self.level,
                    "objective": ans.objective, "objective_interval": ans.objective_interval}
        return {
            "method": self.method, "projector": "mixing-law", "tokens": self.target,
            "target_params": float(self.target_params), "weights": ans.weights,
            "weights_interval": ans.interval, "interval_level": self.level, "at_bound": ans.at_zero,
            "capped": ans.capped, "epochs": ans.epochs, "max_epochs": self.max_epochs,
            "available_tokens": self.available, "lr": lr, "lr_interval": [math.nan, math.nan],
            "lr_interval_method": "fixed", "lr_batch_tokens": self.batch_tokens,
            "expected_loss": expected, "expected_loss_interval": expected["interval"], "trust": trust,
            "evidence": {"probe_optima": {}, "mixing_law": {**ans.fit, "noise": ans.noise},
                         "projection": None, "lr_law": None, "lr_horizons": [],
                         "trials": sorted({r["key"] for r in self.rows}),
                         "notes": list(dict.fromkeys(self.notes))},
        }

    def _swarm_lr(self, f: pd.DataFrame, budget: float) -> tuple[float, list[float], str]:
        """The target LR of a swarm: from its LR sweep (the nearest horizon moved along D^-0.32),
        the fixed LR, or (tpe searching LR) its best run's LR moved the same way."""
        lrs = f["lr"].dropna().unique() if "lr" in f.columns else []
        if not self.frame("lr").empty or len(lrs) <= 1:
            lr = self.lr_for(self.target)
            interval, method = self.lr_interval(None)
            return lr, interval, method
        final = self._table(f, "swarm").final()
        centre = float(final.loc[final["loss"].idxmin(), "lr"])
        step = float(np.median(np.diff(np.log(np.sort(lrs)))))
        lo, hi = lr_prior_interval(centre, budget, self.target, math.nan, step, self.level)
        return float(centre * (self.target / budget) ** -BETA_PRIOR), [lo, hi], "prior"

    def _draws(self, keyword: str) -> dict[str, int]:
        """The redraws to pass a fit as `keyword`: none (its default) unless the search sets them."""
        return {} if self.bootstrap is None else {keyword: int(self.bootstrap)}

    def _rounds(self) -> dict[str, int]:
        """DDO rounds run per probe."""
        f = self.frame("ddo")
        if f.empty or "round" not in f.columns:
            return {str(p): 1 for p in self.probes}
        return {str(int(p)): int(g["round"].fillna(1).max()) for p, g in f.groupby("probe")}

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
    return actor_cls.options(name=name, get_if_exists=True, scheduling_strategy=here).remote(
        **{"parallel_draws": True, **kwargs})
