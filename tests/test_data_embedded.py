"""The embedded default corpus (shipped shards, materialised), the synthetic generator; `corpus
build` through the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from autoscale_ray.data import (build_embedded_corpus, embedded_sources, prepare_corpus,
                                synthetic_corpus)
from autoscale_ray.data.embedded import (SHIPPED_DIR, corpus_content_hash, embedded_corpus_hash,
                                         shipped_manifest)
from autoscale_ray.data.embedded_build import build_from_installation
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


def test_embedded_corpus_has_four_real_domains_of_2mb_with_provenance(embedded):
    prov = json.loads((embedded / "provenance.json").read_text())
    manifest = shipped_manifest()
    assert len(prov["domains"]) >= 4 and list(prov["domains"]) == list(manifest["domains"])
    for name, d in prov["domains"].items():
        texts = [t for f in sorted((embedded / name).glob("*.parquet"))
                 for t in pq.read_table(f, columns=["text"]).column("text").to_pylist()]
        size = sum(len(t.encode()) for t in texts)
        assert size == d["bytes"] >= 2_000_000, name
        assert len(d["files"]) == d["documents"] == len(texts)
        assert sum(b for _, b, _ in d["files"]) == size
        # every document names its source file and that file's sha256, as the manifest records it
        shipped = {label: sha for label, _, sha in manifest["domains"][name]["files"]}
        assert {sha for _, _, sha in d["files"]} == set(shipped.values())
        assert all(len(sha) == 64 for sha in shipped.values())
    assert [s.name for s in embedded_sources(embedded)] == list(prov["domains"])
    assert prov["versions"]["torch"] != "missing"
    # real text: Python source parses, the C++ headers have #include / #define, prose is words
    python = pq.read_table(next((embedded / "python").glob("*.parquet"))).column("text").to_pylist()
    compile(python[0], "<stdlib>", "exec")
    cpp = "".join(pq.read_table(next((embedded / "cpp").glob("*.parquet"))).column("text").to_pylist()[:50])
    assert "#include" in cpp or "#define" in cpp


def test_embedded_corpus_never_reads_the_installation(tmp_path, monkeypatch):
    """Built from the shipped shards alone: with the installation readers broken it still builds,
    the same text as the default build."""
    import autoscale_ray.data.embedded_build as from_installation

    def refuse(*_a, **_k):
        raise AssertionError("the installation was read")
    for name in list(from_installation.READERS):
        monkeypatch.setitem(from_installation.READERS, name, ((), refuse))
    monkeypatch.setattr(from_installation, "collect_domain", refuse)
    root = build_embedded_corpus(tmp_path / "c")
    assert corpus_content_hash(root) == shipped_manifest()["corpus_hash"]


def test_shipped_corpus_is_small(embedded):
    shipped = sum(p.stat().st_size for p in SHIPPED_DIR.iterdir())
    text = sum(d["bytes"] for d in json.loads((embedded / "provenance.json").read_text())["domains"].values())
    assert shipped < 4_000_000 and text > 8_000_000  # a few MB in the package for ~12 MB of text


def test_embedded_corpus_is_deterministic_and_cached(embedded, tmp_path):
    again = build_embedded_corpus(tmp_path / "again")
    assert _texts_digest(again) == _texts_digest(embedded)
    stamp = (embedded / "provenance.json").stat().st_mtime_ns
    assert build_embedded_corpus(embedded) == embedded
    assert (embedded / "provenance.json").stat().st_mtime_ns == stamp  # not rebuilt


def test_cli_corpus_build_prints_the_content_hash(tmp_path, cli):  # noqa: F811
    code, out, err = cli("corpus", "build", "--out", str(tmp_path / "c"), "--json")
    assert code == 0, err
    obj = json.loads(out)
    assert obj["hash"] == embedded_corpus_hash() == shipped_manifest()["corpus_hash"]
    assert set(obj["domains"]) == {"stubs", "cpp", "python", "prose"}
    code, out, err = cli("corpus", "build", "--out", str(tmp_path / "c"))
    assert code == 0 and f"content hash: {obj['hash']}" in out


@pytest.mark.slow
def test_generating_from_this_installation_reproduces_the_shipped_corpus(tmp_path):
    """The generator kept in the repo is the one that made the shards: on an installation with the
    versions the manifest records, it writes the same text (hash) again."""
    from autoscale_ray.data.embedded_build import READERS, _versions

    manifest = shipped_manifest()
    if _versions({p for pk, _ in READERS.values() for p in pk}) != manifest["versions"]:
        pytest.skip("another installation: its files differ from the shipped corpus's sources")
    again = build_from_installation(tmp_path / "shards")
    assert again["corpus_hash"] == manifest["corpus_hash"]
    assert again["domains"] == manifest["domains"]


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
