"""Convert the Data Mixing Laws 5Mix runs (Ye et al. 2024, repository yegcjs/mixinglaws,
`data/5Mix/`, as reshaped in the project's shared data `mixinglaws_5mix/pile5_runs.csv`) into a
runs table: one row per (model size, mixture, checkpoint), `w.<training domain>` and
`loss.<validation domain>` columns.

    python tests/data/mixinglaws_5mix/convert.py /path/to/pile5_runs.csv tests/data/mixinglaws_5mix/runs.csv

- `params`: the nominal model size (70M, 160M, 305M, 410M, 1B) as a count.
- `tokens`: step x 2^20. Every run used the same batch (about 1M tokens, per the source's README);
  the factor only rescales B in B / D^beta, so the fits do not depend on it.
- `run_id`: `<size>-<mixture id>`, mixture ids numbered in the order of the sorted proportion strings.
- losses rounded to 5 decimals (nats/token); the 5 checkpoints evaluated on only some of the
  validation files (70M-mix07 at steps 7k, 13k, 21k, 23k, 29k) are left out; nothing else changed.
"""

from __future__ import annotations

import sys

import pandas as pd

TRAIN_DOMAINS = ("academic", "prose", "dialogue", "symbolic", "internet")  # mix_5_domains.ipynb order
SIZES = {"70M": 70e6, "160M": 160e6, "305M": 305e6, "410M": 410e6, "1B": 1e9}
BATCH_TOKENS = 2 ** 20


def convert(source: str, target: str) -> pd.DataFrame:
    long = pd.read_csv(source)
    wide = long.pivot_table(index=["model_size", "proportions", "step"], columns="valid_domain",
                            values="loss", aggfunc="first").reset_index()
    mixes = {p: f"mix{i:02d}" for i, p in enumerate(sorted(wide["proportions"].unique()))}
    weights = wide["proportions"].str.split(";", expand=True).astype(float)
    out = pd.DataFrame({
        "run_id": wide["model_size"] + "-" + wide["proportions"].map(mixes),
        "mixture": wide["proportions"].map(mixes),
        "params": wide["model_size"].map(SIZES),
        "step": wide["step"].astype(int),
        "tokens": wide["step"].astype(int) * BATCH_TOKENS,
    })
    for i, d in enumerate(TRAIN_DOMAINS):
        out[f"w.{d}"] = weights[i]
    valid = sorted(c for c in wide.columns if c not in ("model_size", "proportions", "step"))
    for d in valid:
        out[f"loss.{d}"] = wide[d].round(5)
    out = out.dropna()  # checkpoints not evaluated on every validation file
    out = out.sort_values(["params", "mixture", "tokens"], kind="stable").reset_index(drop=True)
    out.to_csv(target, index=False)
    return out


if __name__ == "__main__":
    convert(*sys.argv[1:3])
