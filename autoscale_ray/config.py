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
  ddo: {down: 0.2, up: 3.0, design: fixed-others, min_multiplier: 0.2, surrogate: paper, rounds: 2,
        replicates: 2}                         # replicates: extra seeds of the base (the noise)
  max_epochs: 4                                # no domain's data repeated more at the target
  # projector: mixing-law                      # or autoscale (default); mixing-law needs:
  # probe_models: [gpt2-nano, gpt2-micro, gpt2-tiny]   # >= 3 model sizes (instead of train.model)
  # target_params: 1.0e6                       # the target model's parameters
  available_tokens: {web: 2.0e9}               # optional: tokens per domain (default: the corpus's)
resources:
  max_concurrent_trials: 2
  cpus_per_trial: 1
  trials_per_gpu: 0          # > 0: that many in-process proxies share one GPU
  gpus_per_trial: 0          # n >= 1: n Ray Train workers with one GPU each (= train.num_workers)
  max_failures: 1            # Tune retries of a failed trial, from its last checkpoint
storage_path: null           # Tune's experiment folder (default <out>/tune): a path or s3:// / gs://
loggers: [tensorboard]       # Tune's logger callbacks: any of tensorboard, mlflow, wandb
mlflow: {tracking_uri: null, experiment: null}   # optional: default <out>/mlruns, the search's name
wandb: {project: null, entity: null}             # optional: default the search's name, your entity
```
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from autoscale_ray.checks import BOOL_FIX, Flag, Number, check_bool, check_keys, check_mapping, number
from autoscale_ray.errors import BadInput, short
from autoscale_ray.names import check_name
from autoscale_ray.train.config import TrainConfig

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
    surrogate: str = "paper"          # DDO's surrogate: paper (additive) | transfer (per-domain losses)
    rounds: int = 2                   # DDO rounds per probe: 2 refines once around the first optimum
    replicates: int = 2               # extra seeds of each probe's base run: the measured noise
    max_epochs: float = 4.0           # most epochs of any domain's data at the target
    available_tokens: Mapping[str, float] | None = None  # per domain, for shards not scanned
    lr_extend: int = 2                # LRs added past an edge sweep's best LR, per round
    lr_extend_rounds: int = 3         # extension rounds at most, per probe
    verify_probe: bool = True
    target_seeds: int = 0
    metric: str = "mean-loss"
    min_weight: float = 0.0
    seed: int = 0
    method: str = "autoscale"         # autoscale (DDO + projection) | a swarm method (METHODS)
    swarm_size: int = 16              # swarm methods: proxy runs (uniform/fixed: seeds)
    swarm_budget: int | None = None   # swarm methods: tokens per proxy (default the smallest probe)
    fixed_weights: Mapping[str, float] | None = None  # method fixed: the mixture
    projector: str = "autoscale"      # autoscale (DDO optima across budgets) | mixing-law
    probe_models: tuple[str, ...] = ()  # mixing-law: the proxy models (>= 3 sizes)
    target_params: float | None = None  # mixing-law: the target model's parameters
    bootstrap: int | None = None      # redraws behind every interval (None: each fit's default)

    @property
    def swarm(self) -> bool:
        return self.method != "autoscale"

    @property
    def mixing_law(self) -> bool:
        return self.projector == "mixing-law"

    @property
    def proxy_budget(self) -> int:
        """Tokens of a swarm method's proxies."""
        return int(self.swarm_budget or min(self.probe_budgets))


@dataclass(frozen=True)
class ResourceSpec:
    max_concurrent_trials: int = 2
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0       # < 1 packs proxies on a GPU; n >= 1: n Train workers x 1 GPU
    trials_per_gpu: int = 0           # shorthand for gpus_per_trial = 1 / trials_per_gpu
    in_process: str = "auto"          # auto: tiny CPU proxies train in the trial's process
    max_failures: int = 1             # Tune retries of a failed trial (from its checkpoint)


@dataclass(frozen=True)
class TrackerSpec:
    """Where the trials' results go besides Tune's own files (autoscale_ray/tuning/trackers.py)."""

    loggers: tuple[str, ...] = ("tensorboard",)
    mlflow: Mapping[str, str] = field(default_factory=dict)   # tracking_uri, experiment
    wandb: Mapping[str, str] = field(default_factory=dict)    # project, entity


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    corpus: CorpusSpec
    train: Mapping[str, Any]
    search: SearchSpec
    resources: ResourceSpec
    storage_path: str | None = None
    source: str = "<config>"
    trackers: TrackerSpec = field(default_factory=TrackerSpec)

    @property
    def models(self) -> tuple[str, ...]:
        """The proxy models the search trains: the probe models, else train.model."""
        return self.search.probe_models or (str(self.train.get("model", "gpt2-tiny")),)

    def train_config(self, **per_trial: Any) -> TrainConfig:
        return TrainConfig.from_mapping({**self.train, **per_trial}, f"{self.source}: train")


SURROGATES = ("paper", "transfer")
PROJECTORS = ("autoscale", "mixing-law")
MIN_PROBE_MODELS = 3  # the law's form is chosen by holding out the largest: 2 sizes to fit, 1 to judge
METHODS = ("autoscale", "regmix", "log-linear", "random", "tpe", "uniform", "fixed")
SWARM_KEYS = {"size": "swarm_size", "budget": "swarm_budget", "weights": "fixed_weights"}
TOP_KEYS = ("name", "corpus", "train", "search", "resources", "storage_path", "loggers", "mlflow", "wandb")
LOGGERS = ("tensorboard", "mlflow", "wandb")
TRACKER_KEYS = {"mlflow": ("tracking_uri", "experiment"), "wandb": ("project", "entity")}
WANDB_FORBIDDEN = re.compile(r"[/\\#?%:]|^.{129,}$")  # W&B's rules for project and entity names
CHOSEN = ("embedded", "synthetic", "domains")   # the corpus kinds; exactly one is given
WHOLE = Number(positive=False, whole=True, least=1)
COUNT = Number(positive=False, whole=True, least=0)  # a seed, a retry or seed count: 0 is fine
TOKENS = Number(whole=True, most=MAX_TOKENS)
SYNTHETIC_SPECS = {"docs_per_domain": Number(whole=True), "doc_chars": Number(whole=True),
                   "seed": Number(positive=False, whole=True)}
CORPUS_SPECS = {"seq_len": Number(whole=True, most=1 << 20), "val_tokens": TOKENS}
SEARCH_SPECS = {"target_budget": TOKENS, "lr": Number(most=10.0), "down": Number(),
                "up": Number(most=1e3), "min_multiplier": Number(), "verify_probe": Flag(),
                "rounds": Number(positive=False, whole=True, least=1, most=5),
                "replicates": Number(positive=False, whole=True, least=0, most=16),
                "bootstrap": Number(whole=True, least=10, most=10_000),
                "max_epochs": Number(most=1e6),
                "lr_extend": Number(positive=False, whole=True, least=0, most=8),
                "lr_extend_rounds": Number(positive=False, whole=True, least=0, most=8),
                "target_seeds": COUNT, "min_weight": Number(positive=False, most=0.5), "seed": COUNT,
                "swarm_size": Number(positive=False, whole=True, least=2, most=100_000),
                "swarm_budget": TOKENS, "target_params": Number(most=1e14)}
RESOURCE_SPECS = {"max_concurrent_trials": WHOLE, "cpus_per_trial": Number(most=1024),
                  "gpus_per_trial": Number(positive=False, most=64), "trials_per_gpu": WHOLE,
                  "max_failures": COUNT}


def _section(obj: Mapping[str, Any], key: str, where: str, required: bool = True) -> dict[str, Any]:
    value = obj.get(key)
    if value is None and not required:
        return {}
    return check_mapping(value, where, f"`{key}` must be a mapping, not {short(value)}",
                         f"add a `{key}:` section", empty=True)


def _dataclass_from(cls: type, values: Mapping[str, Any], where: str, specs: Mapping[str, Number | Flag]):
    """`cls(**values)`, each value checked by its spec (a key without one is kept as given)."""
    check_keys(values, {f.name for f in dataclasses.fields(cls)}, where)
    return cls(**{k: specs[k].check(v, f"{where}.{k}") if k in specs else v for k, v in values.items()})


def parse_config(obj: Any, source: str = "<config>") -> ExperimentConfig:
    """Validate a parsed YAML mapping."""
    if not isinstance(obj, Mapping):
        raise BadInput("the config must be a YAML mapping", source)
    check_keys(obj, TOP_KEYS, source)
    name = check_name(obj.get("name", "autoscale"), f"{source}: name", "search name")
    corpus = _corpus(_section(obj, "corpus", source), f"{source}: corpus")
    train = _train(_section(obj, "train", source, required=False), f"{source}: train")
    search = _search(_section(obj, "search", source), f"{source}: search")
    if search.probe_models and "model" in train:
        raise BadInput("train.model and search.probe_models both name the proxy model",
                       f"{source}: train.model", "keep the models in search.probe_models only")
    resources = _resources(obj, source)
    storage = _storage_path(obj.get("storage_path"), f"{source}: storage_path")
    trackers = _trackers(obj, source)
    cfg = ExperimentConfig(name, corpus, train, search, resources, storage, source, trackers)
    _check_smallest_trial(cfg)
    return cfg


def _corpus(c: dict[str, Any], where: str) -> CorpusSpec:
    """One corpus kind; paths that are strings; a tokenizer file that loads; sizes in range."""
    for key in ("embedded", "synthetic"):  # `synthetic: "false"` must not select the synthetic corpus
        if key in c and not (key == "synthetic" and isinstance(c[key], Mapping)):
            check_bool(c[key], f"{where}.{key}", label=f"{key}: ",
                       fix=BOOL_FIX + (", or a mapping of sizes" if key == "synthetic" else ""))
    if c.get("domains") is not None:
        check_mapping(c["domains"], f"{where}.domains", "`domains` must be a mapping {domain_name: {paths: [...]}}",
                      "write e.g. {web: {paths: [\"data/web/*.parquet\"]}}", empty=True)
    kinds = [k for k in CHOSEN if c.get(k)]
    if len(kinds) != 1:
        raise BadInput("the corpus needs exactly one of `embedded: true`, `synthetic: true` or "
                       "`domains: {name: {paths: [...]}}`", where)
    rest = {k: v for k, v in c.items() if k not in CHOSEN}
    for key in ("cache_dir", "tokenizer"):
        if key in rest and (not isinstance(rest[key], str) or not rest[key]):
            raise BadInput(f"{key} {short(rest[key])} is not a path", f"{where}.{key}")
    if rest.get("tokenizer", "byte") != "byte":
        _check_tokenizer_file(rest["tokenizer"], f"{where}.tokenizer")
    synthetic = c.get("synthetic")
    if isinstance(synthetic, Mapping):  # size of the generated corpus
        check_keys(synthetic, SYNTHETIC_SPECS, f"{where}.synthetic")
        rest["synthetic"] = {k: SYNTHETIC_SPECS[k].check(v, f"{where}.synthetic.{k}")
                             for k, v in synthetic.items()}
    return _dataclass_from(CorpusSpec, {"kind": kinds[0], "domains": c.get("domains") or {}, **rest},
                           where, CORPUS_SPECS)


def _train(train: dict[str, Any], where: str) -> dict[str, Any]:
    """A known model (a preset or a transformers config.json) and no key the search sets."""
    _check_model(train.get("model", "gpt2-tiny"), f"{where}.model")
    owned = sorted(set(train) & set(SEARCH_OWNED))
    if owned:
        raise BadInput(f"train.{owned[0]} is set by the search for each trial", where,
                       "remove it (budgets and LRs go under `search:`)")
    return train


def _check_model(model: Any, where: str) -> None:
    from autoscale_ray.train.presets import PRESETS  # names only: no torch, no transformers

    if not isinstance(model, str) or (model not in PRESETS and not Path(model).expanduser().exists()):
        raise BadInput(f"unknown model {short(model)}: neither a preset nor an existing config file",
                       where, f"use one of {', '.join(PRESETS)} or a transformers config.json path")
    if model not in PRESETS:
        _check_model_file(model, where)


def _search(s: dict[str, Any], where: str) -> SearchSpec:
    search = _dataclass_from(SearchSpec, _search_values(s, where), where, SEARCH_SPECS)
    _check_search(search, where)
    return search


def _search_values(s: dict[str, Any], where: str) -> dict[str, Any]:
    """The `search:` keys with `ddo:` merged in and the lists (base weights, budgets, LRs) checked."""
    ddo = s.pop("ddo", None) or {}
    s.update(check_mapping(ddo, f"{where}.ddo", "`ddo` must be a mapping",
                           "write e.g. {down: 0.2, up: 3.0, design: fixed-others}", empty=True))
    if s.get("base_weights") is not None:
        given = check_mapping(s["base_weights"], f"{where}.base_weights",
                              "`base_weights` must be a mapping {domain: weight}")
        s["base_weights"] = {check_name(d, f"{where}.base_weights", "domain"):
                             number(w, f"{where}.base_weights.{d}") for d, w in given.items()}
    if s.get("available_tokens") is not None:
        given = check_mapping(s["available_tokens"], f"{where}.available_tokens",
                              "`available_tokens` must be a mapping {domain: tokens}")
        s["available_tokens"] = {check_name(d, f"{where}.available_tokens", "domain"):
                                 number(n, f"{where}.available_tokens.{d}", TOKENS)
                                 for d, n in given.items()}
    swarm = s.pop("swarm", None)
    if swarm is not None:
        given = check_mapping(swarm, f"{where}.swarm", "`swarm` must be a mapping",
                              "write e.g. {size: 32, budget: 2.0e5}", empty=True)
        check_keys(given, set(SWARM_KEYS), f"{where}.swarm")
        s.update({SWARM_KEYS[k]: v for k, v in given.items()})
    if s.get("fixed_weights") is not None:
        given = check_mapping(s["fixed_weights"], f"{where}.swarm.weights",
                              "`swarm.weights` must be a mapping {domain: weight}")
        s["fixed_weights"] = {check_name(d, f"{where}.swarm.weights", "domain"):
                              number(w, f"{where}.swarm.weights.{d}", Number(positive=False))
                              for d, w in given.items()}
    if s.get("probe_models") is not None:
        models = s["probe_models"]
        if not isinstance(models, list) or not models:
            raise BadInput("`probe_models` must be a list of models", f"{where}.probe_models",
                           "give e.g. [gpt2-nano, gpt2-micro, gpt2-tiny]")
        for i, model in enumerate(models):
            _check_model(model, f"{where}.probe_models[{i}]")
        if len(set(models)) != len(models):
            raise BadInput("probe models repeat", f"{where}.probe_models", "give distinct models")
        s["probe_models"] = tuple(models)
    probes = s.get("probe_budgets")
    if probes is None and s.get("method", "autoscale") != "autoscale" and s.get("swarm_budget"):
        probes = [s["swarm_budget"]]  # a swarm method trains at its own budget only
    if not isinstance(probes, list) or not probes:
        raise BadInput("`probe_budgets` must be a list of token budgets", f"{where}.probe_budgets",
                       "give e.g. [2.0e5, 8.0e5] (a swarm method: swarm.budget instead)")
    s["probe_budgets"] = tuple(sorted(number(p, f"{where}.probe_budgets", TOKENS) for p in probes))
    if "lr_grid" in s:
        grid = s["lr_grid"]
        if not isinstance(grid, list) or len(grid) < 4:
            raise BadInput("`lr_grid` needs >= 4 peak LRs (the quadratic must bracket its minimum)",
                           f"{where}.lr_grid", "give e.g. [1e-3, 2e-3, 4e-3, 8e-3]")
        s["lr_grid"] = tuple(sorted(number(x, f"{where}.lr_grid") for x in grid))
    return s


def _check_search(search: SearchSpec, where: str) -> None:
    """The checks across keys: an LR source, distinct probes below the target, a valid design."""
    if not search.lr_grid and search.lr is None:
        raise BadInput("no learning rate: give `lr_grid` (an LR stage) or a fixed `lr`", where)
    if len(set(search.probe_budgets)) != len(search.probe_budgets):
        raise BadInput("probe budgets repeat", f"{where}.probe_budgets", "give distinct budgets")
    if search.target_budget <= max(search.probe_budgets):
        raise BadInput(f"target_budget {search.target_budget} is not above the largest probe budget",
                       f"{where}.target_budget", "the target is the scale to extrapolate to")
    if search.method not in METHODS:
        raise BadInput(f"method {short(search.method)} is unknown", f"{where}.method",
                       f"use one of: {', '.join(METHODS)}")
    if search.projector not in PROJECTORS:
        raise BadInput(f"projector {short(search.projector)} is unknown", f"{where}.projector",
                       f"use {' or '.join(PROJECTORS)}")
    if search.mixing_law:
        _check_mixing_law(search, where)
    elif search.probe_models or search.target_params is not None:
        key = "probe_models" if search.probe_models else "target_params"
        raise BadInput(f"`{key}` is for the mixing-law projector: AutoScale's projection extrapolates "
                       "across token budgets for one model", f"{where}.{key}",
                       "set `projector: mixing-law`, or remove it (the model is train.model)")
    if search.swarm:
        _check_swarm(search, where)
    elif search.lr_grid and len(search.probe_budgets) < 2:
        raise BadInput("the LR law needs >= 2 probe budgets (horizons)", f"{where}.probe_budgets")
    elif search.fixed_weights is not None or search.swarm_budget is not None:
        raise BadInput("`swarm` settings are for the swarm methods, not autoscale", f"{where}.swarm",
                       f"remove them, or set method to one of: {', '.join(METHODS[1:])}")
    if not (0 < search.down < 1 < search.up):
        raise BadInput(f"down={search.down}, up={search.up}: need 0 < down < 1 < up", where)
    if search.design not in ("fixed-others", "fixed-total"):
        raise BadInput(f"design {short(search.design)} is unknown", f"{where}.design",
                       "use fixed-others or fixed-total")
    if search.surrogate not in SURROGATES:
        raise BadInput(f"surrogate {short(search.surrogate)} is unknown", f"{where}.ddo.surrogate",
                       f"use {' or '.join(SURROGATES)}")
    if search.metric not in ("mean-loss", "mean-ppl"):
        raise BadInput(f"metric {short(search.metric)} is unknown", f"{where}.metric", "use mean-loss or mean-ppl")


def _check_mixing_law(search: SearchSpec, where: str) -> None:
    """The mixing-law projector (searchers/mixlaw_plan.py): DDO's design at >= 3 probe models,
    one fixed LR, a target model size; nothing of the other plans' stages."""
    if search.swarm:
        raise BadInput(f"projector mixing-law fits the DDO design's runs; method {search.method} "
                       "picks its mixture from a swarm", f"{where}.projector",
                       "use method autoscale with projector mixing-law, or remove the projector")
    if len(search.probe_models) < MIN_PROBE_MODELS:
        raise BadInput(f"projector mixing-law needs >= {MIN_PROBE_MODELS} probe_models (2 sizes to fit "
                       f"the law, the largest to choose its form), got {len(search.probe_models)}",
                       f"{where}.probe_models", "give e.g. [gpt2-nano, gpt2-micro, gpt2-tiny]")
    if search.target_params is None:
        raise BadInput("projector mixing-law needs the target model's size", f"{where}.target_params",
                       "give e.g. target_params: 1.0e8")
    if search.lr_grid or search.lr is None:
        raise BadInput("projector mixing-law trains every probe model at one fixed LR: LR sweeps "
                       "per model size are not supported yet", f"{where}.lr_grid" if search.lr_grid
                       else f"{where}.lr", "give `lr:` instead of `lr_grid:`")
    if search.target_seeds:
        raise BadInput("target_seeds train train.model at the target; the mixing-law target is "
                       "another model size", f"{where}.target_seeds", "remove target_seeds")


def _check_swarm(search: SearchSpec, where: str) -> None:
    """A swarm method's settings (searchers/swarm.py): a budget below the target, a mixture for
    `fixed` only, no target arms (what needs the domains: pipeline.check_domains)."""
    if search.target_budget <= search.proxy_budget:
        raise BadInput(f"target_budget {search.target_budget} is not above the swarm budget "
                       f"{search.proxy_budget}", f"{where}.target_budget",
                       "the target is the scale the mixture is for")
    if (search.method == "fixed") != (search.fixed_weights is not None):
        raise BadInput("method fixed needs `swarm.weights` (the mixture), and only it takes them",
                       f"{where}.swarm.weights", "give {domain: weight} with method fixed, or drop it")
    if search.method == "log-linear" and search.metric != "mean-loss":
        raise BadInput(f"log-linear minimises the mean predicted loss, not {search.metric}",
                       f"{where}.metric", "use metric: mean-loss")
    if search.target_seeds:
        raise BadInput("target_seeds trains DDO's arms at the target; a swarm method has none",
                       f"{where}.target_seeds", "drop it; train the recommendation at the target to check it")


def _resources(obj: Mapping[str, Any], source: str) -> ResourceSpec:
    where = f"{source}: resources"
    resources = _dataclass_from(ResourceSpec, _section(obj, "resources", source, required=False),
                                where, RESOURCE_SPECS)
    if resources.in_process not in ("auto", "always", "never"):
        raise BadInput(f"in_process {short(resources.in_process)}", f"{where}.in_process",
                       "use auto, always or never")
    return _gpu_share(resources, cfg_train_workers(obj), where)


def _storage_path(storage: Any, where: str) -> str | None:
    if storage is not None and (not isinstance(storage, str) or not storage.strip()):
        raise BadInput(f"storage_path {short(storage)} is not a folder or URI", where,
                       "give a path, a shared mount, or s3://bucket/prefix (gs://...)")
    return storage


def _trackers(obj: Mapping[str, Any], source: str) -> TrackerSpec:
    """`loggers` (known names whose packages are installed: checked here, before Ray starts) and
    the `mlflow:`/`wandb:` settings, each only with its logger listed."""
    where = f"{source}: loggers"
    given = obj.get("loggers", ["tensorboard"])
    if not isinstance(given, list) or not all(isinstance(x, str) for x in given):
        raise BadInput(f"`loggers` must be a list of names, not {short(given)}", where,
                       f"write e.g. [tensorboard, mlflow]; choices: {', '.join(LOGGERS)}")
    loggers = tuple(dict.fromkeys(given))
    for name in loggers:
        if name not in LOGGERS:
            raise BadInput(f"unknown logger {short(name)}", where, f"use any of {', '.join(LOGGERS)}")
        if name != "tensorboard" and importlib.util.find_spec(name) is None:
            raise BadInput(f"logger {name} needs the `{name}` package, which is not installed", where,
                           f"pip install 'autoscale-ray[{name}]'")
    settings: dict[str, dict[str, str]] = {}
    for tracker, keys in TRACKER_KEYS.items():
        section = _section(obj, tracker, source, required=False)
        if section and tracker not in loggers:
            raise BadInput(f"`{tracker}:` is set but {tracker} is not in loggers", f"{source}: {tracker}",
                           f"add {tracker} to loggers, or remove the `{tracker}:` section")
        check_keys(section, keys, f"{source}: {tracker}")
        for key, value in section.items():
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise BadInput(f"{key} {short(value)} is not a non-empty string", f"{source}: {tracker}.{key}")
            if tracker == "wandb" and value is not None and WANDB_FORBIDDEN.search(value):
                raise BadInput(f"{key} {short(value)} is not a W&B name", f"{source}: wandb.{key}",
                               "leave out / \\ # ? % :, at most 128 characters")
        settings[tracker] = {k: v for k, v in section.items() if v is not None}
    return TrackerSpec(loggers, settings["mlflow"], settings["wandb"])


def _check_smallest_trial(cfg: ExperimentConfig) -> None:
    """Every TrainConfig check that needs no corpus, at the smallest budget a DDO trial will have
    (fixed-others: the probe less the largest domain's share cut by `down`)."""
    search, seq_len = cfg.search, cfg.corpus.seq_len
    if search.swarm:  # every swarm run trains the whole swarm budget
        train_cfg = cfg.train_config(budget_tokens=search.proxy_budget, lr=search.lr or search.lr_grid[0])
        train_cfg.total_steps(seq_len, f"{cfg.source}: search.swarm.budget")
        train_cfg.batch_layout(seq_len, max(1, train_cfg.num_workers), f"{cfg.source}: train")
        return
    probe = min(search.probe_budgets)
    shares = list((search.base_weights or {"": 1.0}).values())
    largest = max(shares) / sum(shares) if search.base_weights else 1.0 / 2
    smallest = int(probe * (1 - largest * (1 - search.down))) if search.design == "fixed-others" else probe
    train_cfg = cfg.train_config(budget_tokens=smallest, lr=search.lr or search.lr_grid[0])
    train_cfg.total_steps(seq_len, f"{cfg.source}: search.probe_budgets")
    train_cfg.batch_layout(seq_len, max(1, train_cfg.num_workers), f"{cfg.source}: train")


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
    return COUNT.check(train["num_workers"], "train.num_workers")


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
