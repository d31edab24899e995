"""`autoscale-ray compare OUT1 OUT2 ...`: train each finished search's recommendation (and the
uniform mixture) at the target budget with K seeds in ONE Tune experiment, and report each arm's
losses with intervals, the paired differences between arms, and what each search spent.

The training setup (corpus, model, batch) is the first search's, read from its marker (the
config values it trained with), or a `--config` file's; each arm trains at its recommendation's
peak LR (uniform: the first search's). Everything is checked before Ray starts; the results are
written atomically into `--out` (default results/compare): comparison.json, comparison.md,
comparison.png and the target runs' table comparison_runs.parquet.
"""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from autoscale_ray.atomic import atomic_path, write_json, write_text
from autoscale_ray.config import ExperimentConfig, load_config, parse_config
from autoscale_ray.errors import BadInput
from autoscale_ray.fits.comparison import search_compute, summarize
from autoscale_ray.formatting import format_table
from autoscale_ray.storage import Store
from autoscale_ray.tuning import cluster, folder, layout
from autoscale_ray.tuning.specs import TrialSpec

FILES = ("comparison.json", "comparison.md", "comparison.png", "comparison_runs.parquet")


def finished_search(location: str) -> dict[str, Any]:
    """A finished search's marker, recommendation and runs; BadInput naming what is missing."""
    store = Store(location)
    marker = folder.read_marker(store)
    if marker is None or marker.get("state") != "complete" or not store.exists(layout.RECOMMENDATION) \
            or not store.exists(layout.RUNS):
        state = "no search" if marker is None else f"a search in state {marker.get('state')!r}"
        raise BadInput(f"not a finished search folder ({state})", location,
                       "give the --out of a completed `autoscale-ray run`")
    rec = json.loads(store.read_text(layout.RECOMMENDATION))
    runs = pd.read_parquet(io.BytesIO(store.read_bytes(layout.RUNS)))
    return {"location": store.location, "marker": marker, "recommendation": rec, "runs": runs}


def config_from_marker(values: dict[str, Any], source: str) -> ExperimentConfig:
    """The training setup a search recorded (corpus, model, batch) as a config: the corpus cache is
    the default one (the marker does not keep the machine's paths)."""
    c = values["corpus"]
    corpus = {k: c[k] for k in ("seq_len", "tokenizer", "val_tokens")}
    corpus[c["kind"]] = {"synthetic": c.get("synthetic") or True, "domains": c.get("domains")}.get(c["kind"], True)
    s = values["search"]
    return parse_config({"name": f"compare-{values['name']}", "corpus": corpus, "train": values["train"],
                         "search": {"probe_budgets": s["probe_budgets"], "target_budget": s["target_budget"],
                                    "lr": 1e-3}}, source)


def arms(searches: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Arm name -> {weights, lr, source}: each search by its method (its folder's name where two
    share a method), then the uniform mixture unless a search recommends it already."""
    methods = [s["recommendation"].get("method", "autoscale") for s in searches]
    out: dict[str, dict[str, Any]] = {}
    for s, method in zip(searches, methods):
        name = method if methods.count(method) == 1 else f"{method}:{Path(s['location']).name}"
        if name in out or name == "uniform-mixture":
            name = f"{name}:{len(out)}"
        rec = s["recommendation"]
        out[name] = {"weights": dict(rec["weights"]), "lr": float(rec["lr"]), "source": s["location"]}
    first = searches[0]["recommendation"]
    uniform = {d: 1 / len(first["weights"]) for d in first["weights"]}
    if not any(all(abs(a["weights"][d] - u) < 1e-9 for d, u in uniform.items()) for a in out.values()):
        out["uniform-mixture"] = {"weights": uniform, "lr": float(first["lr"]), "source": None}
    return out


def check(searches: Sequence[dict[str, Any]], seeds: int, budget: int | None) -> int:
    """The searches agree on their domains (and target, unless `budget` is given); seeds >= 1.
    Returns the target budget."""
    if seeds < 1:
        raise BadInput(f"--seeds {seeds}", "--seeds", "give at least 1 seed per arm (3 or more for intervals)")
    if len(searches) < 1:
        raise BadInput("no search folder given", "compare", "give one or more finished search folders")
    first = sorted(searches[0]["recommendation"]["weights"])
    for s in searches[1:]:
        mine = sorted(s["recommendation"]["weights"])
        if mine != first:
            raise BadInput(f"domains {', '.join(mine)} differ from {searches[0]['location']}'s "
                           f"({', '.join(first)})", s["location"], "compare searches of the same corpus")
    targets = {int(s["recommendation"]["tokens"]) for s in searches}
    if budget is None and len(targets) > 1:
        raise BadInput(f"the searches target different budgets ({', '.join(map(str, sorted(targets)))})",
                       "compare", "give --budget T to train every arm at one budget")
    return int(budget) if budget is not None else targets.pop()


def compare(outs: Sequence[str], *, seeds: int = 3, budget: int | None = None, out: str | None = None,
            config: str | None = None, address: str | None = None, dashboard: bool = True) -> dict[str, Any]:
    """Train every arm at the target with `seeds` seeds; returns what comparison.json holds."""
    import ray

    from autoscale_ray import pipeline
    from autoscale_ray.searchers.trial_list import TrialListPlan
    from autoscale_ray.tuning.contract import build_contract
    from autoscale_ray.tuning.idle_actors import idle_actors_kept

    searches = [finished_search(o) for o in outs]
    target = check(searches, seeds, budget)
    cfg = load_config(config) if config else config_from_marker(searches[0]["marker"]["config"],
                                                                f"{searches[0]['location']} (marker)")
    store = Store(out if out is not None else Path("results") / "compare")
    if store.exists(FILES[0]) or (store.local and Path(store.path).is_dir() and any(Path(store.path).iterdir())):
        raise BadInput("the output folder is not empty", store.location, "give a new --out for the comparison")
    the_arms = arms(searches)
    train_cfg = cfg.train_config(budget_tokens=target, lr=1e-3)
    train_cfg.total_steps(cfg.corpus.seq_len, "--budget")
    ray_target = cluster.target(address)
    cluster.check_answers(ray_target)
    sources = pipeline.corpus_sources(cfg)
    pipeline.start_ray(cfg, ray_target, dashboard=dashboard)
    corpus = pipeline.prepare(cfg, sources)
    domains = list(searches[0]["recommendation"]["weights"])
    if sorted(corpus.domains) != sorted(domains):
        raise BadInput(f"the corpus has domains {', '.join(corpus.domains)}, the searches "
                       f"{', '.join(domains)}", config or "compare", "give --config with the searches' corpus")
    specs = [TrialSpec(f"compare/{arm}/{seed}", "compare", target, a["weights"], a["lr"], seed, None, {"arm": arm})
             for arm, a in the_arms.items() for seed in range(seeds)]
    tune_store = layout.tune_store(store, None)
    contract = build_contract(cfg, corpus.root, store)
    name = pipeline.predictor_name(cfg)
    predictor = pipeline.start_search_predictor(cfg, tuple(corpus.domains), {d: 1 / len(domains) for d in domains},
                                                name=name)
    tuner, _ = pipeline.make_tuner(cfg, contract, TrialListPlan(specs), store, tune_store, cfg.name,
                                   predictor=name)
    print(f"[autoscale-ray] compare: {len(the_arms)} arms x {seeds} seeds at {target:.4g} tokens",
          file=sys.stderr, flush=True)
    try:
        with pipeline.experiment_snapshots(tune_store), idle_actors_kept(cfg.resources.max_concurrent_trials):
            tuner.fit()
        rows = ray.get(predictor.frame.remote())
    finally:
        ray.kill(predictor)  # its rows are this comparison's only
    if rows.empty:
        raise RuntimeError("no target run finished: see the warnings")
    result = summarize(rows, list(the_arms), domains)
    result.update(tokens=target, seeds=seeds, setup=cfg.source)
    for arm, a in the_arms.items():
        result["arms"][arm].update(weights=a["weights"], lr=a["lr"], source=a["source"])
    for s, arm in zip(searches, the_arms):
        result["arms"][arm]["search_compute"] = search_compute(
            s["runs"], s["recommendation"].get("evidence", {}).get("utilisation"))
    write(store, rows, result)
    return result


def table(result: dict[str, Any]) -> str:
    """The comparison as a plain-text table (the markdown file and the CLI print it)."""
    level = int(round(100 * result["level"]))
    span = lambda iv: "-" if any(not math.isfinite(v) for v in iv) else f"[{iv[0]:.4g}, {iv[1]:.4g}]"  # noqa: E731
    rows = []
    for arm, a in result["arms"].items():
        c = a.get("search_compute") or {}
        rows.append([arm, len(a["seeds"]), a["objective"], span(a["interval"]), c.get("trials", "-"),
                     f"{c['proxy_tokens']:.3g}" if c else "-",
                     f"{c['trial_hours']:.3g}" if c and c.get("trial_hours") is not None else "-"])
    lines = [format_table(["arm", "seeds", "target loss", f"{level}% interval", "search trials",
                           "proxy tokens", "trial hours"], rows), ""]
    pairs = [[f"{p['a']} - {p['b']}", p["seeds"], p["difference"], span(p["interval"]),
              "-" if not math.isfinite(p["p_value"]) else f"{p['p_value']:.3g}"] for p in result["paired"]]
    lines.append(format_table(["paired difference", "seeds", "mean", f"{level}% interval", "p"], pairs))
    return "\n".join(lines)


def write(store: Store, rows: pd.DataFrame, result: dict[str, Any]) -> None:
    """comparison.json, .md, .png and the runs, each written atomically (locally, then uploaded)."""
    import tempfile

    work = Path(store.path) if store.local else Path(tempfile.mkdtemp(prefix="autoscale-ray-compare-"))
    work.mkdir(parents=True, exist_ok=True)
    with atomic_path(work / FILES[3]) as tmp:
        rows.to_parquet(tmp, index=False)
    plot(result, work / FILES[2])
    write_text(work / FILES[1], f"# autoscale-ray comparison at {result['tokens']:.4g} tokens\n\n```\n"
               f"{table(result)}\n```\n\n![comparison]({FILES[2]})\n")
    write_json(work / FILES[0], result)
    if not store.local:
        store.upload(work)


def plot(result: dict[str, Any], path: Path) -> None:
    """Each arm's target loss with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["arms"])
    means = [result["arms"][a]["objective"] for a in names]
    err = [[m - a["interval"][0] if math.isfinite(a["interval"][0]) else 0 for m, a in
            zip(means, result["arms"].values())],
           [a["interval"][1] - m if math.isfinite(a["interval"][1]) else 0 for m, a in
            zip(means, result["arms"].values())]]
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 3.5))
    ax.errorbar(range(len(names)), means, yerr=err, fmt="o", capsize=4)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set(ylabel="final loss at the target (mean over domains)",
           title=f"{len(names)} arms x {result['seeds']} seeds at {result['tokens']:.3g} tokens")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
