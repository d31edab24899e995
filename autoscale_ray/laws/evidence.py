"""What a probe's runs can and cannot support: responses that contradict DDO's surrogate, and how
far the projection may extrapolate a domain's shift.

Contradictions. The paper's surrogate f_i(x) = (x + a_i)^(-b_i) + c_i (AutoScale, Kang et al. 2024,
arXiv 2407.20177) decreases in x_i: with the other domains' quantities held fixed (the
fixed-others design), more tokens of domain i never raise the objective. A run that breaks this
beyond the noise, y(x_i < 1) < y(base) - tol or y(x_i > 1) > y(base) + tol, cannot be fitted by
any member of the family; the fit then bends the curve flat and its optimum for that domain is an
artefact. tol is 2 sd of the base point's replicates when it has >= 2, else 0 (every violation
counts: without replicates nothing separates noise from signal).

The projection guard. AutoScale extrapolates each domain's optimal quantity geometrically,
log N_i(s) = alpha_i + s beta_i with beta_i = log(N_i(2) / N_i(1)) from two probes. A shift that is
no larger than the probe optima's own uncertainty sigma_i (in log quantity) is not evidence of a
trend, and extrapolating it by the factor s amplifies noise. The guard shrinks each domain's
deviation from the common growth beta_bar (the total's growth, log N(2) / N(1)) by the positive-part
James-Stein factor (James & Stein 1961): beta_i' = beta_bar + (beta_i - beta_bar) *
max(0, 1 - sigma_i^2 / (beta_i - beta_bar)^2). A shift many sigma from zero is kept whole (the
paper's rule); one within sigma has no trend of its own (its quantity grows with the total);
sigma_i = 0 (no uncertainty known) keeps the paper's rule exactly. The uncertainty comes from the
probes: the spread of their optima over equally good DDO fits, and infinity for a domain whose
runs contradict the surrogate.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

FEWER_HELPED = "fewer tokens lowered the objective"
MORE_HURT = "more tokens raised the objective"


def replicate_tolerance(y: np.ndarray, base_runs: Sequence[int]) -> float:
    """2 sd of the base point's replicate objectives (0 with fewer than two replicates)."""
    values = np.asarray(y, dtype=float)[list(base_runs)]
    return float(2.0 * values.std(ddof=1)) if len(values) >= 2 else 0.0


def contradictions(y: np.ndarray, base_runs: Sequence[int], perturbed: Sequence[int],
                   factors: Sequence[float], kind: str) -> dict[int, list[str]]:
    """Domains whose perturbation runs contradict a decreasing response, with what each run did.

    `y`: each run's objective; `base_runs`: the base point's runs; `perturbed` / `factors`: per
    run, the perturbed domain (-1 at the base) and its multiplier. Only the fixed-others design
    is checked: in fixed-total runs the other domains shrink, so a higher objective is expected."""
    if kind != "fixed-others":
        return {}
    y = np.asarray(y, dtype=float)
    base = float(np.mean(y[list(base_runs)]))
    tol = replicate_tolerance(y, base_runs)
    found: dict[int, list[str]] = {}
    for run, (domain, factor) in enumerate(zip(perturbed, factors)):
        if domain < 0:
            continue
        if factor < 1 and y[run] < base - tol:
            found.setdefault(int(domain), []).append(FEWER_HELPED)
        elif factor > 1 and y[run] > base + tol:
            found.setdefault(int(domain), []).append(MORE_HURT)
    return found


def guard_log_ratios(log_ratios: np.ndarray, sigma: np.ndarray, common: float) -> np.ndarray:
    """beta_i' = common + (beta_i - common) max(0, 1 - sigma_i^2 / (beta_i - common)^2) (module
    docstring): each domain's shift between the probes shrunk by its signal-to-noise."""
    beta = np.asarray(log_ratios, dtype=float)
    sig = np.asarray(sigma, dtype=float)
    dev = beta - common
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.where(dev == 0.0, 1.0, np.maximum(0.0, 1.0 - sig ** 2 / dev ** 2))
    return common + dev * keep


def log_quantity_sigma(weights: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """sigma of log N_i from a weight uncertainty `spread` (same units as the weights), per domain:
    the relative uncertainty of the share, spread_i / w_i (delta method on log)."""
    w = np.asarray(weights, dtype=float)
    return np.asarray(spread, dtype=float) / np.maximum(w, 1e-12)
