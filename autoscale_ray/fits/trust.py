"""How far to trust a recommendation: the measured noise, each domain's signal against it, the
intervals, the domains DDO left at its bound or the data caps, an LR that rests on the prior,
and the extrapolation factor; each with what to run to tighten it. Plain data for
recommendation.json and the report's first section."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from autoscale_ray.laws.noise import SNR_WITHIN_NOISE

PRIOR_SHARE = 0.5     # the LR law's beta rests on the prior when the prior carries over half its precision
WIDE = 0.15           # a weight interval wider than this cannot pin the domain's share


def trust_summary(*, probe_optima: Mapping[str, Mapping[str, Any]], weights: Mapping[str, float],
                  weights_interval: Mapping[str, Sequence[float]], at_bound: Sequence[str],
                  capped: Sequence[str], epochs: Mapping[str, float], max_epochs: float,
                  lr_law: Any, lr_method: str, target: float, probes: Sequence[int],
                  rounds: Mapping[str, int], level: float,
                  budget_law: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The trust section (module docstring) as a dict; `actions` say what would tighten it.
    `budget_law`: the second extrapolation (fits/budget_law.py); where it fits the runs and its
    optimum differs from the projection's, the gap is model uncertainty a line names."""
    actions: list[str] = []
    noise = {p: {k: o.get(k) for k in ("noise", "snr", "within_noise")}
             for p, o in probe_optima.items()}
    domains = list(weights)
    snr = {p: [v for v in (n["snr"] or {}).values() if v is not None] for p, n in noise.items()}
    measured = [p for p, n in noise.items() if (n["noise"] or {}).get("measured_from")]
    within = sorted({d for n in noise.values() for d in (n["within_noise"] or [])})
    above = {p: sum(v >= SNR_WITHIN_NOISE for v in vals) for p, vals in snr.items()}
    median_snr = {p: (float(np.median(vals)) if vals else None) for p, vals in snr.items()}
    distinguishable = bool(measured) and all(above[p] > len(domains) / 2 for p in measured)
    verdict = _verdict(distinguishable, measured, median_snr, probes)
    if not measured:
        actions.append("measure the noise: train the base mixture with more seeds "
                       "(search.ddo.replicates: 2 or more)")
    elif within:
        actions.append(f"{', '.join(within)}: within noise; longer probes (larger probe_budgets), "
                       "more seeds (search.ddo.replicates) or larger factors (search.ddo.down/up)")
    widths = {d: float(hi - lo) for d, (lo, hi) in weights_interval.items()}
    wide = [d for d, w in widths.items() if w > WIDE]
    if wide:
        actions.append(f"{', '.join(wide)}: {int(100 * level)}% interval wider than {WIDE}; "
                       "replicate seeds or a third probe budget narrow it")
    bound_lines = [f"`{d}` stays at DDO's lower bound at probe(s) "
                   f"{', '.join(p for p, o in probe_optima.items() if d in o.get('at_bound', ()))} "
                   f"after {max(rounds.values(), default=1)} round(s): its optimum is below the bound "
                   f"and its projected weight {weights.get(d, math.nan):.3g} is not identified; lower "
                   "search.ddo.min_multiplier or add a round"
                   for d in at_bound]
    cap_lines = _cap_lines(capped, epochs, max_epochs)
    prior_share = _prior_share(lr_law)
    lr_on_prior = lr_method != "law" or (prior_share is not None and prior_share > PRIOR_SHARE)
    if lr_on_prior:
        actions.append("the LR rests on Bjorck et al.'s prior exponent: sweep LRs at a third "
                       "probe budget (search.probe_budgets) with a grid that brackets LR*")
    model_gap = _model_gap(weights, budget_law)
    if model_gap["domains"]:
        actions.append(f"{', '.join(model_gap['domains'])}: AutoScale's projection and the budget "
                       "transfer law disagree at the target; a verify run at the target "
                       "(search.verify) or a third probe budget tells which extrapolation holds")
    factor = float(target) / float(max(probes))
    if factor > 100:
        actions.append(f"the target is {factor:.3g}x the largest probe: a larger probe budget "
                       "shortens the extrapolation")
    return {
        "level": level,
        "noise": noise,
        "median_snr": median_snr,
        "domains_above_noise": above,
        "within_noise": within,
        "distinguishable": distinguishable,
        "verdict": verdict,
        "interval_widths": widths,
        "at_bound_lines": bound_lines,
        "capped_lines": cap_lines,
        "lr_on_prior": lr_on_prior,
        "lr_prior_share": prior_share,
        "extrapolation_factor": factor,
        "model_gap": model_gap,
        "actions": actions,
    }


def _model_gap(weights: Mapping[str, float], budget_law: Mapping[str, Any] | None) -> dict[str, Any]:
    """Per domain, the budget transfer law's weight minus the projection's, and the domains whose
    gap is wider than the law's own interval half-width (the data cannot explain it as noise)."""
    if not budget_law or not budget_law.get("used"):
        return {"used": False, "reason": (budget_law or {}).get("reason"), "gaps": {}, "domains": []}
    law_w, law_iv = budget_law["weights"], budget_law["intervals"]
    gaps = {d: float(law_w[d] - w) for d, w in weights.items()}
    beyond = [d for d, w in weights.items() if not law_iv[d][0] <= w <= law_iv[d][1]]
    return {"used": True, "reason": budget_law.get("reason"), "gaps": gaps, "domains": beyond}


def _cap_lines(capped: Sequence[str], epochs: Mapping[str, float], max_epochs: float) -> list[str]:
    """One line per domain the data cap binds at the target."""
    return [f"`{d}` capped at {max_epochs:g} epochs of its data ({epochs.get(d, math.nan):.3g} "
            "epochs at the target): the rest went to the other domains; add data of it "
            "or raise search.max_epochs" for d in capped]


def _prior_share(law: Any) -> float | None:
    """The prior's share of the posterior precision of the LR law's beta (None without a law)."""
    if law is None or law.beta_prior is None or not math.isfinite(law.beta_se) or law.beta_se <= 0:
        return None
    return float(min(1.0, law.beta_se ** 2 / law.beta_prior_sd ** 2))


def _verdict(distinguishable: bool, measured: Sequence[str], median_snr: Mapping[str, float | None],
             probes: Sequence[int]) -> str:
    """One line: whether the probes tell the mixtures apart, and if not what budget would,
    from how the median signal-to-noise grew between the probes (SNR ~ N^g, g fitted)."""
    if not measured:
        return "the run-to-run noise is not measured: nothing says whether the probes can tell the mixtures apart"
    if distinguishable:
        return "most domains' perturbations move the objective beyond the measured noise"
    line = "the probes cannot tell most domains' mixtures apart: their effects are within the noise"
    pts = [(int(p), median_snr[str(p)]) for p in probes if median_snr.get(str(p))]
    if len(pts) >= 2 and pts[-1][1] > 0 and pts[0][1] > 0:
        (n1, s1), (n2, s2) = pts[0], pts[-1]
        g = math.log(s2 / s1) / math.log(n2 / n1)
        if s2 >= SNR_WITHIN_NOISE:  # the median domain is above the noise already: no budget to name
            line += ("; the median domain's effect is above the noise at the largest probe, but not "
                     "most domains' at every probe: more seeds (search.ddo.replicates) or larger factors")
        elif g > 0.05:
            need = n2 * (SNR_WITHIN_NOISE / s2) ** (1 / g)
            line += (f"; at the growth seen between the probes (SNR ~ N^{g:.2f}) a probe budget of "
                     f"about {need:.3g} tokens would reach {SNR_WITHIN_NOISE:g} noise sd")
        else:
            line += "; the signal did not grow between the probes: more seeds, not longer probes"
    return line


def swarm_trust(*, swarm: Mapping[str, Any], weights: Mapping[str, float],
                weights_interval: Mapping[str, Sequence[float]], at_bound: Sequence[str],
                capped: Sequence[str], epochs: Mapping[str, float], max_epochs: float,
                lr_method: str, target: float, budget: float, level: float) -> dict[str, Any]:
    """The trust section of a swarm method (fits/swarm.py), with `trust_summary`'s keys: the noise
    of the swarm's replicates against the spread the mixtures made, the intervals, what the choice
    leaves at zero or the data caps, the LR, and that the mixture is carried over unchanged."""
    actions: list[str] = []
    noise = dict(swarm.get("noise") or {})
    sd = noise.get("objective_sd")
    spread = swarm.get("observed_spread")
    snr = None if not sd or spread is None else float(spread) / float(sd)
    method = swarm.get("method")
    if method in ("uniform", "fixed"):
        verdict = f"{method}: the mixture is given, not estimated; its expected losses are fitted on its own runs"
    elif sd is None:
        verdict = "the run-to-run noise is not measured: nothing says whether the swarm tells its mixtures apart"
        actions.append("measure the noise: train the prior mixture with more seeds (search.ddo.replicates: 2 or more)")
    elif snr is not None and snr >= SNR_WITHIN_NOISE:
        verdict = f"the swarm's mixtures differ by {snr:.2g} noise sd (best to median): it tells them apart"
    else:
        verdict = ("the swarm cannot tell its mixtures apart: best and median differ by less than "
                   f"{SNR_WITHIN_NOISE:g} noise sd; a larger swarm budget or more runs")
        actions.append("the mixtures' effects are within noise: raise search.swarm.budget or size")
    widths = {d: float(hi - lo) for d, (lo, hi) in weights_interval.items()}
    wide = [d for d, w in widths.items() if w > WIDE]
    if wide:
        actions.append(f"{', '.join(wide)}: {int(100 * level)}% interval wider than {WIDE}; "
                       "more swarm runs (search.swarm.size) narrow it")
    bound_lines = [f"`{d}` gets (almost) no weight from {method}: its optimum is not identified "
                   "from the swarm's runs" for d in at_bound]
    cap_lines = _cap_lines(capped, epochs, max_epochs)
    factor = float(target) / float(budget)
    actions.append(f"the mixture picked at {budget:.3g} tokens is used unchanged at {factor:.3g}x that "
                   "budget (no projection): method autoscale extrapolates it")
    if lr_method != "law" and lr_method != "fixed":
        actions.append("the LR rests on Bjorck et al.'s prior exponent (one swept horizon)")
    key = str(int(budget))
    return {
        "level": level, "method": method,
        "noise": {key: {"noise": noise, "snr": {}, "within_noise": []}},
        "median_snr": {key: snr}, "domains_above_noise": {}, "within_noise": [],
        "distinguishable": bool(snr is not None and snr >= SNR_WITHIN_NOISE),
        "verdict": verdict, "interval_widths": widths, "at_bound_lines": bound_lines,
        "capped_lines": cap_lines, "lr_on_prior": lr_method == "prior", "lr_prior_share": None,
        "extrapolation_factor": factor, "actions": actions,
    }


def mixlaw_trust(*, fit: Mapping[str, Any], noise: Mapping[str, Mapping[str, Any]],
                 weights_interval: Mapping[str, Sequence[float]], at_zero: Sequence[str],
                 capped: Sequence[str], epochs: Mapping[str, float], max_epochs: float,
                 level: float) -> dict[str, Any]:
    """The trust section of the mixing-law projector (fits/mixlaw_search.py), with
    `trust_summary`'s keys: each probe model's noise against the spread its design's mixtures
    made, the law's held-out error, the intervals, the extrapolation in model size and tokens."""
    actions: list[str] = []
    snr = {k: (float(n["spread"]) / float(n["objective_sd"]) if n.get("objective_sd") else None)
           for k, n in noise.items()}
    known = [v for v in snr.values() if v is not None]
    distinguishable = bool(known) and min(known) >= SNR_WITHIN_NOISE
    if not known:
        verdict = "the run-to-run noise is not measured: nothing says whether the probes tell the mixtures apart"
        actions.append("measure the noise: search.ddo.replicates: 2 or more")
    elif distinguishable:
        verdict = (f"every probe model's design spreads the loss by >= {min(known):.2g} noise sd: "
                   "the runs tell the mixtures apart")
    else:
        verdict = (f"at some probe model the design's mixtures differ by less than {SNR_WITHIN_NOISE:g} "
                   "noise sd: the law is fitted mostly to noise there")
        actions.append("larger probe budgets (search.probe_budgets) lift the mixtures' effects above the noise")
    err = (fit.get("held_out_error") or {}).get(fit.get("form"))
    if err is not None and err > 0.02:
        actions.append(f"the law misses the largest probe model by {100 * err:.1f}% held out: a "
                       "larger probe model narrows the extrapolation")
    widths = {d: float(hi - lo) for d, (lo, hi) in weights_interval.items()}
    wide = [d for d, w in widths.items() if w > WIDE]
    if wide:
        actions.append(f"{', '.join(wide)}: {int(100 * level)}% interval wider than {WIDE}; more "
                       "probe runs (replicates, budgets) narrow it")
    factor = float(fit.get("params_factor", math.nan))
    actions.append(f"the target model is {factor:.3g}x the largest probe model and "
                   f"{float(fit.get('tokens_factor', math.nan)):.3g}x its most tokens: the law extrapolates both")
    return {
        "level": level, "method": None, "projector": "mixing-law",
        "noise": {k: {"noise": dict(n), "snr": {}, "within_noise": []} for k, n in noise.items()},
        "median_snr": snr, "domains_above_noise": {}, "within_noise": [],
        "distinguishable": distinguishable, "verdict": verdict, "interval_widths": widths,
        "at_bound_lines": [f"`{d}` gets no weight from the law's optimum: the runs never gave it "
                           "less than the design's down factor, so a zero share is extrapolated"
                           for d in at_zero],
        "capped_lines": _cap_lines(capped, epochs, max_epochs), "lr_on_prior": False,
        "lr_prior_share": None, "extrapolation_factor": float(fit.get("tokens_factor", math.nan)),
        "held_out_error": err, "params_factor": factor, "actions": actions,
    }
