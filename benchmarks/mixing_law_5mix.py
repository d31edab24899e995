"""Accuracy of the mixture x scale law on the Data Mixing Laws 5Mix runs (Ye et al. 2024), next to
two L(N, D) baselines fitted on the same runs.

    cd <repo> && .venv/bin/python benchmarks/mixing_law_5mix.py [--domains Pile-CC,ArXiv]

Two held-out tests: (1) fit on the 70M-410M runs, predict the 1B runs' per-domain validation losses
(6 mixtures, 2 never trained small; every 1B checkpoint); (2) leave one size out: fit on 70M-305M,
predict the 410M runs. The error is the mean absolute relative error |L - L_hat| / L over rows and
validation domains. The law's form (and the shrunk form's lambda) is chosen inside the training data
(its largest size held out).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse  # noqa: E402
import time  # noqa: E402
from typing import Any, Sequence  # noqa: E402

import numpy as np  # noqa: E402

from autoscale_ray.fits.mixlaw import MixlawData, fit_mixlaw, table_data  # noqa: E402
from autoscale_ray.formatting import format_table  # noqa: E402
from autoscale_ray.laws.mixture_baselines import (agnostic_predictions,  # noqa: E402
                                                  per_mixture_predictions)
from autoscale_ray.runs import RunsTable, read_runs, validate  # noqa: E402

RUNS = Path(__file__).resolve().parents[1] / "tests" / "data" / "mixinglaws_5mix" / "runs.csv"


def load_table(domains: Sequence[str] | None = None, max_params: float | None = None) -> RunsTable:
    """The 5Mix runs as a runs table: only `domains`' validation losses (the mean `loss` recomputed
    over them), only runs below `max_params` parameters."""
    table = read_runs(RUNS, require=("weights", "loss", "params"))
    if domains or max_params:
        frame = table.frame
        if domains:
            frame = frame.drop(columns=[f"loss.{d}" for d in table.loss_domains if d not in domains] + ["loss"])
        if max_params:
            frame = frame[frame["params"] < max_params]
        table = validate(frame, str(RUNS), require=("weights", "loss", "params"))
    return table


def load(domains: list[str] | None = None) -> MixlawData:
    return table_data(load_table(domains))


def compare(data: MixlawData, train: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    """Errors of the law (chosen form) and both baselines; per-mixture on its mixtures only."""
    tr, te = data.subset(train), data.subset(test)
    fit = fit_mixlaw(tr)
    law = np.abs(fit.predict(te.weights, te.params, te.tokens) - te.losses) / te.losses
    agn = np.abs(agnostic_predictions(tr.params, tr.tokens, tr.losses, te.params, te.tokens)
                 - te.losses) / te.losses
    per = np.abs(per_mixture_predictions(tr.weights, tr.params, tr.tokens, tr.losses, te.weights,
                                         te.params, te.tokens) - te.losses) / te.losses
    seen = ~np.isnan(per).any(axis=1)
    return {"form": fit.form, "held_out": dict(fit.held_out), "rows": int(test.sum()),
            "shrinkage": getattr(fit.law, "shrinkage", None),
            "seen_rows": int(seen.sum()),
            "law": float(law.mean()), "law_seen": float(law[seen].mean()),
            "law_unseen": float(law[~seen].mean()) if (~seen).any() else None,
            "agnostic": float(agn.mean()), "agnostic_seen": float(agn[seen].mean()),
            "per_mixture_seen": float(per[seen].mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--domains", default=None, help="comma-separated validation domains (default all 22)")
    args = ap.parse_args()
    data = load(args.domains.split(",") if args.domains else None)
    N = data.params
    rows = []
    for label, train, test in (("fit <= 410M, predict 1B", N < 1e9, N == 1e9),
                               ("fit <= 305M, predict 410M", N < 410e6, N == 410e6)):
        t0 = time.perf_counter()
        r = compare(data, train, test)
        pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
        lam = "" if r["shrinkage"] is None else f", lambda {r['shrinkage']:.1f}"
        held = ", ".join(f"{k} {100 * v:.2f}%" for k, v in r["held_out"].items())
        rows.append([label, f"{r['form']}{lam} ({held})",
                     pct(r["law"]), pct(r["law_seen"]), pct(r["law_unseen"]), pct(r["agnostic"]),
                     pct(r["agnostic_seen"]), pct(r["per_mixture_seen"]),
                     f"{r['rows']} ({r['seen_rows']} seen)", f"{time.perf_counter() - t0:.0f} s"])
    print(f"{len(data.valid_domains)} validation domains; mean absolute relative error")
    print(format_table(["test", "form chosen (held-out error)", "law", "law, seen mixtures",
                        "law, unseen", "agnostic L(N,D)", "agnostic, seen", "per-mixture L(N,D), seen",
                        "held-out rows", "time"], rows))


if __name__ == "__main__":
    main()
