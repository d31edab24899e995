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
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from autoscale_ray.errors import BadInput, short
from autoscale_ray.names import check_name
from autoscale_ray.train.config import TrainConfig
from autoscale_ray.train.models import PRESETS

SEARCH_OWNED = ("budget_tokens", "weights", "lr", "seed")  # set per trial by the searcher
MAX_TOKENS = 10**15      # a budget above this is a typo (the largest published runs are ~1e13)
MAX_CONFIG_BYTES = 1 << 20


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
        raise BadInput(f"`{key}` must be a mapping, not {short(value)}", where, f"add a `{key}:` section")
    return dict(value)


def _known(values: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise BadInput(f"unknown key(s) {', '.join(unknown)}", where, f"allowed: {', '.join(sorted(allowed))}")


def _number(value: Any, where: str, *, positive: bool = True, integer: bool = False,
            most: float | None = None) -> float:
    """A finite number (YAML 1.1 reads `1e5` as a string: numeric strings are numbers); with
    `integer`, a whole one: 0.4 is refused, never rounded."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    kind = ("positive " if positive else "") + ("whole number" if integer else "number")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0) or (integer and not float(value).is_integer()):
        raise BadInput(f"{short(value)} is not a {kind}", where)
    if most is not None and value > most:
        raise BadInput(f"{value:g} is above the largest accepted value {most:g}", where,
                       "check the units (tokens, not billions of tokens) and the exponent")
    return int(value) if integer else float(value)


def _whole(value: Any, where: str, least: int = 1) -> int:
    n = _number(value, where, positive=False, integer=True)
    if n < least:
        raise BadInput(f"{short(value)} is not a whole number >= {least}", where)
    return int(n)


def _flag(value: Any, where: str) -> bool:
    """Booleans are booleans: a quoted "no" or "false" is a string, and refused."""
    if not isinstance(value, bool):
        raise BadInput(f"{short(value)} is not a boolean", where, "write true or false (unquoted)")
    return value


def _dataclass_from(cls, values: Mapping[str, Any], where: str, convert: Mapping[str, Any]):
    _known(values, {f.name for f in dataclasses.fields(cls)}, where)
    return cls(**{k: convert.get(k, lambda v, w: v)(v, f"{where}.{k}") for k, v in values.items()})


def parse_config(obj: Any, source: str = "<config>") -> ExperimentConfig:
    """Validate a parsed YAML mapping."""
    if not isinstance(obj, Mapping):
        raise BadInput("the config must be a YAML mapping", source)
    _known(obj, {"name", "corpus", "train", "search", "resources", "storage_path"}, source)

    name = check_name(obj.get("name", "autoscale"), f"{source}: name", "search name")
    c = _section(obj, "corpus", source)
    for key in ("embedded", "synthetic"):  # `synthetic: "false"` must not select the synthetic corpus
        if key in c and not isinstance(c[key], bool) and not (key == "synthetic" and isinstance(c[key], Mapping)):
            raise BadInput(f"{key}: {short(c[key])} is not a boolean", f"{source}: corpus.{key}",
                           "write true or false (unquoted)" + (", or a mapping of sizes" if key == "synthetic" else ""))
    if "domains" in c and c["domains"] is not None and not isinstance(c["domains"], Mapping):
        raise BadInput("`domains` must be a mapping {domain_name: {paths: [...]}}",
                       f"{source}: corpus.domains", "write e.g. {web: {paths: [\"data/web/*.parquet\"]}}")
    kinds = [k for k in ("embedded", "synthetic", "domains") if c.get(k)]
    if len(kinds) != 1:
        raise BadInput("the corpus needs exactly one of `embedded: true`, `synthetic: true` or "
                       "`domains: {name: {paths: [...]}}`", f"{source}: corpus")
    rest = {k: v for k, v in c.items() if k not in ("embedded", "synthetic", "domains")}
    for key in ("cache_dir", "tokenizer"):
        if key in rest and (not isinstance(rest[key], str) or not rest[key]):
            raise BadInput(f"{key} {short(rest[key])} is not a path", f"{source}: corpus.{key}")
    if rest.get("tokenizer", "byte") != "byte":
        _check_tokenizer_file(rest["tokenizer"], f"{source}: corpus.tokenizer")
    synthetic = c.get("synthetic")
    if isinstance(synthetic, Mapping):  # size of the generated corpus
        _known(synthetic, {"docs_per_domain", "doc_chars", "seed"}, f"{source}: corpus.synthetic")
        rest["synthetic"] = {k: _number(v, f"{source}: corpus.synthetic.{k}", positive=k != "seed",
                                        integer=True) for k, v in synthetic.items()}
    corpus = _dataclass_from(CorpusSpec, {"kind": kinds[0], "domains": c.get("domains") or {}, **rest},
                             f"{source}: corpus", {
                                 "seq_len": lambda v, w: _number(v, w, integer=True, most=1 << 20),
                                 "val_tokens": lambda v, w: _number(v, w, integer=True, most=MAX_TOKENS)})

    train = _section(obj, "train", source, required=False)
    model = train.get("model", "gpt2-tiny")
    if not isinstance(model, str) or (model not in PRESETS and not Path(model).expanduser().exists()):
        raise BadInput(f"unknown model {short(model)}: neither a preset nor an existing config file",
                       f"{source}: train.model",
                       f"use one of {', '.join(PRESETS)} or a transformers config.json path")
    if model not in PRESETS:
        _check_model_file(model, f"{source}: train.model")
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
        s["base_weights"] = {check_name(d, f"{source}: search.base_weights", "domain"):
                             _number(w, f"{source}: search.base_weights.{d}") for d, w in given.items()}
    probes = s.get("probe_budgets")
    if not isinstance(probes, list) or not probes:
        raise BadInput("`probe_budgets` must be a list of token budgets", f"{source}: search.probe_budgets")
    s["probe_budgets"] = tuple(sorted(_number(p, f"{source}: search.probe_budgets", integer=True,
                                              most=MAX_TOKENS) for p in probes))
    if "lr_grid" in s:
        grid = s["lr_grid"]
        if not isinstance(grid, list) or len(grid) < 4:
            raise BadInput("`lr_grid` needs >= 4 peak LRs (the quadratic must bracket its minimum)",
                           f"{source}: search.lr_grid", "give e.g. [1e-3, 2e-3, 4e-3, 8e-3]")
        s["lr_grid"] = tuple(sorted(_number(x, f"{source}: search.lr_grid") for x in grid))
    search = _dataclass_from(SearchSpec, s, f"{source}: search", {
        "target_budget": lambda v, w: _number(v, w, integer=True, most=MAX_TOKENS),
        "lr": lambda v, w: _number(v, w, most=10.0),
        "down": lambda v, w: _number(v, w), "up": lambda v, w: _number(v, w, most=1e3),
        "min_multiplier": lambda v, w: _number(v, w),
        "verify_probe": _flag,
        "target_seeds": lambda v, w: _whole(v, w, least=0),
        "min_weight": lambda v, w: _number(v, w, positive=False, most=0.5),
        "seed": lambda v, w: _whole(v, w, least=0)})
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
        raise BadInput(f"design {short(search.design)} is unknown", f"{where}.design",
                       "use fixed-others or fixed-total")
    if search.metric not in ("mean-loss", "mean-ppl"):
        raise BadInput(f"metric {short(search.metric)} is unknown", f"{where}.metric", "use mean-loss or mean-ppl")

    resources = _dataclass_from(ResourceSpec, _section(obj, "resources", source, required=False),
                                f"{source}: resources", {
                                    "max_concurrent_trials": _whole,
                                    "cpus_per_trial": lambda v, w: _number(v, w, most=1024),
                                    "gpus_per_trial": lambda v, w: _number(v, w, positive=False, most=64),
                                    "trials_per_gpu": _whole,
                                    "max_failures": lambda v, w: _whole(v, w, least=0)})
    if resources.in_process not in ("auto", "always", "never"):
        raise BadInput(f"in_process {short(resources.in_process)}", f"{source}: resources.in_process",
                       "use auto, always or never")
    resources = _gpu_share(resources, cfg_train_workers(obj), f"{source}: resources")
    storage = obj.get("storage_path")
    if storage is not None and (not isinstance(storage, str) or not storage.strip()):
        raise BadInput(f"storage_path {short(storage)} is not a folder or URI", f"{source}: storage_path",
                       "give a path, a shared mount, or s3://bucket/prefix (gs://...)")
    cfg = ExperimentConfig(name, corpus, train, search, resources, storage, source)
    # every TrainConfig check that needs no corpus, at the smallest budget a DDO trial will have
    # (fixed-others: the probe less the largest domain's share cut by `down`)
    probe = min(search.probe_budgets)
    shares = list((search.base_weights or {"": 1.0}).values())
    largest = max(shares) / sum(shares) if search.base_weights else 1.0 / 2
    smallest = int(probe * (1 - largest * (1 - search.down))) if search.design == "fixed-others" else probe
    train_cfg = cfg.train_config(budget_tokens=smallest, lr=search.lr or search.lr_grid[0])
    train_cfg.total_steps(corpus.seq_len, f"{source}: search.probe_budgets")
    train_cfg.batch_layout(corpus.seq_len, max(1, train_cfg.num_workers), f"{source}: train")
    return cfg


def _check_tokenizer_file(path: str, where: str) -> None:
    p = Path(path).expanduser()
    if p.is_dir():
        raise BadInput(f"tokenizer `{path}` is a folder", where, "give the tokenizer.json file inside it")
    if not p.is_file():
        raise BadInput(f"tokenizer file `{path}` not found", where,
                       "give \"byte\" or the path of a `tokenizers` tokenizer.json")
    from tokenizers import Tokenizer

    try:
        Tokenizer.from_file(str(p))
    except Exception as exc:  # tokenizers raises its own Exception type on a bad file
        raise BadInput(f"`{path}` is not a `tokenizers` tokenizer.json ({str(exc)[:120]})", where,
                       "save one with Tokenizer.save(path)") from None


def _check_model_file(path: str, where: str) -> None:
    """A config.json path: a JSON object with a `model_type` (a folder or other file is refused)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise BadInput(f"`{path}` is a folder, not a config.json", where,
                       "give the transformers config.json file itself")
    try:
        obj = json.loads(p.read_bytes()[:MAX_CONFIG_BYTES].decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("model_type"), str):
        raise BadInput(f"`{path}` is not a transformers config.json (no `model_type`)", where,
                       "give a config.json saved by transformers (PretrainedConfig.save_pretrained)")


def cfg_train_workers(obj: Mapping[str, Any]) -> int:
    train = obj.get("train") or {}
    if not isinstance(train, Mapping) or "num_workers" not in train:
        return 1
    return _whole(train["num_workers"], "train.num_workers", least=0)


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


class _StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` (no code runs) that refuses duplicate keys: with PyYAML the last one wins
    silently, so `lr: 0.003` then `lr: 0.3` would train at 0.3."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *defaults`: explicit keys override merged ones, as YAML intends
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.setdefault(key, key_node.start_mark.line + 1)
        except TypeError:  # an unhashable key: the mapping constructor reports it
            continue
        if first != key_node.start_mark.line + 1:
            label = key if isinstance(key, str) and len(key) <= 60 else short(key)
            raise BadInput(f"duplicate key `{label}` (lines {first} and "
                           f"{key_node.start_mark.line + 1})", loader.name, "keep one of them")
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def read_yaml(path: str | Path) -> Any:
    """A small UTF-8 YAML file, parsed safely with duplicate keys refused; BadInput otherwise."""
    path = Path(path)
    if not path.exists():
        raise BadInput("config file not found", str(path), "check the path")
    if not path.is_file():
        raise BadInput("not a regular file", str(path), "give the path of a YAML config file")
    with path.open("rb") as f:
        data = f.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise BadInput(f"larger than {MAX_CONFIG_BYTES >> 20} MiB: not a config", str(path),
                       "give the YAML config file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"not UTF-8 text (byte {exc.start})", str(path), "save the config as UTF-8") from None
    if "\x00" in text:
        raise BadInput("not UTF-8 text (NUL characters; UTF-16?)", str(path), "save the config as UTF-8")
    loader = _StrictLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        raise BadInput(f"not valid YAML ({getattr(exc, 'problem', None) or short(str(exc))})", where) from None
    except RecursionError:
        raise BadInput("nested too deeply", str(path), "write a plain YAML mapping") from None
    finally:
        loader.dispose()


def load_config(path: str | Path) -> ExperimentConfig:
    """Read a YAML config (safe: no code runs; duplicate keys refused) and validate it."""
    return parse_config(read_yaml(path), str(path))
