"""The embedded default corpus and the synthetic generator; `corpus build` through the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from autoscale_ray.data import (build_embedded_corpus, embedded_sources, prepare_corpus,
                                synthetic_corpus)
from autoscale_ray.data.synthetic import SyntheticDomain
from autoscale_ray.errors import BadInput
from data_fixtures import cli, ray_local  # noqa: F401


def _texts_digest(folder) -> dict[str, str]:
    out = {}
    for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        h = hashlib.blake2b(digest_size=16)
        for f in sorted(d.glob("*.parquet")):
            for t in pq.read_table(f, columns=["text"]).column("text").to_pylist():
                h.update(t.encode())
        out[d.name] = h.hexdigest()
    return out


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    return build_embedded_corpus(tmp_path_factory.mktemp("emb") / "corpus")


@pytest.mark.slow
def test_embedded_corpus_has_four_real_domains_of_2mb_with_provenance(embedded):
    prov = json.loads((embedded / "provenance.json").read_text())
    assert len(prov["domains"]) >= 4
    for name, d in prov["domains"].items():
        texts = [t for f in sorted((embedded / name).glob("*.parquet"))
                 for t in pq.read_table(f, columns=["text"]).column("text").to_pylist()]
        size = sum(len(t.encode()) for t in texts)
        assert size == d["bytes"] >= 2_000_000, name
        assert len(d["files"]) == d["documents"] == len(texts)
        assert sum(b for _, b in d["files"]) == size
    assert [s.name for s in embedded_sources(embedded)] == list(prov["domains"])
    assert prov["versions"]["torch"] != "missing"


@pytest.mark.slow
def test_embedded_corpus_is_deterministic_and_cached(embedded, tmp_path):
    again = build_embedded_corpus(tmp_path / "again")
    assert _texts_digest(again) == _texts_digest(embedded)
    stamp = (embedded / "provenance.json").stat().st_mtime_ns
    assert build_embedded_corpus(embedded) == embedded
    assert (embedded / "provenance.json").stat().st_mtime_ns == stamp  # not rebuilt


@pytest.mark.slow
def test_embedded_corpus_packs(embedded, tmp_path, ray_local):  # noqa: F811
    corpus = prepare_corpus(embedded_sources(embedded), tmp_path / "packed", seq_len=256)
    for d in corpus.domains:
        assert corpus.n_train_sequences(d) > 7000  # ~2 MB+ of bytes each
        assert corpus.validation(d).shape == (256, 256)


def test_cli_corpus_build_refuses_a_foreign_folder(tmp_path, cli):  # noqa: F811
    (tmp_path / "mine.txt").write_text("not a corpus")
    code, out, err = cli("corpus", "build", "--out", str(tmp_path))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "folder exists and is not an embedded corpus" in lines[0]
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]  # nothing written


def test_synthetic_corpus_is_deterministic_and_documents_its_entropy(tmp_path):
    doms = (SyntheticDomain("t", "template"), SyntheticDomain("m", "markov", {"alphabet": 6}),
            SyntheticDomain("z", "zipf", {"vocab": 300}))
    a = synthetic_corpus(tmp_path / "a", doms, seed=3, docs_per_domain=5, doc_chars=400)
    b = synthetic_corpus(tmp_path / "b", doms, seed=3, docs_per_domain=5, doc_chars=400)
    c = synthetic_corpus(tmp_path / "c", doms, seed=4, docs_per_domain=5, doc_chars=400)
    for d in ("t", "m", "z"):
        fa, fb, fc = (p / d / "part-00000.jsonl" for p in (a, b, c))
        assert fa.read_bytes() == fb.read_bytes() != fc.read_bytes()
    params = json.loads((a / "params.json").read_text())["domains"]
    h = {d: params[d]["entropy_rate"] for d in ("t", "m", "z")}
    # learnability ordering by construction: templates far below the Markov chain
    assert 0 < h["t"] < h["z"] and 0 < h["m"] < np.log(6)
    # the Markov chain's stated entropy rate matches the empirical conditional entropy of its text
    text = "".join(json.loads(line)["text"] for line in
                   (synthetic_corpus(tmp_path / "big", (doms[1],), seed=3, docs_per_domain=40,
                                     doc_chars=5000) / "m" / "part-00000.jsonl").read_text().splitlines())
    from collections import Counter
    ctx = Counter(text[i:i + 2] for i in range(len(text) - 2))
    tri = Counter(text[i:i + 3] for i in range(len(text) - 2))
    emp = -sum(n * np.log(n / ctx[k[:2]]) for k, n in tri.items()) / sum(tri.values())
    big = json.loads((tmp_path / "big" / "params.json").read_text())["domains"]["m"]["entropy_rate"]
    assert emp == pytest.approx(big, abs=0.05)
    with pytest.raises(BadInput, match="unknown synthetic kind"):
        synthetic_corpus(tmp_path / "x", (SyntheticDomain("q", "gauss"),))


def test_synthetic_corpus_is_not_rewritten_when_unchanged(tmp_path):
    """Rewriting would change the files' mtimes and so the packed corpus's cache key: every run
    (and every --resume) would pack the corpus again."""
    from autoscale_ray.data.synthetic import synthetic_corpus

    synthetic_corpus(tmp_path, docs_per_domain=5, doc_chars=50)
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.jsonl")}
    synthetic_corpus(tmp_path, docs_per_domain=5, doc_chars=50)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.jsonl")} == stamps
    synthetic_corpus(tmp_path, docs_per_domain=6, doc_chars=50)  # other arguments: written anew
    assert sum(1 for _ in open(next(iter(stamps)))) == 6
