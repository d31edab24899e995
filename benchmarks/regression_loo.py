"""Closed-form leave-one-out ridge selection vs refitting, on the RegMix 1M runs.

`fit_ridge_mixture` picks the ridge penalty by exact leave-one-out CV from one eigendecomposition
of the Gram matrix per eps (`_loo_path`). The baseline refits the ridge n times per penalty.
Prints the LOO MSE of both (they must agree) and the time ratio. Single-threaded BLAS for both, so
the ratio measures the algorithm, not thread contention.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/regression_loo.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from autoscale_ray.laws.regression import ALPHAS, _loo_path, _standardise, features

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "regmix_1m"
EPS = 3e-3


def refit_loo(z: np.ndarray, y: np.ndarray, alphas) -> np.ndarray:
    """LOO MSE by refitting: n ridge solves per alpha (intercept unpenalised, centred per fold)."""
    n, p = z.shape
    out = np.empty(len(alphas))
    for k, a in enumerate(alphas):
        err = np.empty(n)
        for i in range(n):
            keep = np.arange(n) != i
            zk, yk = z[keep], y[keep]
            zm, ym = zk.mean(axis=0), yk.mean()
            zc = zk - zm
            coef = np.linalg.solve(zc.T @ zc + a * np.eye(p), zc.T @ (yk - ym))
            err[i] = y[i] - (ym + (z[i] - zm) @ coef)
        out[k] = float(np.mean(err ** 2))
    return out


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    mix = pd.read_csv(DATA / "train_mixture_1m.csv")
    loss = pd.read_csv(DATA / "train_pile_loss_1m.csv")
    joined = mix.merge(loss, on="index")
    w = joined[[c for c in mix.columns if c != "index"]].to_numpy(float)
    w /= w.sum(axis=1, keepdims=True)
    y = joined["metric/the_pile_pile_cc_val_loss"].to_numpy(float)
    z, _, _ = _standardise(features(w, EPS))

    closed = _loo_path(z, y, ALPHAS)
    brute = refit_loo(z, y, ALPHAS)
    t_closed = best_of(lambda: _loo_path(z, y, ALPHAS), 5)
    t_brute = best_of(lambda: refit_loo(z, y, ALPHAS), 1)
    print(f"RegMix 1M: n={len(y)} runs, p={z.shape[1]} features, {len(ALPHAS)} penalties, eps={EPS}")
    print(f"max |LOO MSE closed form - refit| / LOO MSE = {np.max(np.abs(closed - brute) / brute):.2e}")
    print(f"chosen alpha: closed form {ALPHAS[int(np.argmin(closed))]:.3g}, "
          f"refit {ALPHAS[int(np.argmin(brute))]:.3g}")
    print()
    print("| method | seconds | ratio |")
    print("| --- | --- | --- |")
    print(f"| refit n times per alpha | {t_brute:.3f} | 1.0 |")
    print(f"| closed form (one eigh) | {t_closed:.4f} | {t_brute / t_closed:.0f}x faster |")


if __name__ == "__main__":
    main()
