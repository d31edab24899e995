"""Tokens/s of a proxy run on Ray Train (1 CPU worker) vs the same loop in this process, no Ray.

Both paths run `autoscale_ray.train.loop.train_proxy` on the same packed corpus, mixture plan,
model (gpt2-tiny), batch and thread count; the bare path reads `PackedCorpus.iter_plan`, the Ray path
a `TorchTrainer` worker reading the Ray Data stream. Steady-state tokens/s is the training time of
the evaluation windows after the first (the first pays the Ray Data pipeline's start-up); the
wall-clock ratio includes Train's start-up (worker group, dataset, process spawn) too.

    .venv/bin/python benchmarks/train_overhead.py [--tokens 400000] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def steady_tokens_per_s(rows: list[dict]) -> float:
    """Tokens over training seconds, summed over the windows after the first evaluation."""
    later = rows[1:]
    tokens = sum(r["tokens"] - p["tokens"] for p, r in zip(rows, later))
    seconds = sum((r["tokens"] - p["tokens"]) / r["tokens_per_s"] for p, r in zip(rows, later))
    return tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=400_000, help="budget of each run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads = worker CPUs")
    args = parser.parse_args()

    import ray
    from ray.data import DataContext

    from autoscale_ray.data import prepare_corpus, synthetic_corpus, synthetic_sources
    from autoscale_ray.train import TrainConfig
    from autoscale_ray.train.proxy import train_in_process
    from autoscale_ray.train.job import ProxyJob
    from autoscale_ray.train.runner import fit_proxy

    work = Path(tempfile.mkdtemp(prefix="train-overhead-"))
    ray.init(num_cpus=args.threads + 1, include_dashboard=False, log_to_driver=False)
    DataContext.get_current().enable_progress_bars = False
    corpus = prepare_corpus(synthetic_sources(synthetic_corpus(work / "src", docs_per_domain=200)),
                            work / "packed", seq_len=128, val_tokens=4096)
    cfg = TrainConfig(model="gpt2-tiny", budget_tokens=args.tokens, global_batch_tokens=4096,
                      micro_batch=16, lr=1e-3, eval_count=6, eval_batches=2, num_workers=1)

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    bare: list[dict] = []
    train_in_process(cfg, corpus, run_id="bare", report=lambda row, save: bare.append(row))
    bare_wall = time.perf_counter() - t0

    t0 = time.perf_counter()
    result = fit_proxy(ProxyJob(cfg, str(corpus.root), "ray", storage_path=str(work / "ray"),
                                cpus_per_worker=float(args.threads)))
    ray_wall = time.perf_counter() - t0
    ray_rows = result.return_value
    ray.shutdown()

    assert abs(bare[-1]["loss"] - ray_rows[-1]["loss"]) < 1e-3, "paths trained differently"
    b, r = steady_tokens_per_s(bare), steady_tokens_per_s(ray_rows)
    print(f"gpt2-tiny, seq 128, global batch 4096 tokens, {args.tokens} tokens, "
          f"{args.threads} thread(s); final loss bare {bare[-1]['loss']:.4f} ray {ray_rows[-1]['loss']:.4f}")
    print(f"{'path':<22}{'wall s':>9}{'tokens/s (wall)':>17}{'tokens/s (steady)':>19}")
    print(f"{'bare torch, no Ray':<22}{bare_wall:>9.1f}{args.tokens / bare_wall:>17.0f}{b:>19.0f}")
    print(f"{'Ray Train, 1 worker':<22}{ray_wall:>9.1f}{args.tokens / ray_wall:>17.0f}{r:>19.0f}")
    print(f"{'ratio Ray / bare':<22}{'':>9}{bare_wall / ray_wall:>17.3f}{r / b:>19.3f}")


if __name__ == "__main__":
    main()
