"""Mixture-stream speed against the tiny proxy's token consumption, and stream memory vs corpus size.

    .venv/bin/python benchmarks/data_stream.py [--scale 1] [--budget 2000000]

1. Throughput: tokens/s of a trial's exact-quota stream (Ray Data `mixture_dataset`, consumed by
   the driver after a warm-up run, and the in-process `iter_plan`) divided by the tokens/s that the
   `gpt2-tiny` proxy trains at (forward + backward + AdamW step) on the same machine. The stream
   must be >= 10x faster than the model eats, or data would be the bottleneck of a trial.
2. Memory: peak anonymous memory (RssAnon: heap, not the page cache of the memory-mapped shards)
   summed over the driver and this session's Ray worker processes while a stream is consumed, for
   a synthetic corpus 1x and 10x larger: the same trial budget, and one whole pass over each corpus
   (10x the tokens). Flat within 20% = the stream does not load the corpus.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")

import numpy as np

from autoscale_ray.data import prepare_corpus, synthetic_corpus, synthetic_sources


def rss_anon(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


class PeakMemory:
    """Samples RssAnon of this process + all `ray::` worker processes every 20 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def total(self) -> int:
        pids = [os.getpid()]
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                try:
                    with open(f"/proc/{entry}/cmdline", "rb") as fh:
                        is_worker = fh.read().startswith(b"ray::")  # Ray workers retitle themselves
                    # only this session's workers: children of the raylet this driver started
                    if is_worker and _ppid(_ppid(int(entry))) == os.getpid():
                        pids.append(int(entry))
                except OSError:
                    continue
        self.n_procs = max(getattr(self, "n_procs", 0), len(pids))
        return sum(rss_anon(p) for p in pids)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.total())
            time.sleep(0.01)

    def __enter__(self) -> "PeakMemory":
        self.base = self.total()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def consume_ray(corpus, plan) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    for batch in corpus.mixture_dataset(plan).iter_batches(batch_size=64, batch_format="numpy"):
        n += batch["input_ids"].size
    return n, time.perf_counter() - t0


def consume_local(corpus, plan) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = sum(b["input_ids"].size for b in corpus.iter_plan(plan, batch_size=64))
    return n, time.perf_counter() - t0


def proxy_tokens_per_s(corpus, steps: int = 12, micro_batch: int = 8) -> float:
    import torch

    from autoscale_ray.train.models import model_spec

    model = model_spec("gpt2-tiny", vocab_size=corpus.vocab_size, seq_len=corpus.seq_len).build()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    plan = corpus.plan(steps * micro_batch * corpus.seq_len * 2, {d: 1 for d in corpus.domains}, seed=0)
    batches = corpus.iter_plan(plan, batch_size=micro_batch)
    times = []
    for _ in range(steps):
        ids = torch.from_numpy(next(batches)["input_ids"])
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return micro_batch * corpus.seq_len / float(np.median(times[2:]))  # skip warm-up steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=2_000_000, help="tokens streamed per trial")
    ap.add_argument("--docs", type=int, default=150, help="documents per domain of the 1x corpus")
    ap.add_argument("--seq-len", type=int, default=256)
    args = ap.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    tmp = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        run(args, tmp)
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path) -> None:
    corpora = {}
    for scale in (1, 10):
        src = synthetic_corpus(tmp / f"src{scale}", seed=scale, docs_per_domain=args.docs * scale,
                               doc_chars=5000)
        t0 = time.perf_counter()
        corpora[scale] = prepare_corpus(synthetic_sources(src), tmp / "cache", seq_len=args.seq_len)
        print(f"packed {scale:>2}x corpus: {sum(corpora[scale].n_train_sequences(d) for d in corpora[scale].domains) * args.seq_len:,} "
              f"train tokens in {time.perf_counter() - t0:.1f} s")
    weights = {"templates": 0.4, "markov": 0.3, "zipf_small": 0.1, "zipf_large": 0.2}

    corpus = corpora[1]
    plan = corpus.plan(args.budget, weights, seed=0)
    consume_ray(corpus, plan)  # warm-up: worker processes started, modules imported
    n_ray, t_ray = consume_ray(corpus, plan)
    n_loc, t_loc = consume_local(corpus, plan)
    model_tps = proxy_tokens_per_s(corpus)
    print("\n| path | tokens | seconds | tokens/s | ratio to gpt2-tiny training |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(f"| gpt2-tiny training (fwd+bwd+AdamW, micro-batch 8 x {args.seq_len}) | | | {model_tps:,.0f} | 1.0 |")
    print(f"| Ray Data mixture_dataset (driver, batch 64) | {n_ray:,} | {t_ray:.2f} | {n_ray / t_ray:,.0f} | {n_ray / t_ray / model_tps:.1f} |")
    print(f"| in-process iter_plan (batch 64) | {n_loc:,} | {t_loc:.2f} | {n_loc / t_loc:,.0f} | {n_loc / t_loc / model_tps:.1f} |")

    print("\n| corpus | train tokens | streamed tokens | processes | peak RssAnon, driver + Ray workers |")
    print("| --- | ---: | ---: | ---: | ---: |")
    peaks = {}
    for label, one_pass in (("same budget", False), ("one pass over the corpus", True)):
        for scale, c in corpora.items():
            sizes = {d: c.n_train_sequences(d) for d in c.domains}
            total = sum(sizes.values()) * c.seq_len
            p = c.plan(total, sizes, seed=0) if one_pass else c.plan(args.budget, weights, seed=0)
            consume_ray(c, p)  # warm
            with PeakMemory() as mem:
                n, _ = consume_ray(c, p)
            peaks[label, scale] = mem.peak
            print(f"| {scale}x, {label} | {total:,} | {n:,} | {mem.n_procs} | {mem.peak / 2**20:.0f} MiB |")
        print(f"| ratio 10x / 1x ({label}) | | | | {peaks[label, 10] / peaks[label, 1]:.2f} |")


if __name__ == "__main__":
    main()
