"""Science check: does the AutoScale projection beat uniform and the small-scale optimum at the target?

Runs `experiments/synthetic_science.yaml` (real training of gpt2-tiny proxies on synthetic domains of
known learnability) unless `--out` already holds a finished search, then prints:
1. the DDO optima at the two probe budgets and the projected mixture (expected: the fast-saturating
   `templates` domain loses share with scale, the diverse `zipf_large` gains it);
2. the validation objective (mean per-domain loss) at the target budget of the projected, uniform and
   smallest-probe-optimum mixtures, each trained at the target with 2 seeds.

    .venv/bin/python benchmarks/science_check.py [--out results/science]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from autoscale_ray.formatting import format_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="experiments/synthetic_science.yaml")
    ap.add_argument("--out", default="results/science")
    args = ap.parse_args()
    out = Path(args.out)
    if not (out / "recommendation.json").exists():
        from autoscale_ray.pipeline import run

        run(args.config, out)
    rec = json.loads((out / "recommendation.json").read_text())
    runs = pd.read_parquet(out / "runs.parquet")
    optima = rec["evidence"]["probe_optima"]
    domains = list(rec["weights"])
    rows = [[d, *[optima[b]["weights"][d] for b in optima], rec["weights"][d]] for d in domains]
    print(format_table(["domain", *[f"DDO @ {float(b):.3g}" for b in optima],
                        f"projected @ {float(rec['tokens']):.3g}"], rows))
    small, large = (optima[b]["weights"] for b in sorted(optima, key=float))
    direction = {d: "up" if large[d] > small[d] else "down" for d in domains}
    print("\nshare change from the small to the large probe:", direction)

    target = runs[runs["stage"] == "target"]
    final = target.loc[target.groupby("key")["tokens"].idxmax()]
    final = final.assign(arm=final["key"].str.split("/").str[1], seed=final["key"].str.split("/").str[2])
    table = final.groupby("arm")["loss"].agg(["mean", "std", "count"]).sort_values("mean")
    print("\nvalidation objective at the target budget (mean over domains, nats/token):")
    print(format_table(["arm", "mean", "std", "seeds"],
                       [[arm, r["mean"], r["std"], int(r["count"])] for arm, r in table.iterrows()],
                       floatfmt=".4f"))
    per_seed = final.pivot(index="seed", columns="arm", values="loss")
    wins = {other: int((per_seed["projected"] < per_seed[other]).sum())
            for other in per_seed.columns if other != "projected"}
    print(f"\nprojected beats, per seed (of {len(per_seed)}):", wins)


if __name__ == "__main__":
    main()
