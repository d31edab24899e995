"""`report.md` with PNG plots for a finished search, rebuilt from `runs.parquet` and
`recommendation.json` alone (so `autoscale-ray report DIR` needs no Ray and no rerun)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from autoscale_ray.atomic import atomic_path, write_text
from autoscale_ray.errors import BadInput
from autoscale_ray.formatting import format_table
from autoscale_ray.runs import read_runs
from autoscale_ray.tuning import layout
from autoscale_ray.storage import Store, is_uri


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path.name


def plot_loss_curves(frame: pd.DataFrame, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    colors = {"lr": "tab:gray", "ddo": "tab:blue", "verify": "tab:green", "target": "tab:red",
              "swarm": "tab:purple", "mixlaw": "tab:orange"}
    colors = {k: c for k, c in colors.items() if k in set(frame["stage"])}
    for (key, stage), run in frame.groupby(["key", "stage"], sort=False):
        run = run.sort_values("tokens")
        ax.plot(run["tokens"], run["loss"], color=colors.get(stage, "k"), alpha=0.6, lw=1)
    for stage, c in colors.items():
        ax.plot([], [], color=c, label=stage)
    ax.set(xscale="log", xlabel="tokens", ylabel="validation loss (mean over domains)",
           title="Loss curves of every trial")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_lr_law(frame: pd.DataFrame, rec: dict[str, Any], path: Path) -> str | None:
    import matplotlib.pyplot as plt

    law = rec["evidence"].get("lr_law")
    sweep = frame[frame["stage"] == "lr"]
    if sweep.empty:
        return None
    final = sweep.loc[sweep.groupby("key")["tokens"].idxmax()]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for budget, grp in final.groupby("budget"):
        grp = grp.sort_values("lr")
        a1.plot(grp["lr"], grp["loss"], "o-", label=f"D = {budget:.3g}")
    a1.set(xscale="log", xlabel="peak LR", ylabel="final loss", title="LR sweeps per horizon")
    a1.legend(fontsize=8)
    target = float(rec["tokens"])
    if law:
        d = np.geomspace(final["budget"].min() / 2, target * 2, 50)
        a2.plot(d, law["B"] * d ** -law["beta"], "-", label=f"LR* = {law['B']:.3g} D^-{law['beta']:.3f}")
    for h in rec["evidence"].get("lr_horizons", []):
        if h["lr_star"] and np.isfinite(h["lr_star"]):
            a2.plot([h["tokens"]], [h["lr_star"]], "o" if h["used"] else "x", color="tab:blue")
    a2.plot([], [], "o", color="tab:blue", label="per-horizon LR* (x: not bracketed)")
    a2.plot([target], [rec["lr"]], "r*", ms=12, label=f"target LR {rec['lr']:.3g}")
    lo, hi = rec.get("lr_interval") or [None, None]
    if lo is not None and hi is not None and np.isfinite([lo, hi]).all():
        a2.errorbar([target], [rec["lr"]], yerr=[[rec["lr"] - lo], [hi - rec["lr"]]], color="r")
    a2.set(xscale="log", yscale="log", xlabel="tokens D", ylabel="optimal peak LR",
           title="LR-horizon law (Bjorck et al. 2024)")
    a2.legend(fontsize=8)
    return _save(fig, path)


def plot_mixtures(rec: dict[str, Any], path: Path) -> str:
    import matplotlib.pyplot as plt

    optima = rec["evidence"]["probe_optima"]
    budgets = [float(b) for b in optima] + [float(rec["tokens"])]
    domains = list(rec["weights"])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for d in domains:
        ys = [optima[b]["weights"][d] for b in optima] + [rec["weights"][d]]
        line, = ax.plot(budgets[:-1], ys[:-1], "o-", label=d)
        ax.plot(budgets[-2:], ys[-2:], "--", color=line.get_color())
        ax.plot(budgets[-1:], ys[-1:], "*", ms=12, color=line.get_color())
        # error bars: each probe optimum's and the target's intervals (where recorded)
        ivs = [optima[b].get("intervals", {}).get(d) for b in optima] + \
            [(rec.get("weights_interval") or {}).get(d)]
        for x, y, iv in zip(budgets, ys, ivs):
            if iv is not None:
                ax.errorbar([x], [y], yerr=[[y - iv[0]], [iv[1] - y]], color=line.get_color(),
                            capsize=3, lw=1)
        law = (rec["evidence"].get("budget_law") or {})
        if law.get("used"):  # the second extrapolation the intervals hold
            ax.plot(budgets[-1:], [law["weights"][d]], "x", ms=9, color=line.get_color())
    swarm = rec["evidence"].get("swarm")
    title = ("the mixing law's optimum at the target model and budget (*), with intervals"
             if rec.get("projector") == "mixing-law" else
             f"{swarm['method']}'s mixture (*), used unchanged at the target" if swarm else
             "DDO optima (o), the AutoScale projection (*) and the budget law (x)"
             if (rec["evidence"].get("budget_law") or {}).get("used") else
             "DDO optima (o) and the AutoScale projection (*), with intervals")
    ax.set(xscale="log", xlabel="token budget", ylabel="weight", title=title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_responses(frame: pd.DataFrame, rec: dict[str, Any], path: Path) -> str:
    """Per domain: the fitted f_i(x) + sum_{j != i} f_j(1) against the runs that perturb it (a
    swarm method: each run's final objective against the domain's weight)."""
    import matplotlib.pyplot as plt

    if rec["evidence"].get("swarm") or rec.get("projector") == "mixing-law":
        return plot_swarm(frame, rec, path)

    optima = rec["evidence"]["probe_optima"]
    domains = list(rec["weights"])
    fig, axes = plt.subplots(1, len(domains), figsize=(3.2 * len(domains), 3.2), squeeze=False)
    final = frame.loc[frame.groupby("key")["tokens"].idxmax()].set_index("run_id")
    x = np.geomspace(0.1, 4, 100)
    for budget, opt in optima.items():
        resp, pert = opt["responses"], opt["perturbations"]
        f1 = {d: (1 + resp[d]["a"]) ** -resp[d]["b"] + resp[d]["c"] for d in domains}
        base = float(opt["objective_base"])
        for ax, d in zip(axes[0], domains):
            rest = sum(f1[j] for j in domains if j != d)
            line, = ax.plot(x, (x + resp[d]["a"]) ** -resp[d]["b"] + resp[d]["c"] + rest,
                            label=f"N = {float(budget):.3g}")
            pts = [(p["factor"], final.loc[rid, "loss"] / base) for rid, p in pert.items()
                   if p["domain"] == d and rid in final.index]
            pts.append((1.0, 1.0))
            ax.plot(*zip(*pts), "o", color=line.get_color())
            ax.axvline(opt["multipliers"][d], color=line.get_color(), ls=":", lw=1)
            ax.set(xscale="log", title=d, xlabel="multiplier x of the base quantity")
    axes[0][0].set_ylabel("objective / base objective")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def plot_swarm(frame: pd.DataFrame, rec: dict[str, Any], path: Path) -> str:
    """Per domain: each swarm run's (a mixing-law search: each probe run's, one colour per model
    size) final objective against the domain's weight, the chosen weight (line) and its interval
    (band)."""
    import matplotlib.pyplot as plt

    domains = list(rec["weights"])
    law = rec.get("projector") == "mixing-law"
    runs = frame[frame["stage"] == ("mixlaw" if law else "swarm")]
    final = runs.loc[runs.groupby("key")["tokens"].idxmax()]
    fig, axes = plt.subplots(1, len(domains), figsize=(3.2 * len(domains), 3.2), squeeze=False)
    chosen = rec["weights"] if law else rec["evidence"]["swarm"]["weights"]
    groups = list(final.groupby("params")) if law else [(None, final)]
    for ax, d in zip(axes[0], domains):
        for n, g in groups:
            ax.plot(g[f"w.{d}"], g["loss"], "o", alpha=0.7, color=None if law else "tab:purple",
                    label=None if n is None else f"N = {float(n):.3g}")
        ax.axvline(chosen[d], color="k", lw=1)
        lo, hi = (rec.get("weights_interval") or {}).get(d, (chosen[d], chosen[d]))
        ax.axvspan(lo, hi, color="k", alpha=0.1)
        ax.set(title=d, xlabel="weight in the run")
    axes[0][0].set_ylabel("final loss (mean over domains)")
    if law:
        axes[0][0].legend(fontsize=7)
    fig.suptitle("mixing law: the probe runs and the law's optimum at the target" if law else
                 f"{rec['evidence']['swarm']['method']}: the swarm's runs and the chosen mixture", fontsize=9)
    return _save(fig, path)


REC_KEYS = {"weights": dict, "tokens": (int, float), "lr": (int, float), "at_bound": list,
            "expected_loss": dict, "evidence": dict}


def read_recommendation(path: Path) -> dict[str, Any]:
    """recommendation.json of a finished search, with the keys the report reads; BadInput else."""
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise BadInput("not a JSON recommendation", str(path), "rerun the search or restore the file") from None
    if not isinstance(rec, dict):
        raise BadInput("not a recommendation object", str(path), "rerun the search or restore the file")
    for key, kind in REC_KEYS.items():
        if not isinstance(rec.get(key), kind):
            raise BadInput(f"no valid `{key}`", str(path), "give the recommendation.json `autoscale-ray run` wrote")
    if not isinstance(rec["evidence"].get("probe_optima"), dict) or \
            not isinstance(rec["evidence"].get("trials"), (list, dict)) or \
            not isinstance(rec["expected_loss"].get("per_domain"), dict):
        raise BadInput("no `evidence.probe_optima`, `evidence.trials` or `expected_loss.per_domain`", str(path),
                       "give the recommendation.json `autoscale-ray run` wrote")
    return rec


def trust_lines(rec: dict[str, Any], frame: pd.DataFrame) -> list[str]:
    """The report's opening section: how far to trust the recommendation (fits/trust.py), with
    what to run to tighten each point."""
    trust = rec.get("trust")
    if not isinstance(trust, dict):
        return []
    lines = ["## How far to trust this", "", f"- {trust['verdict']}."]
    if trust.get("projector") == "mixing-law":
        return lines + _mixlaw_trust_lines(rec, trust, frame)
    swarm = trust.get("method") is not None
    for probe, n in (trust.get("noise") or {}).items():
        noise = n.get("noise") or {}
        snr = n.get("snr") or {}
        sd = noise.get("objective_sd")
        measured = (f"sd {sd:.3g} of the objective over {noise.get('replicates')} "
                    f"{'seeds of the prior mixture' if swarm else 'base seeds'}"
                    if sd is not None else "not measured (one base run)")
        if swarm:
            gap = (trust.get("median_snr") or {}).get(probe)
            lines.append(f"- swarm at {float(probe):.3g} tokens: noise {measured}"
                         + (f"; best vs median mixture {gap:.2g} noise sd" if gap is not None else ""))
            continue
        lines.append(f"- probe {float(probe):.3g} tokens: noise {measured}; signal/noise per domain "
                     + ", ".join(f"{d} {v:.2g}" if v is not None else f"{d} -" for d, v in snr.items()))
    widths = trust.get("interval_widths") or {}
    if widths:
        lines.append(f"- {int(100 * trust['level'])}% intervals of the target weights: widths "
                     + ", ".join(f"{d} {w:.3g}" for d, w in widths.items()))
    lines += [f"- {line}" for line in trust.get("at_bound_lines", []) + trust.get("capped_lines", [])]
    lines += _model_gap_lines(trust.get("model_gap"), (rec.get("evidence") or {}).get("budget_law"))
    failed = sorted(frame.loc[frame.get("status", pd.Series(dtype=str)).astype(str) == "failed", "run_id"]
                    .astype(str).unique()) if "status" in frame.columns else []
    if failed:
        lines.append(f"- trials left out of the fits (failed or diverged): {', '.join(failed)}")
    lr_source = ("is the configured search.lr" if rec.get("lr_interval_method") == "fixed" else
                 "rests on the prior exponent" if trust.get("lr_on_prior") else "comes from the fitted LR law")
    lines.append(f"- the LR {lr_source}; the target is {trust['extrapolation_factor']:.3g}x the "
                 f"{'swarm budget' if swarm else 'largest probe'}")
    if trust.get("actions"):
        lines += ["", "To tighten it:", *[f"- {a}" for a in trust["actions"]]]
    return lines + [""]


def _model_gap_lines(gap: dict[str, Any] | None, law: dict[str, Any] | None) -> list[str]:
    """The second extrapolation (fits/budget_law.py): in the intervals or not, and where it and
    AutoScale's projection disagree."""
    if not law:
        return []
    if not law.get("used"):
        return [f"- the budget transfer law (every probe's runs, per-domain losses in effective tokens) "
                f"{law.get('reason', 'was not fitted')}; the intervals hold AutoScale's projection only"]
    weights = ", ".join(f"{d} {round(w, 4):.3g}" for d, w in law["weights"].items())
    line = (f"- a second extrapolation, the budget transfer law over every probe's runs, "
            f"{law['reason']} and is in the intervals: its mixture at the target {weights}")
    if gap and gap.get("domains"):
        line += (f"; it disagrees with AutoScale's projection beyond its own interval on "
                 f"{', '.join(gap['domains'])}")
    return [line]


def _expected_line(rec: dict[str, Any]) -> str:
    exp = rec["expected_loss"]
    if exp["source"] == "mixing-law":
        return (f"Expected per-domain losses: the mixing law's prediction at the target model and budget, "
                f"fitted on {len(exp['runs'])} probe runs; mean {exp['objective']:.4g} "
                f"[{exp['objective_interval'][0]:.4g}, {exp['objective_interval'][1]:.4g}].")
    return f"Expected per-domain losses: L(D) fits on the {exp['source']} runs ({', '.join(exp['runs'])})."


def _mixlaw_trust_lines(rec: dict[str, Any], trust: dict[str, Any], frame: pd.DataFrame) -> list[str]:
    """The trust section's points for the mixing-law projector (fits/trust.mixlaw_trust)."""
    law = rec["evidence"]["mixing_law"]
    lines = []
    for key, n in (trust.get("noise") or {}).items():
        noise, snr = n.get("noise") or {}, (trust.get("median_snr") or {}).get(key)
        sd = noise.get("objective_sd")
        lines.append(f"- probe model {noise.get('params', 0):.3g} parameters at {noise.get('budget', 0):.3g} "
                     "tokens: noise " + (f"sd {sd:.3g} over {noise.get('replicates')} base seeds; the design's "
                                         f"mixtures spread the loss by {snr:.2g} sd" if sd else "not measured"))
    err = trust.get("held_out_error")
    lines.append(f"- the law ({law['form']} form): held-out error "
                 + (f"{100 * err:.2f}% on the largest probe model ({law['held_out_params']:.3g} parameters), "
                    "fitted without it" if err is not None else "not measured"))
    widths = trust.get("interval_widths") or {}
    if widths:
        lines.append(f"- {int(100 * trust['level'])}% intervals of the target weights: widths "
                     + ", ".join(f"{d} {w:.3g}" for d, w in widths.items()))
    lines += [f"- {line}" for line in trust.get("at_bound_lines", []) + trust.get("capped_lines", [])]
    lines += _model_gap_lines(trust.get("model_gap"), (rec.get("evidence") or {}).get("budget_law"))
    failed = sorted(frame.loc[frame["status"].astype(str) == "failed", "run_id"].astype(str).unique()) \
        if "status" in frame.columns else []
    if failed:
        lines.append(f"- trials left out of the fits (failed or diverged): {', '.join(failed)}")
    lines.append(f"- the LR is the configured search.lr; the target ({float(rec['target_params']):.3g} "
                 f"parameters, {float(rec['tokens']):.3g} tokens) is {trust['params_factor']:.3g}x the largest "
                 f"probe model and {trust['extrapolation_factor']:.3g}x its most tokens")
    if trust.get("actions"):
        lines += ["", "To tighten it:", *[f"- {a}" for a in trust["actions"]]]
    return lines + [""]


def _slot_line(util: dict[str, Any]) -> str:
    """The slots' idle time: between trials (median gap) and the experiment's start and end."""
    if util.get("median_gap_s") is None:
        return ""
    return (f"; idle between trials in a slot: median {util['median_gap_s']:.2f} s, 90th percentile "
            f"{util['p90_gap_s']:.2f} s; experiment start {util['start_s']:.1f} s, end {util['end_s']:.1f} s"
            + (f"; fits {util['fit_seconds']:.1f} s (the slots wait for each probe's fit and for the answer)"
               if util.get("fit_seconds") is not None else "") + _longest_wait(util.get("per_trial") or {}))


def _longest_wait(trials: dict[str, Any]) -> str:
    """The trial whose span exceeded its training most (start-up, or Tune's loop busy with a fit)."""
    waits = {k: t["beyond_training_s"] for k, t in trials.items() if t.get("beyond_training_s") is not None}
    if not waits:
        return ""
    key = max(waits, key=lambda k: (waits[k], k))
    return f"; the longest span beyond training: {key}, {waits[key]:.1f} s"


def write_report(folder: str | Path, name: str | None = None) -> Path:
    """Write `report.md` and its plots into `folder` from `runs.parquet` and `recommendation.json`;
    `name` titles it (default: the folder's name)."""
    root = Path(folder)
    rec_path, runs_path = root / layout.RECOMMENDATION, root / layout.RUNS
    for p in (rec_path, runs_path):
        if not p.exists():
            raise BadInput("not a finished search folder (missing file)", str(p),
                           "give the --out folder of `autoscale-ray run`")
    rec = read_recommendation(rec_path)
    frame = read_runs(runs_path).frame  # both read and checked before any plot is written
    curves, lr_law, mixtures, responses = (root / plot for plot in layout.PLOTS)
    plots = [plot_loss_curves(frame, curves), plot_lr_law(frame, rec, lr_law),
             plot_mixtures(rec, mixtures), plot_responses(frame, rec, responses)]
    ev = rec["evidence"]
    optima = ev["probe_optima"]
    wint, lint = rec.get("weights_interval") or {}, rec.get("expected_loss_interval") or {}
    span = lambda iv, d: f"[{iv[d][0]:.3g}, {iv[d][1]:.3g}]" if d in iv and all(  # noqa: E731
        isinstance(v, (int, float)) and np.isfinite(v) for v in iv[d]) else "-"
    rows = [[d, *[optima[b]["weights"][d] for b in optima], w, span(wint, d),
             rec["expected_loss"]["per_domain"].get(d), span(lint, d),
             "yes" if d in rec["at_bound"] else ("capped" if d in rec.get("capped", []) else "")]
            for d, w in rec["weights"].items()]
    level = int(round(100 * float(rec.get("interval_level", 0.9))))
    headers = ["domain", *[f"DDO @ {float(b):.3g}" for b in optima], f"target @ {float(rec['tokens']):.3g}",
               f"{level}% interval", "expected loss", f"{level}% interval", "at bound / cap"]
    lo, hi = rec.get("lr_interval") or [None, None]
    util = ev.get("utilisation", {})
    lines = [
        f"# autoscale-ray report: {name or root.name}", "",
        *trust_lines(rec, frame),
        f"Recommendation for a {float(rec['tokens']):.4g}-token run"
        + (f" of a {float(rec['target_params']):.3g}-parameter model by the mixing law"
           if rec.get("projector") == "mixing-law" else f" by method {rec.get('method', 'autoscale')}")
        + " "
        f"(from {len(ev['trials'])} proxy trials; every number below comes from them).", "",
        "```", format_table(headers, rows), "```", "",
        f"Peak LR: **{rec['lr']:.4g}**" + (f" ({level}% interval {lo:.3g} to {hi:.3g}, "
                                         f"{rec.get('lr_interval_method', 'law')})"
                                         if lo is not None and hi is not None and np.isfinite([lo, hi]).all()
                                         else " (no interval)"),
        "", _expected_line(rec), "",
    ]
    if util:
        lines += [f"Trials: {util.get('trials')} ({util.get('errors')} errors); utilisation "
                  f"{util.get('utilisation', float('nan')):.2f} = busy trial time "
                  f"{util.get('busy_trial_seconds', 0):.0f} s / (wall {util.get('wall_seconds', 0):.0f} s "
                  f"x {util.get('slots')} slots)" + _slot_line(util) + ".", ""]
    if ev.get("notes"):
        lines += ["## Warnings", "", *[f"- {n}" for n in ev["notes"]], ""]
    lines += ["## Plots", ""] + [f"![{p}]({p})" for p in plots if p]
    write_text(root / layout.REPORT, "\n".join(lines) + "\n")
    return root / layout.REPORT


def rebuild_report(location: str) -> str:
    """Rebuild the report of a finished search folder or URI in place; returns where it went. On
    object storage the report is built in a local folder from the two inputs, then uploaded."""
    if not is_uri(location):
        return str(write_report(location))
    store = Store(location)
    inputs = (layout.RUNS, layout.RECOMMENDATION)
    missing = [name for name in inputs if not store.exists(name)]
    if missing:
        raise BadInput(f"not a finished search folder (no {', '.join(missing)})", location,
                       "give the --out URI of `autoscale-ray run`")
    with tempfile.TemporaryDirectory() as tmp:
        for name in inputs:
            (Path(tmp) / name).write_bytes(store.read_bytes(name))
        write_report(tmp, store.location.rsplit("/", 1)[-1])
        for name in inputs:
            (Path(tmp) / name).unlink(missing_ok=True)
        store.upload(tmp)
    return store.uri(layout.REPORT)
