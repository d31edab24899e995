"""The experiment config of `autoscale-ray run CONFIG.yaml`, validated with one-line errors.

```yaml
name: local-demo
corpus:                      # exactly one of: embedded: true | synthetic: true (or {docs_per_domain,
                             # doc_chars, seed}) | domains: {...}
  embedded: true
  seq_len: 128
  tokenizer: byte            # or the path of a tokenizers tokenizer.json
  val_tokens: 16384
train:                       # any TrainConfig field but budget_tokens, weights, lr and seed
  model: gpt2-tiny
  global_batch_tokens: 4096
search:
  probe_budgets: [2.0e5, 8.0e5]
  target_budget: 3.2e6
  lr_grid: [1.0e-3, 2.0e-3, 4.0e-3, 8.0e-3]    # or lr: 3.0e-3 (no LR stage)
  ddo: {down: 0.2, up: 3.0, design: fixed-others, min_multiplier: 0.2}
resources:
  max_concurrent_trials: 2
  cpus_per_trial: 1
  trials_per_gpu: 0          # > 0: that many in-process proxies share one GPU
  gpus_per_trial: 0          # n >= 1: n Ray Train workers with one GPU each (= train.num_workers)
  max_failures: 1            # Tune retries of a failed trial, from its last checkpoint
storage_path: null           # Tune's experiment folder (default <out>/tune): a path or s3:// / gs://
```
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from autoscale_ray.errors import BadInput
from autoscale_ray.train.config import TrainConfig
from autoscale_ray.train.models import PRESETS

SEARCH_OWNED = ("budget_tokens", "weights", "lr", "seed")  # set per trial by the searcher


@dataclass(frozen=True)
class CorpusSpec:
    kind: str                                   # embedded | synthetic | domains
    domains: Mapping[str, Any] = field(default_factory=dict)
    seq_len: int = 128
    tokenizer: str = "byte"
    val_tokens: int = 16_384
    cache_dir: str | None = None
    synthetic: Mapping[str, int] = field(default_factory=dict)  # synthetic_corpus() sizes


@dataclass(frozen=True)
class SearchSpec:
    probe_budgets: tuple[int, ...]
    target_budget: int
    lr_grid: tuple[float, ...] = ()
    lr: float | None = None
    base_weights: Mapping[str, float] | None = None
    down: float = 0.2
    up: float = 3.0
    design: str = "fixed-others"
    min_multiplier: float = 0.2
    verify_probe: bool = True
    target_seeds: int = 0
    metric: str = "mean-loss"
    min_weight: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class ResourceSpec:
    max_concurrent_trials: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0       # < 1 packs proxies on a GPU; n >= 1: n Train workers x 1 GPU
    trials_per_gpu: int = 0           # shorthand for gpus_per_trial = 1 / trials_per_gpu
    in_process: str = "auto"          # auto: tiny CPU proxies train in the trial's process
    max_failures: int = 1             # Tune retries of a failed trial (from its checkpoint)


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    corpus: CorpusSpec
    train: Mapping[str, Any]
    search: SearchSpec
    resources: ResourceSpec
    storage_path: str | None = None
    source: str = "<config>"

    def train_config(self, **per_trial: Any) -> TrainConfig:
        return TrainConfig.from_mapping({**self.train, **per_trial}, f"{self.source}: train")


def _section(obj: Mapping[str, Any], key: str, where: str, required: bool = True) -> dict[str, Any]:
    value = obj.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping):
        raise BadInput(f"`{key}` must be a mapping", where, f"add a `{key}:` section")
    return dict(value)


def _known(values: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise BadInput(f"unknown key(s) {', '.join(unknown)}", where, f"allowed: {', '.join(sorted(allowed))}")


def _number(value: Any, where: str, *, positive: bool = True, integer: bool = False) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0):
        raise BadInput(f"{value!r} is not a {'positive ' if positive else ''}number", where)
    return int(round(value)) if integer else float(value)


def _whole(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"{value!r} is not a whole number >= 1", where)
    return value


def _dataclass_from(cls, values: Mapping[str, Any], where: str, convert: Mapping[str, Any]):
    _known(values, {f.name for f in dataclasses.fields(cls)}, where)
    return cls(**{k: convert.get(k, lambda v, w: v)(v, f"{where}.{k}") for k, v in values.items()})


def parse_config(obj: Any, source: str = "<config>") -> ExperimentConfig:
    """Validate a parsed YAML mapping."""
    if not isinstance(obj, Mapping):
        raise BadInput("the config must be a YAML mapping", source)
    _known(obj, {"name", "corpus", "train", "search", "resources", "storage_path"}, source)

    c = _section(obj, "corpus", source)
    kinds = [k for k in ("embedded", "synthetic", "domains") if c.get(k)]
    if len(kinds) != 1:
        raise BadInput("the corpus needs exactly one of `embedded: true`, `synthetic: true` or "
                       "`domains: {name: {paths: [...]}}`", f"{source}: corpus")
    rest = {k: v for k, v in c.items() if k not in ("embedded", "synthetic", "domains")}
    for key in ("cache_dir", "tokenizer"):
        if key in rest and (not isinstance(rest[key], str) or not rest[key]):
            raise BadInput(f"{key} {rest[key]!r} is not a path", f"{source}: corpus.{key}")
    if rest.get("tokenizer", "byte") != "byte" and not Path(rest["tokenizer"]).expanduser().is_file():
        raise BadInput(f"tokenizer file `{rest['tokenizer']}` not found", f"{source}: corpus.tokenizer",
                       "give \"byte\" or the path of a `tokenizers` tokenizer.json")
    synthetic = c.get("synthetic")
    if isinstance(synthetic, Mapping):  # size of the generated corpus
        _known(synthetic, {"docs_per_domain", "doc_chars", "seed"}, f"{source}: corpus.synthetic")
        rest["synthetic"] = {k: _number(v, f"{source}: corpus.synthetic.{k}", positive=k != "seed",
                                        integer=True) for k, v in synthetic.items()}
    corpus = _dataclass_from(CorpusSpec, {"kind": kinds[0], "domains": c.get("domains") or {}, **rest},
                             f"{source}: corpus", {
                                 "seq_len": lambda v, w: _number(v, w, integer=True),
                                 "val_tokens": lambda v, w: _number(v, w, integer=True)})

    train = _section(obj, "train", source, required=False)
    model = train.get("model", "gpt2-tiny")
    if not isinstance(model, str) or (model not in PRESETS and not Path(model).expanduser().exists()):
        raise BadInput(f"unknown model {model!r}: neither a preset nor an existing config file",
                       f"{source}: train.model",
                       f"use one of {', '.join(PRESETS)} or a transformers config.json path")
    owned = sorted(set(train) & set(SEARCH_OWNED))
    if owned:
        raise BadInput(f"train.{owned[0]} is set by the search for each trial", f"{source}: train",
                       "remove it (budgets and LRs go under `search:`)")

    s = _section(obj, "search", source)
    ddo = s.pop("ddo", None) or {}
    if not isinstance(ddo, Mapping):
        raise BadInput("`ddo` must be a mapping", f"{source}: search.ddo",
                       "write e.g. {down: 0.2, up: 3.0, design: fixed-others}")
    s.update(ddo)
    if s.get("base_weights") is not None:
        given = s["base_weights"]
        if not isinstance(given, Mapping) or not given:
            raise BadInput("`base_weights` must be a mapping {domain: weight}",
                           f"{source}: search.base_weights")
        s["base_weights"] = {str(d): _number(w, f"{source}: search.base_weights.{d}")
                             for d, w in given.items()}
    probes = s.get("probe_budgets")
    if not isinstance(probes, list) or not probes:
        raise BadInput("`probe_budgets` must be a list of token budgets", f"{source}: search.probe_budgets")
    s["probe_budgets"] = tuple(sorted(_number(p, f"{source}: search.probe_budgets", integer=True)
                                      for p in probes))
    if "lr_grid" in s:
        grid = s["lr_grid"]
        if not isinstance(grid, list) or len(grid) < 4:
            raise BadInput("`lr_grid` needs >= 4 peak LRs (the quadratic must bracket its minimum)",
                           f"{source}: search.lr_grid", "give e.g. [1e-3, 2e-3, 4e-3, 8e-3]")
        s["lr_grid"] = tuple(sorted(_number(x, f"{source}: search.lr_grid") for x in grid))
    search = _dataclass_from(SearchSpec, s, f"{source}: search", {
        "target_budget": lambda v, w: _number(v, w, integer=True),
        "lr": lambda v, w: _number(v, w),
        "down": lambda v, w: _number(v, w), "up": lambda v, w: _number(v, w),
        "min_multiplier": lambda v, w: _number(v, w),
        "target_seeds": lambda v, w: _number(v, w, positive=False, integer=True),
        "min_weight": lambda v, w: _number(v, w, positive=False),
        "seed": lambda v, w: _number(v, w, positive=False, integer=True)})
    where = f"{source}: search"
    if not search.lr_grid and search.lr is None:
        raise BadInput("no learning rate: give `lr_grid` (an LR stage) or a fixed `lr`", where)
    if len(set(search.probe_budgets)) != len(search.probe_budgets):
        raise BadInput("probe budgets repeat", f"{where}.probe_budgets", "give distinct budgets")
    if search.target_budget <= max(search.probe_budgets):
        raise BadInput(f"target_budget {search.target_budget} is not above the largest probe budget",
                       f"{where}.target_budget", "the target is the scale to extrapolate to")
    if search.lr_grid and len(search.probe_budgets) < 2:
        raise BadInput("the LR law needs >= 2 probe budgets (horizons)", f"{where}.probe_budgets")
    if not (0 < search.down < 1 < search.up):
        raise BadInput(f"down={search.down}, up={search.up}: need 0 < down < 1 < up", where)
    if search.design not in ("fixed-others", "fixed-total"):
        raise BadInput(f"design {search.design!r} is unknown", f"{where}.design",
                       "use fixed-others or fixed-total")
    if search.metric not in ("mean-loss", "mean-ppl"):
        raise BadInput(f"metric {search.metric!r} is unknown", f"{where}.metric", "use mean-loss or mean-ppl")

    resources = _dataclass_from(ResourceSpec, _section(obj, "resources", source, required=False),
                                f"{source}: resources", {
                                    "max_concurrent_trials": lambda v, w: _number(v, w, integer=True),
                                    "cpus_per_trial": lambda v, w: _number(v, w),
                                    "gpus_per_trial": lambda v, w: _number(v, w, positive=False),
                                    "trials_per_gpu": _whole,
                                    "max_failures": lambda v, w: _number(v, w, positive=False, integer=True)})
    if resources.in_process not in ("auto", "always", "never"):
        raise BadInput(f"in_process {resources.in_process!r}", f"{source}: resources.in_process",
                       "use auto, always or never")
    resources = _gpu_share(resources, cfg_train_workers(obj), f"{source}: resources")
    storage = obj.get("storage_path")
    if storage is not None and (not isinstance(storage, str) or not storage.strip()):
        raise BadInput(f"storage_path {storage!r} is not a folder or URI", f"{source}: storage_path",
                       "give a path, a shared mount, or s3://bucket/prefix (gs://...)")
    cfg = ExperimentConfig(str(obj.get("name") or "autoscale"), corpus, train, search, resources,
                           storage, source)
    # every TrainConfig check that needs no corpus, at the smallest budget a DDO trial will have
    # (fixed-others: the probe less the largest domain's share cut by `down`)
    probe = min(search.probe_budgets)
    shares = list((search.base_weights or {"": 1.0}).values())
    largest = max(shares) / sum(shares) if search.base_weights else 1.0 / 2
    smallest = int(probe * (1 - largest * (1 - search.down))) if search.design == "fixed-others" else probe
    train_cfg = cfg.train_config(budget_tokens=smallest, lr=search.lr or search.lr_grid[0])
    train_cfg.total_steps(corpus.seq_len, f"{source}: search.probe_budgets")
    return cfg


def cfg_train_workers(obj: Mapping[str, Any]) -> int:
    train = obj.get("train") or {}
    return int(train.get("num_workers", 1)) if isinstance(train, Mapping) else 1


def _gpu_share(r: ResourceSpec, workers: int, where: str) -> ResourceSpec:
    """Resolve `trials_per_gpu`; whole GPUs go one per Ray Train worker (gpus = num_workers)."""
    if r.trials_per_gpu:
        if r.gpus_per_trial:
            raise BadInput("both trials_per_gpu and gpus_per_trial are set", where, "keep one")
        if workers > 1:
            raise BadInput("trials_per_gpu packs single-process proxies; train.num_workers > 1",
                           where, "use gpus_per_trial: <n> for multi-worker trials")
        return dataclasses.replace(r, gpus_per_trial=1.0 / r.trials_per_gpu)
    g = r.gpus_per_trial
    if g >= 1 and g != workers:
        raise BadInput(f"gpus_per_trial={g:g} with train.num_workers={workers}: whole GPUs go one "
                       "per Ray Train worker", f"{where}.gpus_per_trial",
                       f"set train.num_workers: {g:g}, or a fraction below 1 to pack trials on a GPU")
    if 0 < g < 1 and workers > 1:
        raise BadInput(f"a GPU fraction ({g}) cannot be split across {workers} Train workers",
                       f"{where}.gpus_per_trial", "use whole GPUs for multi-worker trials")
    return r


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a YAML config (safe_load: no code runs) and validate it."""
    path = Path(path)
    if not path.exists():
        raise BadInput("config file not found", str(path), "check the path")
    try:
        obj = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        raise BadInput(f"not valid YAML ({getattr(exc, 'problem', exc)})", where) from None
    return parse_config(obj, str(path))
