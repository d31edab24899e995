"""`autoscale-ray mixlaw RUNS --params N --tokens D`: a mixture x scale law fitted to runs at several
model sizes, checkpoints and mixtures, predicting each validation domain's loss at (N, D).

Three forms (`autoscale_ray.laws.mixing_law`, `mixing_law_shrunk`): `nested`, the Data Mixing Laws
pipeline (Ye et al. 2024): one L(N, D) = E + A / N^alpha + B / D^beta per mixture and validation
domain, then the mixing law L_j(w) = c_j + k_j exp(t_j . w) fitted across the mixtures at (N, D);
`shrunk`, the nested law plus lambda x a trained mixture's own deviation from the mixing law
(lambda in [0, 1] chosen on the held-out size; unseen mixtures and the optimum get the mixing law);
and `joint`, one law over all runs, L_j(w, N, D) = E_j + exp(t_j . w)(A_j / N^alpha_j + B_j /
D^beta_j). Every row with tokens > 0 (and >= --min-tokens) is a data point. The form is chosen by
held-out error: each is fitted without the largest model size and judged by the mean absolute
relative error (ARE) of its per-domain losses on that size's checkpoints; the chosen one is
refitted on every run (--forms with one form skips the choice). With --predict MIXES (a CSV/Parquet table with one `w.<domain>` column per training domain, each row on
the simplex, or a JSON mixture object or list of them) it predicts each mixture's losses at (N, D);
with --optimize it returns the mixture that minimises the objective (the mean over validation
domains, or --objective EVAL.json weights) with w_i <= max_epochs x available_i / D where
--available gives a domain's tokens. Intervals: the bootstrap (runs resampled for the joint form,
mixtures for the nested and shrunk forms; --bootstrap replicates, --level, --seed).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from autoscale_ray.checks import check_bootstrap, check_known, mixture_weights, weight_vector
from autoscale_ray.errors import BadInput
from autoscale_ray.fits.regress import read_mixtures
from autoscale_ray.laws.loss_law import min_tokens_mask
from autoscale_ray.laws.mixing_law import (FORM_NESTED, JOINT_BLOCKS, MixtureScaleLaw, NestedLaw,
                                           fit_joint_law, fit_nested_law, mixture_groups,
                                           relative_errors, size_holdout)
from autoscale_ray.laws.mixing_law_shrunk import FORM_SHRUNK, ShrunkLaw, choose_shrinkage
from autoscale_ray.laws.mixture_optimum import MixtureOptimum, epoch_caps, optimal_mixture
from autoscale_ray.laws.noise import SolveAll, solve_each
from autoscale_ray.runs import LOSS_PREFIX, WEIGHT_PREFIX, RunsTable, read_runs

log = logging.getLogger("autoscale_ray")

FORMS: tuple[str, ...] = (FORM_NESTED, FORM_SHRUNK, *JOINT_BLOCKS)
SIMPLEX_TOL = 1e-3  # a MIXES row must sum to 1 within this
DEFAULT_LEVEL = 0.9


@dataclass(frozen=True)
class MixlawData:
    """The arrays a mixture x scale law is fitted on: weights (n x m), params, tokens (n), losses
    (n x J), each row's run index, and the names."""

    weights: np.ndarray
    params: np.ndarray
    tokens: np.ndarray
    losses: np.ndarray
    run: np.ndarray
    domains: tuple[str, ...]
    valid_domains: tuple[str, ...]

    def subset(self, rows: np.ndarray) -> "MixlawData":
        return MixlawData(self.weights[rows], self.params[rows], self.tokens[rows],
                          self.losses[rows], self.run[rows], self.domains, self.valid_domains)


@dataclass(frozen=True)
class MixlawFit:
    """A chosen mixture x scale law over a runs table: `law` (with `predict(weights, N, D)` and
    `at(N, D)`, the mixing law at one scale), its `form`, each form's held-out error, the data."""

    law: MixtureScaleLaw
    form: str
    held_out: Mapping[str, float]
    held_out_params: float | None
    data: MixlawData

    def predict(self, weights: np.ndarray, params: float, tokens: float) -> np.ndarray:
        """Per-domain losses (rows x validation domains) of rows x training-domain weights."""
        return self.law.predict(weights, params, tokens)

    def optimize(self, params: float, tokens: float, eval_weights: np.ndarray | None = None,
                 upper: np.ndarray | None = None, seed: int = 0) -> MixtureOptimum:
        return optimal_mixture(self.law.at(params, tokens), eval_weights, upper, seed=seed)


def table_data(table: RunsTable, min_tokens: float | None = None) -> MixlawData:
    """The rows of a runs table a mixture x scale law can use, checked."""
    frame = table.frame
    if not table.loss_domains:
        raise BadInput("no `loss.<domain>` columns", table.source,
                       "add one validation-loss column per validation domain")
    if "params" not in frame.columns:
        raise BadInput("missing column `params`", table.source,
                       "give every row its model size (a mixture x scale law needs >= 2 sizes)")
    keep = np.array(frame["tokens"] > 0, dtype=bool)
    if min_tokens is not None:
        keep &= min_tokens_mask(frame["tokens"], frame["budget"], min_tokens)
    if not keep.any():
        raise BadInput("no evaluation left to fit (tokens > 0, >= --min-tokens)", table.source,
                       "lower --min-tokens")
    losses = frame[[LOSS_PREFIX + d for d in table.loss_domains]].to_numpy(dtype=float)
    bad = keep & ~(losses > 0).all(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        raise BadInput(f"a loss <= 0 for run `{frame['run_id'].iloc[row]}`", table.source,
                       "losses are cross-entropies, > 0")
    params = frame["params"].to_numpy(dtype=float)
    if np.unique(params[keep]).size < 2:
        raise BadInput(f"runs at {np.unique(params[keep]).size} model size(s): a mixture x scale "
                       "law needs >= 2", table.source, "add runs of another `params`")
    run = np.unique(frame["run_id"].to_numpy(dtype=str), return_inverse=True)[1].ravel()
    data = MixlawData(table.weights(), params, frame["tokens"].to_numpy(dtype=float), losses,
                      run, table.domains, table.loss_domains)
    return data.subset(keep)


def _fit_form(form: str, data: MixlawData, shrinkage: float | None = None,
              nested: NestedLaw | None = None, solve_all: SolveAll = solve_each) -> MixtureScaleLaw:
    """Fit one form on `data` (`nested`: an already fitted nested law on the same data, reused)."""
    args = (data.weights, data.params, data.tokens, data.losses)
    if form in (FORM_NESTED, FORM_SHRUNK):
        law = nested if nested is not None else fit_nested_law(*args, solve_all=solve_all)
        if form == FORM_SHRUNK:
            assert shrinkage is not None
            return ShrunkLaw(law, shrinkage)
        return law
    return fit_joint_law(*args, form=form, solve_all=solve_all)


def fit_mixlaw(table: RunsTable | MixlawData, *, forms: Sequence[str] = FORMS,
               min_tokens: float | None = None, solve_all: SolveAll = solve_each) -> MixlawFit:
    """Fit each of `forms` without the largest model size, score it by the ARE on that size's
    checkpoints, refit the best on all rows. With one form there is nothing to choose: it is
    fitted on all rows only, except `shrunk`, whose lambda is always chosen on that held-out
    size. The shrunk form's held-out error is at its chosen lambda (it nests the nested form at
    lambda = 0, so it is never above the nested form's; the two share one nested fit). `solve_all`
    runs each law's independent per-domain fits (laws/noise.py: in order, or in parallel with the
    same results)."""
    data = table if isinstance(table, MixlawData) else table_data(table, min_tokens)
    for form in forms:
        if form not in FORMS:
            raise BadInput(f"unknown form `{form}`", "--forms", f"use {', '.join(FORMS)}")
    held: dict[str, float] = {}
    held_params = None
    shrinkage = None
    if (len(forms) > 1 or FORM_SHRUNK in forms) and np.unique(data.params).size >= 3:
        train, test = size_holdout(data.params)
        held_params = float(data.params.max())
        small, large = data.subset(train), data.subset(test)
        nested_small: NestedLaw | None = None
        for form in forms:
            try:
                if form in (FORM_NESTED, FORM_SHRUNK) and nested_small is None:
                    nested_small = fit_nested_law(small.weights, small.params, small.tokens,
                                                  small.losses, solve_all=solve_all)
                if form == FORM_SHRUNK:
                    assert nested_small is not None
                    shrinkage, errors = choose_shrinkage(nested_small, large.weights, large.params,
                                                         large.tokens, large.losses)
                    held[form] = float(errors.min())
                    continue
                law = _fit_form(form, small, nested=nested_small, solve_all=solve_all)
            except BadInput as exc:
                log.info("form %s left out of the selection: %s", form, exc)
                continue
            held[form] = float(relative_errors(law, large.weights, large.params, large.tokens,
                                               large.losses).mean())
    if held:
        chosen = min(held, key=held.__getitem__)
    elif len(forms) == 1 and forms[0] != FORM_SHRUNK:
        chosen = forms[0]
    else:
        raise BadInput("choosing the form (or the shrunk form's lambda) needs runs at >= 3 model "
                       "sizes (2 to fit, the largest to judge)", "runs",
                       "add a model size, or pass one form (--forms joint)")
    return MixlawFit(_fit_form(chosen, data, shrinkage, solve_all=solve_all), chosen, held, held_params, data)


def bootstrap_laws(fit: MixlawFit, replicates: int, seed: int = 0,
                   solve_all: SolveAll = solve_each) -> list[MixtureScaleLaw]:
    """Bootstrap replicates of the chosen law: the joint form refitted (from its optimum, its
    domains through `solve_all`) with the runs resampled with replacement; the nested (and shrunk)
    form with its mixtures resampled (each mixture's L(N, D) laws kept, the mixing law refitted on
    the drawn mixtures)."""
    rng = np.random.default_rng(seed)
    data, law = fit.data, fit.law
    out: list[MixtureScaleLaw] = []
    for _ in range(replicates):
        if fit.form in (FORM_NESTED, FORM_SHRUNK):
            nested = law if fit.form == FORM_NESTED else law.nested  # type: ignore[attr-defined]
            M = nested.mixtures.shape[0]  # type: ignore[attr-defined]
            out.append(law.resampled(rng.multinomial(M, np.full(M, 1.0 / M)).astype(float)))  # type: ignore[attr-defined]
        else:
            n_runs = int(data.run.max()) + 1
            counts = rng.multinomial(n_runs, np.full(n_runs, 1.0 / n_runs)).astype(float)
            out.append(fit_joint_law(data.weights, data.params, data.tokens, data.losses,
                                     form=fit.form, sample_weight=counts[data.run], warm=law,  # type: ignore[arg-type]
                                     solve_all=solve_all))
    return out


# ---- inputs: mixtures, eval weights, availability ------------------------------------------
def read_mix_rows(path: str | Path, domains: tuple[str, ...], source: str) -> np.ndarray:
    """MIXES as rows x domains: a CSV/Parquet table of `w.<domain>` columns or a JSON mixture
    object (`{"weights": {...}}`) or list of them; each row >= 0 and summing to 1 within 1e-3."""
    path = Path(path)
    if path.suffix.lower() != ".json":
        return read_mixtures(path, domains, source, sum_tolerance=SIMPLEX_TOL)
    obj = _read_json(path)
    items = obj if isinstance(obj, list) else [obj]
    if not items:
        raise BadInput("the list of mixtures is empty", str(path), "give at least one mixture")
    rows = []
    for i, item in enumerate(items):
        where = f"{path}, mixture {i + 1}" if isinstance(obj, list) else str(path)
        raw = item.get("weights") if isinstance(item, dict) else None
        if not isinstance(raw, dict):
            raise BadInput("a mixture is an object {\"weights\": {\"domain\": w, ...}}", where)
        check_known(list(raw), domains, where, what="weights name domain(s) absent from the runs:",
                    fix="the runs' domains are")
        total = sum(float(v) for v in raw.values() if isinstance(v, (int, float)))
        weights = mixture_weights(raw, where)  # finite, >= 0, not all 0
        if abs(total - 1.0) > SIMPLEX_TOL:
            raise BadInput(f"the weights sum to {total:.6g}, not 1", where,
                           "give a mixture on the simplex (weights summing to 1)")
        rows.append(weight_vector(weights, domains))
    return np.asarray(rows)


def _read_json(path: Path) -> Any:
    if not path.exists():
        raise BadInput("file not found", str(path), "check the path")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"not valid JSON ({exc})", str(path), "write a JSON object") from None


def read_domain_numbers(path: str | Path, domains: Sequence[str], what: str) -> dict[str, float]:
    """A JSON object {domain: number} (or {"weights": {...}}) whose domains are among `domains`."""
    path = Path(path)
    obj = _read_json(path)
    if isinstance(obj, dict) and isinstance(obj.get("weights"), dict):
        obj = obj["weights"]
    if not isinstance(obj, dict) or not obj:
        raise BadInput(f"{what} must be a JSON object {{\"domain\": number, ...}}", str(path))
    check_known(list(obj), domains, str(path), what=f"{what} names unknown domain(s)",
                fix="use domains among:")
    out = {}
    for d, v in obj.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
            raise BadInput(f"`{d}` is {v!r}, not a finite number >= 0", f"{path}, key {d}")
        out[str(d)] = float(v)
    return out


# ---- the verb's function -------------------------------------------------------------------
def _interval(samples: np.ndarray, level: float) -> np.ndarray:
    return np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)


def _row(losses: np.ndarray, objective: float, valid: Sequence[str]) -> dict[str, float]:
    return {**{LOSS_PREFIX + d: float(v) for d, v in zip(valid, losses)}, "loss": float(objective)}


def mixlaw(runs: str | Path | RunsTable, *, params: float, tokens: float,
           predict: str | Path | None = None, optimize: bool = False,
           objective: str | Path | None = None, available: str | Path | None = None,
           max_epochs: float = 4.0, forms: Sequence[str] = FORMS,
           min_tokens: float | None = None, bootstrap: int = 20, level: float = DEFAULT_LEVEL,
           seed: int = 0) -> dict[str, Any]:
    """The JSON object of `autoscale-ray mixlaw` (see the module docstring)."""
    for name, v in (("--params", params), ("--tokens", tokens)):
        if not (np.isfinite(v) and v > 0):
            raise BadInput(f"{name} must be a positive number, got {v}", name)
    check_bootstrap(bootstrap, 20)
    if not 0 < level < 1:
        raise BadInput(f"--level must be in (0, 1), got {level}", "--level", "e.g. 0.9")
    if predict is None and not optimize:
        raise BadInput("nothing to do", "mixlaw", "pass --predict MIXES and/or --optimize")
    table = runs if isinstance(runs, RunsTable) else read_runs(runs, require=("weights", "loss"))
    data = table_data(table, min_tokens)
    mixes = None if predict is None else read_mix_rows(predict, data.domains, table.source)
    valid = data.valid_domains
    e = np.full(len(valid), 1.0 / len(valid))
    if objective not in (None, "mean"):
        given = read_domain_numbers(objective, valid, "the eval mixture")
        e = weight_vector(given, valid)
        if e.sum() <= 0:
            raise BadInput("the eval mixture's weights are all 0", str(objective))
        e = e / e.sum()
    upper = None
    if available is not None:
        avail = read_domain_numbers(available, data.domains, "the available tokens")
        upper = epoch_caps(tokens, [avail.get(d, np.inf) for d in data.domains], max_epochs)
    never = [d for d, hi in zip(data.domains, data.weights.max(axis=0)) if hi <= 0]
    if never and optimize:
        log.warning("%s: domain(s) %s have weight 0 in every run: the law knows nothing of them; "
                    "the optimum keeps them at 0", table.source, ", ".join(never))
        upper = np.ones(len(data.domains)) if upper is None else upper.copy()
        upper[[data.domains.index(d) for d in never]] = 0.0

    try:
        fit = fit_mixlaw(data, forms=forms)
        boots = bootstrap_laws(fit, bootstrap, seed) if bootstrap else []
    except BadInput as exc:  # the law names its arguments; name the file too
        raise BadInput(str(exc), table.source) from None

    out: dict[str, Any] = {"params": params, "tokens": tokens}
    intervals: dict[str, Any] = {}
    if mixes is not None:
        pred = fit.predict(mixes, params, tokens)
        out["predictions"] = [_row(p, p @ e, valid) for p in pred]
        if boots:
            samples = np.stack([b.predict(mixes, params, tokens) for b in boots])
            lo, hi = _interval(samples, level)
            olo, ohi = _interval(samples @ e, level)
            intervals["predictions"] = [
                {**{LOSS_PREFIX + d: [float(a), float(b)] for d, a, b in zip(valid, lr, hr)},
                 "loss": [float(a), float(b)]} for lr, hr, a, b in zip(lo, hi, olo, ohi)]
        outside = np.flatnonzero((mixes > data.weights.max(axis=0) + 1e-9).any(axis=1))
        if outside.size:
            log.warning("%s: mixture row(s) %s give a domain more weight than any run did: the "
                        "law extrapolates", predict, ", ".join(str(r + 1) for r in outside[:10]))
    if optimize:
        best = fit.optimize(params, tokens, e, upper, seed)
        out["weights"] = {d: float(w) for d, w in zip(data.domains, best.weights)}
        out["expected_loss"] = _row(best.losses, best.objective, valid)
        out["at_cap"] = [data.domains[i] for i in best.at_cap]
        out["at_zero"] = [data.domains[i] for i in best.at_zero]
        if boots:
            opt = np.array([optimal_mixture(b.at(params, tokens), e, upper, seed=seed).weights
                            for b in boots])
            at_best = np.array([b.predict(best.weights, params, tokens)[0] @ e for b in boots])
            lo, hi = _interval(opt, level)
            intervals["weights"] = {d: [float(a), float(b)] for d, a, b in zip(data.domains, lo, hi)}
            intervals["expected_loss"] = [float(v) for v in _interval(at_best, level)]
    out["intervals"] = intervals
    out["level"] = level if boots else None
    out["n_bootstrap"] = len(boots)
    out["seed"] = seed
    groups = mixture_groups(data.weights)[0]
    out["fit"] = {"form": fit.form, "held_out_error": dict(fit.held_out),
                  "held_out_params": fit.held_out_params,
                  "parameters": fit.law.params(),  # type: ignore[attr-defined]
                  "n_runs": int(np.unique(data.run).size), "n_points": int(data.params.size),
                  "n_mixtures": int(len(groups)), "sizes": sorted(set(data.params.tolist())),
                  "domains": list(data.domains), "valid_domains": list(valid)}
    return out
