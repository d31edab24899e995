"""Synthetic domains with known ground truth, for tests of the whole method.

Each domain is a seeded stochastic text source whose entropy rate (the loss floor a perfect model
reaches, in nats per character) is known exactly, and whose learnability differs:

* `template`: sentences from `n_templates` fixed templates whose slots are filled uniformly from
  `slot_vocab` words. Very low entropy, learned in a few steps: a small model saturates on it fast.
* `markov`: an order-`order` character Markov chain over the first `alphabet` letters, each state's
  next-letter distribution drawn from Dirichlet(`concentration`). A short-range structure: learned
  at an intermediate speed.
* `zipf`: words drawn i.i.d. from a Zipf(`exponent`) law over `vocab` random pseudo-words of 3-10
  letters. High diversity: the rare words keep a model improving as it sees more tokens, the more
  so the larger `vocab`.

With a template domain beside a large-vocabulary Zipf domain, the compute-optimal mixture shifts
with the budget as in AutoScale (Kang et al. 2024): the fast-saturating domain's marginal value drops
once it is learned, the diverse one's keeps paying.

`synthetic_corpus(out_dir, domains, seed)` writes each domain as JSONL (`text` per line),
`domains.json` (read it with `synthetic_sources` / `embedded_sources`) and `params.json` holding each
domain's parameters and its entropy rate.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from autoscale_ray.atomic import write_json
from autoscale_ray.data.sources import DomainSource
from autoscale_ray.errors import BadInput

_LETTERS = np.array(list("etaoinshrdlucmfwypvbgkjqxz"))
_DEFAULTS: dict[str, dict[str, Any]] = {
    "template": {"n_templates": 8, "slot_vocab": 12, "slots": 3},
    "markov": {"order": 2, "alphabet": 12, "concentration": 0.3},
    "zipf": {"vocab": 20000, "exponent": 1.1},
}


@dataclass(frozen=True)
class SyntheticDomain:
    """One synthetic domain: `kind` in template | markov | zipf, `params` overriding the defaults:
    template: n_templates (8), slot_vocab (12), slots per template (3);
    markov: order (2), alphabet size <= 26 (12), Dirichlet concentration (0.3);
    zipf: vocab (20000), exponent (1.1)."""

    name: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def resolved(self) -> dict[str, Any]:
        if self.kind not in _DEFAULTS:
            raise BadInput(f"unknown synthetic kind `{self.kind}`", f"domain `{self.name}`",
                           f"use one of {sorted(_DEFAULTS)}")
        unknown = set(self.params) - set(_DEFAULTS[self.kind])
        if unknown:
            raise BadInput(f"unknown parameter(s) {sorted(unknown)}", f"domain `{self.name}`",
                           f"{self.kind} takes {sorted(_DEFAULTS[self.kind])}")
        return {**_DEFAULTS[self.kind], **self.params}


DEFAULT_DOMAINS: tuple[SyntheticDomain, ...] = (
    SyntheticDomain("templates", "template"),
    SyntheticDomain("markov", "markov"),
    SyntheticDomain("zipf_small", "zipf", {"vocab": 500}),
    SyntheticDomain("zipf_large", "zipf", {"vocab": 50000}),
)


def _words(rng: np.random.Generator, n: int, alphabet: int = 26) -> list[str]:
    """n distinct pseudo-words of 3-10 letters."""
    out: dict[str, None] = {}
    while len(out) < n:
        length = int(rng.integers(3, 11))
        out.setdefault("".join(rng.choice(_LETTERS[:alphabet], size=length)), None)
    return list(out)


class _Template:
    def __init__(self, p: Mapping[str, Any], rng: np.random.Generator) -> None:
        if p["n_templates"] < 1 or p["slot_vocab"] < 1 or p["slots"] < 0:
            raise BadInput("template needs n_templates >= 1, slot_vocab >= 1, slots >= 0", "synthetic params")
        self.vocab = _words(rng, p["slot_vocab"])
        k = p["slots"] + 1
        frame = _words(rng, k * p["n_templates"])
        # template t: k fixed words with a slot (None) between each two of them
        self.templates = [[w for f in frame[k * t:k * t + k] for w in (f, None)][:-1]
                          for t in range(p["n_templates"])]
        self.slots = p["slots"]

    def entropy(self) -> float:
        """(log T + slots log V) / E[characters per sentence], sentences ending in '. '."""
        slot_len = float(np.mean([len(v) for v in self.vocab]))
        chars = np.mean([sum(len(w) for w in t if w) + self.slots * slot_len + len(t) - 1 + 2
                         for t in self.templates])
        return float((math.log(len(self.templates)) + self.slots * math.log(len(self.vocab))) / chars)

    def document(self, rng: np.random.Generator, chars: int) -> str:
        out, n = [], 0
        while n < chars:
            t = self.templates[int(rng.integers(len(self.templates)))]
            s = " ".join(w or self.vocab[int(rng.integers(len(self.vocab)))] for w in t) + "."
            out.append(s)
            n += len(s) + 1
        return " ".join(out)


class _Markov:
    def __init__(self, p: Mapping[str, Any], rng: np.random.Generator) -> None:
        if not 2 <= p["alphabet"] <= 26 or p["order"] < 1:
            raise BadInput("markov needs 2 <= alphabet <= 26 and order >= 1", "synthetic params")
        self.a, self.k = p["alphabet"], p["order"]
        self.P = rng.dirichlet(np.full(self.a, float(p["concentration"])), size=self.a ** self.k)
        self.cdf = np.cumsum(self.P, axis=1)

    def entropy(self) -> float:
        """Exact entropy rate sum_s pi(s) H(P(.|s)) of the chain on states (last `order` letters)."""
        n = self.a ** self.k
        T = np.zeros((n, n))
        for s in range(n):
            for c in range(self.a):
                T[s, (s * self.a + c) % n] += self.P[s, c]
        pi = np.full(n, 1.0 / n)
        for _ in range(5000):
            pi = pi @ T
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.nansum(np.where(self.P > 0, self.P * np.log(self.P), 0.0), axis=1)
        return float(pi @ h)

    def documents(self, rng: np.random.Generator, n_docs: int, chars: int) -> list[str]:
        n = self.a ** self.k
        state = rng.integers(n, size=n_docs)
        out = np.empty((n_docs, chars), dtype=np.int64)
        for t in range(chars):  # all documents step together: vectorised inverse-CDF sampling
            u = rng.random(n_docs)[:, None]
            c = np.minimum((self.cdf[state] < u).sum(axis=1), self.a - 1)
            out[:, t] = c
            state = (state * self.a + c) % n
        return ["".join(_LETTERS[row]) for row in out]


class _Zipf:
    def __init__(self, p: Mapping[str, Any], rng: np.random.Generator) -> None:
        self.vocab = _words(rng, int(p["vocab"]))
        ranks = np.arange(1, len(self.vocab) + 1, dtype=float)
        self.prob = ranks ** -float(p["exponent"])
        self.prob /= self.prob.sum()

    def entropy(self) -> float:
        h = -float(np.sum(self.prob * np.log(self.prob)))
        mean_len = float(np.sum(self.prob * np.array([len(w) + 1 for w in self.vocab])))
        return h / mean_len

    def document(self, rng: np.random.Generator, chars: int) -> str:
        mean_len = float(np.sum(self.prob * np.array([len(w) + 1 for w in self.vocab])))
        ids = rng.choice(len(self.vocab), size=max(1, int(chars / mean_len)), p=self.prob)
        return " ".join(self.vocab[i] for i in ids)


def _already_written(out: Path, domains: Sequence[SyntheticDomain], seed: int, docs_per_domain: int,
                     doc_chars: int) -> bool:
    """`out` holds this exact corpus (same arguments; `params.json` is written last)."""
    try:
        old = json.loads((out / "params.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    wanted = {d.name: json.loads(json.dumps({**asdict(d), "params": d.resolved()})) for d in domains}
    return ((old.get("seed"), old.get("docs_per_domain"), old.get("doc_chars")) == (seed, docs_per_domain, doc_chars)
            and {k: {f: v.get(f) for f in wanted.get(k, {})} for k, v in old.get("domains", {}).items()} == wanted
            and all((out / d.name / "part-00000.jsonl").exists() for d in domains))


def synthetic_corpus(out_dir: str | Path, domains: Sequence[SyntheticDomain] = DEFAULT_DOMAINS, *,
                     seed: int = 0, docs_per_domain: int = 200, doc_chars: int = 2000) -> Path:
    """Write the synthetic domains (JSONL), `domains.json` and `params.json`; returns `out_dir`.

    Deterministic: the same arguments give byte-identical files. Each domain's source has its own
    random stream (seed, domain index), so adding a domain does not change the others.
    """
    if docs_per_domain < 1 or doc_chars < 10:
        raise BadInput("docs_per_domain must be >= 1 and doc_chars >= 10", "synthetic_corpus")
    names = [d.name for d in domains]
    if len(set(names)) != len(names) or not names:
        raise BadInput(f"domain names {names} must be non-empty and distinct", "synthetic_corpus")
    out = Path(out_dir)
    if _already_written(out, domains, seed, docs_per_domain, doc_chars):
        return out  # unchanged files keep their mtimes, so the packed corpus's cache key holds
    out.mkdir(parents=True, exist_ok=True)
    params: dict[str, Any] = {"seed": seed, "docs_per_domain": docs_per_domain, "doc_chars": doc_chars,
                              "entropy_unit": "nats per character (the loss floor per byte token)",
                              "domains": {}}
    for i, dom in enumerate(domains):
        p = dom.resolved()
        structure = np.random.default_rng([seed, i, 0])   # the source itself
        sampling = np.random.default_rng([seed, i, 1])    # the documents drawn from it
        source = {"template": _Template, "markov": _Markov, "zipf": _Zipf}[dom.kind](p, structure)
        if dom.kind == "markov":
            docs = source.documents(sampling, docs_per_domain, doc_chars)
        else:
            docs = [source.document(sampling, doc_chars) for _ in range(docs_per_domain)]
        (out / dom.name).mkdir(exist_ok=True)
        with open(out / dom.name / "part-00000.jsonl", "w", encoding="utf-8") as fh:
            for j, text in enumerate(docs):
                fh.write(json.dumps({"text": text, "id": f"{dom.name}-{j}"}) + "\n")
        params["domains"][dom.name] = {**asdict(dom), "params": p, "entropy_rate": source.entropy()}
    write_json(out / "domains.json", {d.name: {"paths": [d.name], "format": "jsonl", "text_column": "text"}
                                      for d in domains})
    write_json(out / "params.json", params)
    return out


def synthetic_sources(out_dir: str | Path) -> list[DomainSource]:
    """The `DomainSource`s of a folder written by `synthetic_corpus`."""
    from autoscale_ray.data.embedded import embedded_sources

    return embedded_sources(out_dir)
