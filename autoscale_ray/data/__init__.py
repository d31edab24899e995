"""Data: domain shards -> tokenised, packed, cached corpus -> exact-quota mixture streams.

    sources = [DomainSource("web", ("s3://bucket/web/*.parquet",)),
               DomainSource("code", ("data/code/*.jsonl",), text_column="content")]
    corpus = prepare_corpus(sources, "~/.cache/autoscale-ray/packed", seq_len=256)
    plan = corpus.plan(budget_tokens=20_000_000, weights={"web": 0.7, "code": 0.3}, seed=0)
    ds = corpus.mixture_dataset(plan)            # Ray Dataset: input_ids int64 [seq_len], domain int32
    val = corpus.validation("web")               # int32 [n_val, seq_len], never trained on

`build_embedded_corpus()` writes the real-text corpus shipped with the package (the same bytes
everywhere, no network; `embedded_corpus_hash()` names it);
`synthetic_corpus()` writes seeded domains of known entropy for tests.
"""

from autoscale_ray.data.embedded import build_embedded_corpus, default_packed_dir, embedded_sources
from autoscale_ray.data.packed import PackedCorpus, stream_data_config
from autoscale_ray.data.plan import DEFAULT_MAX_EPOCHS, MixturePlan
from autoscale_ray.data.prepare import DEFAULT_VAL_TOKENS, prepare_corpus
from autoscale_ray.data.sources import DomainSource, sources_from_config
from autoscale_ray.data.synthetic import SyntheticDomain, synthetic_corpus, synthetic_sources

__all__ = ["DomainSource", "PackedCorpus", "MixturePlan", "prepare_corpus", "build_embedded_corpus",
           "embedded_sources", "default_packed_dir", "synthetic_corpus", "synthetic_sources", "SyntheticDomain",
           "sources_from_config", "stream_data_config", "DEFAULT_VAL_TOKENS", "DEFAULT_MAX_EPOCHS"]
