"""What `autoscale-ray compare` reports from its target runs: per arm (a search's recommendation,
or the uniform mixture) trained with K seeds, the mean final objective and per-domain losses with
t intervals over the seeds, and the paired differences between arms (the same seed trains every
arm on the same data order, so arm-to-arm differences are paired by seed: Student's paired t)."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from autoscale_ray.laws.noise import DEFAULT_LEVEL
from autoscale_ray.runs import LOSS_PREFIX


def t_interval(values: Sequence[float], level: float = DEFAULT_LEVEL) -> tuple[float, list[float]]:
    """(mean, [lo, hi]): mean +- t_{(1+level)/2, n-1} sd / sqrt(n); [nan, nan] with one value."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean()) if len(v) else math.nan
    if len(v) < 2:
        return mean, [math.nan, math.nan]
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return mean, [mean - half, mean + half]


def final_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Each trial's last evaluation."""
    return frame.loc[frame.groupby("key")["tokens"].idxmax()].reset_index(drop=True)


def summarize(frame: pd.DataFrame, arms: Sequence[str], domains: Sequence[str],
              level: float = DEFAULT_LEVEL) -> dict[str, Any]:
    """Per arm: seeds, objective (mean loss) mean and interval, per-domain means and intervals;
    per ordered pair of arms (a, b): the mean paired difference a - b over the seeds both have,
    its interval and the two-sided p-value (paired t)."""
    final = final_rows(frame)
    per_arm: dict[str, Any] = {}
    by_seed: dict[str, pd.Series] = {}
    for arm in arms:
        sel = final[final["arm"] == arm]
        by_seed[arm] = sel.set_index("seed")["loss"].astype(float)
        mean, interval = t_interval(sel["loss"])
        per_domain = {}
        for d in domains:
            col = LOSS_PREFIX + d
            if col in sel.columns:
                m, iv = t_interval(sel[col].dropna())
                per_domain[d] = {"mean": m, "interval": iv}
        per_arm[arm] = {"seeds": sorted(int(s) for s in sel["seed"]), "objective": mean,
                        "interval": interval, "per_domain": per_domain}
    paired = []
    for i, a in enumerate(arms):
        for b in arms[i + 1:]:
            both = by_seed[a].index.intersection(by_seed[b].index)
            diff = (by_seed[a][both] - by_seed[b][both]).to_numpy()
            mean, interval = t_interval(diff, level)
            p = float(stats.ttest_1samp(diff, 0.0).pvalue) if len(diff) >= 2 and diff.std() > 0 else math.nan
            paired.append({"a": a, "b": b, "seeds": len(diff), "difference": mean,
                           "interval": interval, "p_value": p})
    return {"level": level, "arms": per_arm, "paired": paired}


def search_compute(runs: pd.DataFrame, utilisation: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a search spent on its proxies: trials, tokens trained (each trial's last evaluation),
    FLOPs where the runs record the model size (6 N D), and busy trial hours (Tune's time)."""
    final = final_rows(runs)
    tokens = float(final["tokens"].sum())
    flops = float((6.0 * final["params"] * final["tokens"]).sum()) if "params" in final.columns else None
    busy = (utilisation or {}).get("busy_trial_seconds")
    return {"trials": int(final["key"].nunique()), "proxy_tokens": tokens, "flops": flops,
            "trial_hours": None if busy is None else float(busy) / 3600.0}
