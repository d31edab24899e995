"""Packing a corpus: reading and tokenising its domains, one read per domain joined with `union`
(the baseline, what prepare_corpus did before) vs one read of all the files of a format
(data/read.py, what it does now), in the same process on the same Ray.

All pipelines tokenise with prepare's own UDF and are drained by the driver; the table gives the
seconds of each (the per-domain reads also drained one after another), the ratio of the union's to
the new one's, whether they delivered the same documents (domain, hash, length), and prepare_corpus
end to end (into a fresh folder, this code).
Corpora: the embedded default corpus (4 domains, one Parquet file each) and a synthetic one with
`--domains` domains of 3 Parquet files each.

    .venv/bin/python benchmarks/pack_read.py [--cpus 2] [--repeats 2] [--domains 8]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from data_fixtures import documents, write_parquet  # noqa: E402


def drained(parts) -> tuple[float, list[tuple[int, int, int]]]:
    """Seconds to drain the datasets in turn, and their documents as sorted (domain, key, length)."""
    started = time.perf_counter()
    docs = []
    for ds in parts:
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            ids = batch.column("ids").combine_chunks()
            lengths = np.diff(ids.offsets.to_numpy())
            docs += zip(batch.column("domain").to_pylist(), batch.column("key").to_pylist(), lengths.tolist())
    return time.perf_counter() - started, sorted(docs)


def per_domain(resolved, spec):
    """One read per domain, labelled with its index (prepare before joined these with `union`)."""
    from autoscale_ray.data.prepare import _tokenize_block
    from autoscale_ray.data.read import _label, _read

    names = [r.source.name for r in resolved]
    return [_read(r.files[0].format, [f.uri for f in r.files], r.filesystem, paths=False)
            .select_columns([r.source.text_column])
            .map_batches(_label, batch_format="pyarrow", fn_kwargs={"column": r.source.text_column, "domain": i})
            .map_batches(_tokenize_block, batch_format="pyarrow", fn_kwargs={"names": names, "spec": spec})
            for i, r in enumerate(resolved)]


def joined(parts):
    return [parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]]


def grouped(resolved, spec):
    """data/read.py: one read per format, tokenised; drained in turn (prepare now)."""
    from autoscale_ray.data.prepare import _tokenize_block
    from autoscale_ray.data.read import read_domains

    names = [r.source.name for r in resolved]
    return [ds.map_batches(_tokenize_block, batch_format="pyarrow", fn_kwargs={"names": names, "spec": spec})
            for ds in read_domains(resolved)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--domains", type=int, default=8)
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    import ray
    from ray.data import DataContext

    from autoscale_ray.data import build_embedded_corpus, embedded_sources, prepare_corpus
    from autoscale_ray.data.sources import DomainSource, resolve_source
    from autoscale_ray.data.tokenize import tokenizer_spec

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    DataContext.get_current().enable_progress_bars = False
    spec = tokenizer_spec("byte")
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = []
        for d in range(args.domains):
            for k in range(3):
                write_parquet(Path(tmp) / f"d{d}" / f"part-{k}.parquet", documents(200, 100 * d + k))
            synthetic.append(DomainSource(f"d{d}", (f"{tmp}/d{d}/*.parquet",)))
        corpora = {"embedded (4 domains x 1 file)": embedded_sources(build_embedded_corpus()),
                   f"synthetic ({args.domains} domains x 3 files)": synthetic}
        ray.data.range(8).materialize()  # the task workers started before the first timing
        print(f"Ray with {args.cpus} CPUs")
        print(f"{'corpus':<34} {'repeat':>6} {'union of reads s':>17} {'reads in turn s':>16} "
              f"{'one read per format s':>22} {'ratio':>6} {'same documents':>15} {'prepare_corpus s':>17}")
        for label, sources in corpora.items():
            resolved = [resolve_source(s) for s in sources]
            for i in range(args.repeats):
                base_s, base_docs = drained(joined(per_domain(resolved, spec)))
                turn_s, turn_docs = drained(per_domain(resolved, spec))
                new_s, new_docs = drained(grouped(resolved, spec))
                started = time.perf_counter()
                prepare_corpus(sources, Path(tmp) / f"packed-{label[:8]}-{i}", seq_len=128, val_tokens=4096)
                prep_s = time.perf_counter() - started
                same = base_docs == turn_docs == new_docs
                print(f"{label:<34} {i:>6} {base_s:>17.2f} {turn_s:>16.2f} {new_s:>22.2f} "
                      f"{base_s / new_s:>6.2f} {str(same):>15} {prep_s:>17.2f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
