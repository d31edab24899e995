"""The mixing-law projector without Ray: MixlawPlan + Predictor as a search drives them, on a
known mixture x scale surface (Ye et al. 2024's mixing law on per-domain L(N, D) laws), where the
optimum at the target model and budget is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoscale_ray.laws.mixture_optimum import optimal_mixture
from autoscale_ray.laws.mixing_law import MixingLaw
from autoscale_ray.predictor import Predictor
from autoscale_ray.searchers.mixlaw_plan import MixlawPlan, MixlawPlanConfig, model_label

DOMAINS = ("web", "code", "books")
SIZES = {"m-small": 2e5, "m-mid": 5e5, "m-large": 1.2e6}
T = np.array([[-1.2, 0.3, 0.2], [0.4, -1.5, 0.2], [0.2, 0.1, -0.9]])  # transfer t_ij (row: valid domain)
E, A, B, ALPHA, BETA = 1.8, 40.0, 60.0, 0.3, 0.3


def surface(w: np.ndarray, n: float, d: float) -> np.ndarray:
    """L_i(w, N, D) = E + (A / N^alpha + B / D^beta) exp(t_i . w): a mixing law at every scale."""
    return E + (A / n ** ALPHA + B / d ** BETA) * np.exp(T @ w)


def drive(noise: float = 0.002, seed: int = 0, replicates: int = 2) -> tuple[MixlawPlan, dict]:
    cfg = MixlawPlanConfig(models=list(SIZES), probes=[40_000], base_weights={d: 1 / 3 for d in DOMAINS},
                           target=4_000_000, lr=1e-3, replicates=replicates, seed=seed)
    plan = MixlawPlan(cfg)
    plan.start()
    fits = Predictor(DOMAINS, cfg.target, probes=cfg.probes, lr=cfg.lr, projector="mixing-law",
                     target_params=1e7, loss_draws=0, seed=seed)
    rng = np.random.default_rng(seed)
    i = 0
    while (spec := plan.next_spec(f"t{i}")) is not None:
        w = np.array([spec.weights[d] for d in DOMAINS])
        rows = []
        for tokens in np.linspace(spec.budget / 4, spec.budget, 4):
            loss = surface(w, SIZES[spec.model], tokens) + rng.normal(0, noise, len(DOMAINS))
            rows.append({"run_id": spec.key.replace("/", "_"), "tokens": float(tokens),
                         "budget": spec.budget, "params": SIZES[spec.model], "lr": spec.lr,
                         "seed": spec.seed, "loss": float(loss.mean()),
                         **{f"w.{d}": spec.weights[d] for d in DOMAINS},
                         **{f"loss.{d}": float(v) for d, v in zip(DOMAINS, loss)}})
        plan.complete(f"t{i}", rows, True, fits)
        i += 1
    return plan, plan.results["recommendation"]


@pytest.fixture(scope="module")
def default_search() -> tuple[MixlawPlan, dict]:
    """drive() with its defaults, once for the tests that only read it."""
    return drive()


def test_the_plan_trains_ddo_s_design_at_every_probe_model(default_search) -> None:
    plan, _ = default_search
    keys = sorted(plan.done)
    assert len(keys) == plan.planned_trials() == 3 * (2 * 3 + 1 + 2)
    assert {k.split("/")[1] for k in keys} == set(SIZES)
    assert plan.finished


def test_the_law_s_optimum_at_the_target_is_the_surface_s(default_search) -> None:
    _, rec = default_search
    assert rec["projector"] == "mixing-law" and rec["target_params"] == 1e7
    w = np.array([rec["weights"][d] for d in DOMAINS])
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    # the true optimum: the surface's mixing law at the target scale
    scale = A / 1e7 ** ALPHA + B / 4e6 ** BETA
    law_at = MixingLaw(np.array([[E, scale]] * 3), np.stack([np.zeros_like(T), T], axis=1))
    true = optimal_mixture(law_at, None, None, seed=0)
    assert np.abs(w - true.weights).max() < 0.05
    # the objective the law predicts there is the surface's, and its interval holds the point
    exp = rec["expected_loss"]
    assert exp["objective"] == pytest.approx(float(surface(true.weights, 1e7, 4e6).mean()), rel=0.01)
    for d, (lo, hi) in rec["weights_interval"].items():
        assert lo - 1e-9 <= rec["weights"][d] <= hi + 1e-9
    law = rec["evidence"]["mixing_law"]
    assert law["form"] in law["held_out_error"] and law["held_out_params"] == SIZES["m-large"]
    assert law["held_out_error"][law["form"]] < 0.01  # an exact law: tiny held-out error
    assert any("held-out error" in n for n in rec["evidence"]["notes"])
    trust = rec["trust"]
    assert trust["projector"] == "mixing-law" and trust["params_factor"] == pytest.approx(1e7 / 1.2e6)
    assert set(rec["evidence"]["mixing_law"]["noise"]) == {f"{n:.6g}/40000" for n in SIZES.values()}


def test_the_noise_is_measured_from_the_base_seeds() -> None:
    _, rec = drive(noise=0.01)
    for n in rec["evidence"]["mixing_law"]["noise"].values():
        assert n["replicates"] == 3
        assert 0.001 < n["objective_sd"] < 0.03  # mean of 3 domains' N(0, 0.01): sd ~0.006
    assert math.isnan(rec["lr_interval"][0]) and rec["lr_interval_method"] == "fixed"


def test_same_seed_same_recommendation() -> None:
    assert drive(seed=3)[1]["weights"] == drive(seed=3)[1]["weights"]


def test_model_labels_are_safe_keys() -> None:
    assert model_label(0, "gpt2-tiny") == "gpt2-tiny"
    assert model_label(2, "/home/u/models/small/config.json") == "model2-small"
    assert model_label(1, "cfg/my model.json") == "model1-my-model"
