"""How sure a DDO optimum is: the noise its base replicates measure, each domain's effect against
that noise, and intervals of the optimal weights from a parametric bootstrap through the fit
(`autoscale_ray.laws.noise`), widened to contain every equally good fit's optimum."""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Sequence

import numpy as np

from autoscale_ray.laws.noise import (DEFAULT_LEVEL, SNR_WITHIN_NOISE, SolveAll, parametric_draws,
                                      percentile_interval, perturbation_snr, replicate_sd, solve_each)

log = logging.getLogger("autoscale_ray")

BOOTSTRAP = 100  # redraws: the 5% / 95% quantiles of 100 draws move by ~0.01 in weight


def objective_noise(objective: np.ndarray, base_runs: Sequence[int], residual_sd: float,
                    dof: int) -> tuple[float, str | None]:
    """(sd, where it came from): the base replicates' sd; without replicates the fit's residual
    sd when it has degrees of freedom left; else (nan, None): the noise is not measured."""
    sd = float(replicate_sd(np.asarray(objective, dtype=float)[list(base_runs)]))
    if math.isfinite(sd) and sd > 0:
        return sd, "replicates"
    if dof > 0 and math.isfinite(residual_sd) and residual_sd > 0:
        return residual_sd, "residuals"
    return math.nan, None


def ddo_uncertainty(*, objective: np.ndarray, base_runs: Sequence[int], perturbed: Sequence[int],
                    names: Sequence[str], sigma: float, measured_from: str | None,
                    redraw_sigma: np.ndarray | float, fitted: np.ndarray,
                    solve: Callable[[np.ndarray], np.ndarray], point: np.ndarray,
                    alternatives: Sequence[np.ndarray], source: str,
                    per_domain_sd: np.ndarray | None = None, level: float = DEFAULT_LEVEL,
                    draws: int = BOOTSTRAP, seed: int = 0, solve_all: SolveAll = solve_each) -> dict[str, Any]:
    """The `extra` entries of a DDO fit about its uncertainty.

    `objective`: the design runs' objectives (for the signal-to-noise); `sigma` its noise sd;
    `fitted`: the fit's values of what `solve` refits (objectives, or per-domain losses), redrawn
    with sd `redraw_sigma`; `solve` maps redrawn values to optimal weights, `solve_all` runs it over
    the redraws (laws/noise.py: in order, or in parallel with the same rows)."""
    m = len(names)
    snr = perturbation_snr(objective, base_runs, perturbed, m, sigma) if math.isfinite(sigma) \
        else np.full(m, math.nan)
    within = [d for d, v in zip(names, snr) if math.isfinite(v) and v < SNR_WITHIN_NOISE]
    include = np.vstack([point, *alternatives]) if len(alternatives) else np.atleast_2d(point)
    if measured_from is None or draws <= 0:
        # said in `noise.measured_from` (null) and by the verbs and the report, not as a warning:
        # published DDO runs (AutoScale's) have one base run, and their fits are not unhealthy
        rows = np.empty((0, m))
    else:
        rows = parametric_draws(solve, fitted, redraw_sigma, draws, seed, solve_all)
    lo, hi = percentile_interval(rows, level, include) if len(rows) else (include.min(0), include.max(0))
    if within:
        log.warning("%s: the perturbations of %s moved the objective by less than %g noise sd "
                    "(signal-to-noise %s): their optimal weights rest on noise; train longer "
                    "probes, use larger factors, or more seeds", source, ", ".join(within),
                    SNR_WITHIN_NOISE, ", ".join(f"{v:.2g}" for d, v in zip(names, snr) if d in within))
    return {
        "noise": {"objective_sd": sigma if math.isfinite(sigma) else None,
                  "per_domain_sd": None if per_domain_sd is None else
                  {d: (float(v) if math.isfinite(v) else None) for d, v in zip(names, per_domain_sd)},
                  "replicates": len(base_runs), "measured_from": measured_from},
        "snr": {d: (float(v) if math.isfinite(v) else None) for d, v in zip(names, snr)},
        "within_noise": within,
        "intervals": {d: [float(a), float(b)] for d, a, b in zip(names, lo, hi)},
        "interval_level": level,
        "bootstrap": {"draws": draws if measured_from else 0, "used": int(len(rows)), "seed": seed},
        "bootstrap_weights": rows.tolist(),
    }
