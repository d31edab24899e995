"""Reading, tokenising, splitting and packing: four formats, s3://, tokenizer.json, bad input."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest

from autoscale_ray.data import DomainSource, prepare_corpus, sources_from_config
from autoscale_ray.data.prepare import _concat_docs
from autoscale_ray.data.sources import resolve_source
from autoscale_ray.errors import BadInput
from data_fixtures import (documents, ray_local, s3_server, s3_upload, split_documents,  # noqa: F401
                                 write_hf, write_jsonl, write_parquet, write_text)

SEQ = 32
EOD = 256


# ---------------------------------------------------------------- no Ray needed ------------------
def empty_file(path):
    path.write_bytes(b"")
    return path


def test_concat_docs_appends_eod_after_each_document():
    raw = np.arange(10, dtype=np.uint16)
    out = _concat_docs(raw, np.array([0, 5, 7]), np.array([2, 0, 3]), EOD)
    assert out.tolist() == [0, 1, EOD, EOD, 7, 8, 9, EOD]


@pytest.mark.parametrize("make, match", [
    (lambda t: DomainSource("a", (str(t / "missing.parquet"),)), "does not exist"),
    (lambda t: DomainSource("a", (str(t / "x" / "*.parquet"),)), "matches no file"),
    (lambda t: DomainSource("a", (str(write_text(t / "a.csv", ["x"])),)), "unknown format"),
    (lambda t: DomainSource("a", (str(t),), format="xml"), "unknown format `xml`"),
    (lambda t: DomainSource("a", (str(write_parquet(t / "a.parquet", ["x"], column="body")),)),
     "no column `text`"),
    (lambda t: DomainSource("a", (str(write_jsonl(t / "a.jsonl", ["x"], column="content")),)),
     "no field `text`"),
    (lambda t: DomainSource("a", (str(write_hf(t / "hfd", ["x"], column="body")),), format="hf"),
     "no column `text`"),
    (lambda t: DomainSource("a", (str(empty_file(t / "e.txt")),)), "every file is empty"),
])
def test_bad_sources_are_one_line_errors_before_any_ray_work(tmp_path, make, match):
    source = make(tmp_path)
    with pytest.raises(BadInput, match=match) as info:
        prepare_corpus([source], tmp_path / "cache", seq_len=SEQ)
    assert "\n" not in str(info.value) and "domain `a`" in str(info.value)


def test_sources_from_config_and_its_errors(tmp_path):
    got = sources_from_config({"web": {"paths": ["a/*.parquet"], "text_column": "body"},
                               "code": "b/*.jsonl"})
    assert got[0] == DomainSource("web", ("a/*.parquet",), "auto", "body")
    assert got[1].paths == ("b/*.jsonl",)
    with pytest.raises(BadInput, match=r"data.domains.web: unknown key\(s\) \['colum'\]"):
        sources_from_config({"web": {"paths": ["a"], "colum": "x"}})
    with pytest.raises(BadInput, match="paths"):
        sources_from_config({"web": {"paths": []}})


def test_globs_and_folders_expand_to_sorted_files(tmp_path):
    for i in (2, 0, 1):
        write_parquet(tmp_path / "d" / f"p{i}.parquet", ["x"])
    (tmp_path / "d" / "_SUCCESS").write_text("")
    by_glob = resolve_source(DomainSource("a", (str(tmp_path / "d" / "p*.parquet"),)))
    by_dir = resolve_source(DomainSource("a", (str(tmp_path / "d"),)))
    names = [f.uri.rsplit("/", 1)[1] for f in by_glob.files]
    assert names == ["p0.parquet", "p1.parquet", "p2.parquet"]
    assert [f.uri for f in by_dir.files] == [f.uri for f in by_glob.files]
    write_parquet(tmp_path / "d" / "sub" / "p9.parquet", ["x"])
    flat = resolve_source(DomainSource("a", (str(tmp_path / "d" / "*.parquet"),)))
    deep = resolve_source(DomainSource("a", (str(tmp_path / "d" / "**" / "*.parquet"),)))
    assert len(flat.files) == 3 and len(deep.files) == 4  # `*` stays in its folder, `**/` descends


# ---------------------------------------------------------------- with Ray ------------------------
DOCS = {"pq": documents(40, 1), "js": documents(40, 2), "tx": documents(40, 3), "hf": documents(40, 4)}


@pytest.fixture(scope="module")
def four_formats(tmp_path_factory, ray_local, s3_server):  # noqa: F811
    t = tmp_path_factory.mktemp("formats")
    write_parquet(t / "pq" / "a.parquet", DOCS["pq"][:25])
    write_parquet(t / "pq" / "b.parquet", DOCS["pq"][25:])
    write_jsonl(t / "js.jsonl", DOCS["js"], column="content")
    write_text(t / "tx.txt", DOCS["tx"])
    write_hf(t / "hf", DOCS["hf"])
    buf = io.BytesIO()
    import pyarrow as pa
    import pyarrow.parquet as pq
    s3_docs = documents(30, 5)
    pq.write_table(pa.table({"text": s3_docs}), buf)
    uri = s3_upload(s3_server, "corpus", "web/part-0.parquet", buf.getvalue())
    sources = [DomainSource("pq", (str(t / "pq" / "*.parquet"),)),
               DomainSource("js", (f"file://{t}/js.jsonl",), text_column="content"),
               DomainSource("tx", (str(t / "tx.txt"),)),
               DomainSource("hf", (str(t / "hf"),), format="hf"),
               DomainSource("s3", ("s3://corpus/web/*.parquet",), storage_options=s3_server)]
    corpus = prepare_corpus(sources, t / "cache", seq_len=SEQ, val_tokens=3 * SEQ)
    return corpus, {**DOCS, "s3": s3_docs}, sources, t, uri


@pytest.mark.slow
def test_every_format_and_s3_is_read_tokenised_and_split_disjointly(four_formats):
    corpus, docs, _, _, _ = four_formats
    assert corpus.domains == ("pq", "js", "tx", "hf", "s3")
    assert (corpus.vocab_size, corpus.eod_id, corpus.tokenizer) == (320, EOD, "byte")
    for d in corpus.domains:
        expected = {x.encode() for x in docs[d]}
        val = corpus.validation(d)
        train = np.asarray(corpus.train_array(d))
        assert val.dtype == np.int32 and val.shape == (3, SEQ)
        val_docs, train_docs = set(split_documents(val, EOD)), set(split_documents(train, EOD))
        # every whole document in each split is a source document, and no document is in both
        assert val_docs <= expected and train_docs <= expected and not val_docs & train_docs
        stats = corpus.domain_stats()[d]
        assert stats["documents"] == len(docs[d])
        assert stats["tokens"] == sum(len(x) + 1 for x in expected)
        assert stats["train_sequences"] == corpus.n_train_sequences(d) == len(train)
        # training keeps all but the validation documents, minus a tail shorter than a sequence
        assert len(train_docs) >= stats["train_documents"] - 1
        assert stats["dropped_tail_tokens"] < SEQ


@pytest.mark.slow
def test_packing_is_cached_and_the_split_ignores_file_order(four_formats, tmp_path):
    corpus, docs, sources, t, _ = four_formats
    again = prepare_corpus(sources, t / "cache", seq_len=SEQ, val_tokens=3 * SEQ)
    assert again.root == corpus.root
    # the same documents, split over files in another order, pack to the same validation set
    # and the same training sequences: the split is by content hash, not by position
    shuffled = list(reversed(docs["pq"]))
    write_jsonl(tmp_path / "x" / "1.jsonl", shuffled[:13])
    write_jsonl(tmp_path / "x" / "0.jsonl", shuffled[13:])
    other = prepare_corpus([DomainSource("pq", (str(tmp_path / "x"),))], tmp_path / "cache",
                           seq_len=SEQ, val_tokens=3 * SEQ)
    assert other.root != corpus.root
    assert np.array_equal(other.validation("pq"), corpus.validation("pq"))
    assert np.array_equal(np.asarray(other.train_array("pq")), np.asarray(corpus.train_array("pq")))
    manifest = json.loads((corpus.root / "manifest.json").read_text())
    assert manifest["provenance"]["sources"][4]["files"][0][0] == "corpus/web/part-0.parquet"


@pytest.mark.slow
def test_one_read_per_format_keeps_each_domains_documents(tmp_path, ray_local):  # noqa: F811
    """data/read.py reads the files of several domains in one read and labels each row by its file:
    every domain gets exactly its own documents, a file two domains list counts for both, and a text
    column named like Ray Data's `path` column is read one domain at a time."""
    a, b = documents(30, 21), documents(30, 22)
    write_parquet(tmp_path / "a" / "0.parquet", a[:15])
    write_parquet(tmp_path / "a" / "1.parquet", a[15:])
    write_parquet(tmp_path / "b.parquet", b)
    shared = [DomainSource("a", (str(tmp_path / "a"),)), DomainSource("b", (str(tmp_path / "b.parquet"),)),
              DomainSource("ab", (str(tmp_path / "a" / "1.parquet"), str(tmp_path / "b.parquet")))]
    write_parquet(tmp_path / "p" / "a.parquet", a, column="path")
    write_parquet(tmp_path / "p" / "b.parquet", b, column="path")
    named_path = [DomainSource("a", (str(tmp_path / "p" / "a.parquet"),), text_column="path"),
                  DomainSource("b", (str(tmp_path / "p" / "b.parquet"),), text_column="path")]
    for sources, expected in ((shared, {"a": a, "b": b, "ab": a[15:] + b}), (named_path, {"a": a, "b": b})):
        corpus = prepare_corpus(sources, tmp_path / "cache", seq_len=SEQ, val_tokens=2 * SEQ)
        for d, docs in expected.items():
            stats = corpus.domain_stats()[d]
            assert stats["documents"] == len(docs)
            assert stats["tokens"] == sum(len(x) + 1 for x in docs)
            packed = set(split_documents(corpus.validation(d), EOD)) | \
                set(split_documents(np.asarray(corpus.train_array(d)), EOD))
            assert packed <= {x.encode() for x in docs}


@pytest.mark.slow
def test_tokenizer_json_is_used_with_added_special_ids(tmp_path, ray_local):  # noqa: F811
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    docs = documents(60, 9)
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(docs, trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]"]))
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    write_parquet(tmp_path / "d.parquet", docs)
    corpus = prepare_corpus([DomainSource("d", (str(tmp_path / "d.parquet"),))], tmp_path / "c",
                            seq_len=16, tokenizer=str(path), val_tokens=32)
    size = tok.get_vocab_size()
    # [PAD] exists; end-of-document and mask are appended after the vocabulary
    assert corpus.pad_id == tok.token_to_id("[PAD]")
    assert (corpus.eod_id, corpus.mask_id, corpus.vocab_size) == (size, size + 1, size + 2)
    train = np.asarray(corpus.train_array("d"))
    first = train.reshape(-1)[: int(np.argmax(train.reshape(-1) == corpus.eod_id))]
    assert first.tolist() in [tok.encode(d, add_special_tokens=False).ids for d in docs]


@pytest.mark.slow
def test_empty_and_too_small_domains_are_bad_input(tmp_path, ray_local):  # noqa: F811
    write_parquet(tmp_path / "e.parquet", ["", ""])
    with pytest.raises(BadInput, match="domain `e`: no documents"):
        prepare_corpus([DomainSource("e", (str(tmp_path / "e.parquet"),))], tmp_path / "c", seq_len=SEQ)
    write_parquet(tmp_path / "s.parquet", ["tiny", "docs"])
    with pytest.raises(BadInput, match="domain `s`: only 10 tokens, fewer than one sequence of 32"):
        prepare_corpus([DomainSource("s", (str(tmp_path / "s.parquet"),))], tmp_path / "c", seq_len=SEQ)
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"text": [1, 2, 3]}), tmp_path / "n.parquet")
    with pytest.raises(BadInput, match="domain `n`: column `text` of `.*n.parquet` holds int64, not text"):
        prepare_corpus([DomainSource("n", (str(tmp_path / "n.parquet"),))], tmp_path / "c", seq_len=SEQ)
    assert not [p for p in (tmp_path / "c").iterdir() if not p.name.startswith(".")]
    shutil.rmtree(tmp_path / "c")


def test_s3_endpoint_from_the_environment_and_s3_errors(s3_server, monkeypatch):  # noqa: F811
    s3_upload(s3_server, "envbucket", "shards/a.jsonl", b'{"text": "hello"}\n')
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server["endpoint_override"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    got = resolve_source(DomainSource("s3", ("s3://envbucket/shards/*.jsonl",)))
    assert [(f.uri, f.size, f.format) for f in got.files] == [("envbucket/shards/a.jsonl", 18, "jsonl")]
    with pytest.raises(BadInput, match="glob `envbucket/shards/\\*.parquet` matches no file"):
        resolve_source(DomainSource("s3", ("s3://envbucket/shards/*.parquet",)))
    with pytest.raises(BadInput, match="path `envbucket/nope.jsonl` does not exist"):
        resolve_source(DomainSource("s3", ("s3://envbucket/nope.jsonl",)))


def test_hf_shards_are_read_by_row_ranges(tmp_path):
    import pyarrow as pa

    from autoscale_ray.data.read import _hf_shards, _read_hf_rows

    docs = documents(25, 11)
    write_hf(tmp_path / "hf", docs, column="body")
    (file, rows), = _hf_shards(str(tmp_path / "hf"))
    assert rows == 25
    ranges = pa.table({"file": [file, file], "start": [0, 10], "stop": [10, 25], "domain": [3, 3]})
    got = _read_hf_rows(ranges, column="body")
    assert got.column("text").to_pylist() == docs and set(got.column("domain").to_pylist()) == {3}
