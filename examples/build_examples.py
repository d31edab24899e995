"""Build the example runs tables and mixture files in this folder from the published data in the
project's shared reference folder (default ../shared/data; sources in examples/README.md).

    python examples/build_examples.py [DATA_DIR]

Every file but `lr_sweeps.csv` reshapes published measurements without changing a value; no
published LR sweep is in the shared data, so `lr_sweeps.csv` is generated (see `lr_sweeps`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
BATCH_TOKENS = 2 ** 20  # Data Mixing Laws train at about 1M tokens a batch: tokens = step x 2^20


def ddo_runs(data: Path) -> pd.DataFrame:
    """AutoScale's 15 DDO runs: per-domain tokens x_i x 1.2e9 / 7, loss.<d> = log(perplexity)."""
    f = pd.read_csv(data / "autoscale_ddo" / "gpt2_large_ddo_1.2b.csv")
    domains = [c[2:] for c in f.columns if c.startswith("x.")]
    q = f[[f"x.{d}" for d in domains]].to_numpy() * 1.2e9 / 7
    total = q.sum(axis=1)
    return pd.DataFrame({"run_id": f["run"], "tokens": total, "budget": total,
                         **{f"w.{d}": q[:, i] / total for i, d in enumerate(domains)},
                         **{f"loss.{d}": np.log(f[f"ppl.{d}"]) for d in domains}})


def notebook_optima() -> dict[str, dict]:
    """AutoScale_example.ipynb's DDO optima at 0.3B and 1.2B tokens (multipliers of equal base
    quantities; weights = x / 7), as mixture files with DDO's bound (x >= 0.2)."""
    domains = ["cc", "github", "books", "wiki", "c4", "stackexchange", "arxiv"]
    optima = {"mix_0.3b.json": (3e8, [1.55818971, 0.2, 1.1645966, 1.42333261, 1.49550525,
                                      0.68184781, 0.47652801]),
              "mix_1.2b.json": (1.2e9, [1.63121445, 0.2, 1.30180479, 1.21425702, 1.83266187,
                                        0.62006189, 0.2])}
    out = {}
    for name, (tokens, x) in optima.items():
        out[name] = {"tokens": tokens, "weights": {d: v / 7 for d, v in zip(domains, x)},
                     "at_bound": [d for d, v in zip(domains, x) if v <= 0.2 + 1e-9],
                     "min_multiplier": 0.2, "multipliers": dict(zip(domains, x))}
    return out


def chinchilla(data: Path) -> pd.DataFrame:
    """Epoch's 240 Chinchilla points (the 5 highest-loss dropped, as Epoch did): D = C / (6 N)."""
    p = pd.read_csv(data / "chinchilla" / "svg_extracted_data.csv").nsmallest(240, "loss")
    n = p["Model Size"].to_numpy(float)
    return pd.DataFrame({"run_id": [f"chinchilla-{i}" for i in p.index], "tokens":
                         p["Training FLOP"].to_numpy(float) / (6 * n), "params": n,
                         "loss": p["loss"].to_numpy(float)})


def mixinglaws_checkpoints(data: Path, mixture: str = "0.25;0.1875;0.0625;0.125;0.375") -> pd.DataFrame:
    """One Data Mixing Laws mixture at 70M-1B: every checkpoint's loss averaged over the 22 Pile
    validation subsets with the Pile's token shares (pile_valid_weight.json)."""
    f = pd.read_csv(data / "mixinglaws_5mix" / "pile5_runs.csv")
    share = json.loads((data / "mixinglaws_5mix" / "pile_valid_weight.json").read_text())
    f = f[f["proportions"] == mixture].assign(w=lambda x: x["valid_domain"].map(share))
    sizes = {"70M": 70e6, "160M": 160e6, "305M": 305e6, "410M": 410e6, "1B": 1e9}
    rows = []
    for (size, step), g in f.groupby(["model_size", "step"]):
        if g["valid_domain"].nunique() != len(share):
            continue  # a checkpoint without every subset's loss
        rows.append({"run_id": f"dml-{size}", "tokens": float(step * BATCH_TOKENS),
                     "params": sizes[size], "loss": float((g["loss"] * g["w"]).sum() / g["w"].sum())})
    return pd.DataFrame(rows).sort_values(["params", "tokens"]).reset_index(drop=True)


def regmix(data: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """RegMix's 512 1M-parameter runs (17 Pile domain weights, Pile-CC validation loss), and five
    candidate mixtures: the runs' mean and four of the runs' own mixtures."""
    mix = pd.read_csv(data / "regmix_1m" / "train_mixture_1m.csv")
    loss = pd.read_csv(data / "regmix_1m" / "train_pile_loss_1m.csv")
    j = mix.merge(loss, on="index", validate="one_to_one")
    runs = pd.DataFrame({"run_id": "regmix-" + j["index"].astype(str)})
    for col in mix.columns[1:]:
        runs["w." + col.removeprefix("train_the_pile_")] = j[col]
    runs["loss.pile_cc"] = j["metric/the_pile_pile_cc_val_loss"]
    w = [c for c in runs.columns if c.startswith("w.")]
    candidates = pd.concat([runs[w].mean().to_frame().T, runs.loc[[0, 7, 40, 300], w]],
                           ignore_index=True)
    return runs, candidates


def lr_sweeps(seed: int = 0) -> pd.DataFrame:
    """GENERATED, not measured: final losses of LR sweeps at four horizons from Bjorck et al.
    2024's form, LR*(D) = 3e-3 (D / 1e8)^-0.32 and a loss quadratic in log LR around it
    (L = 3.2 + 40 D^-0.1 ... in nats, curvature 0.02 per log-unit^2), plus N(0, 0.002) noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in (1e8, 4e8, 1.6e9, 6.4e9):
        best = 3e-3 * (d / 1e8) ** -0.32
        for lr in np.geomspace(2.5e-4, 8e-3, 6):
            loss = 2.0 + 40 * d ** -0.1 + 0.02 * np.log(lr / best) ** 2 + rng.normal(0, 0.002)
            rows.append({"run_id": f"lr-{d:.2g}-{lr:.3g}", "tokens": d, "budget": d, "lr": lr,
                         "loss": loss})
    return pd.DataFrame(rows)


def main(data: Path) -> None:
    ddo_runs(data).to_csv(HERE / "ddo_gpt2_large_1.2b.csv", index=False)
    for name, obj in notebook_optima().items():
        (HERE / name).write_text(json.dumps(obj, indent=1) + "\n")
    chinchilla(data).to_csv(HERE / "law_chinchilla.csv", index=False)
    mixinglaws_checkpoints(data).to_csv(HERE / "law_mixinglaws_checkpoints.csv", index=False)
    runs, candidates = regmix(data)
    runs.to_csv(HERE / "regress_regmix_1m.csv", index=False)
    candidates.to_csv(HERE / "regress_candidates.csv", index=False)
    lr_sweeps().to_csv(HERE / "lr_sweeps.csv", index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parent.parent / "shared" / "data")
