"""Training throughput and MFU of one proxy on one device, without Ray (bf16, SDPA, compile on/off).

Runs the project's training loop (`autoscale_ray.train.loop.train_proxy`, the one Ray Train workers
run) on random tokens, so it measures the model and the loop, not the data pipeline. Tokens/s and
MFU (6N + 12 L d T FLOPs per token over the device's dense bf16 peak) come from the loop's own
evaluation rows, skipping the first window (warm-up, compilation).

    .venv/bin/python benchmarks/gpu_train.py                     # GPT-2 124M shape, seq 1024, CUDA
    .venv/bin/python benchmarks/gpu_train.py --model gpt2-124m gpt2-774m
    .venv/bin/python benchmarks/gpu_train.py --pack 1 2 4 8      # k tiny proxies on one device
    .venv/bin/python benchmarks/gpu_train.py --smoke [--pack 1 2] # tiny shape on CPU: a smoke check

`--pack K ...` runs K processes at once on the one device, each a gpt2-tiny proxy (seq 128), as Ray
packs K trials with a GPU fraction of 1/K each (one worker process per trial), and prints their
aggregate steady tokens/s against K = 1's.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import torch

from autoscale_ray.train import Worker, RunInfo, TokenIds, TrainConfig, model_spec, train_proxy

VOCAB = 50257  # GPT-2's tokenizer


def random_batches(micro_batch: int, seq_len: int, vocab: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield {"input_ids": torch.randint(0, vocab, (micro_batch, seq_len), generator=gen),
               "domain": torch.zeros(micro_batch, dtype=torch.long)}


def measure(model_name: str, seq_len: int, micro_batch: int, accumulation: int, steps: int,
            compile_model: bool, device: torch.device, vocab: int) -> dict:
    cfg = TrainConfig(model=model_name, budget_tokens=steps * micro_batch * accumulation * seq_len,
                      global_batch_tokens=micro_batch * accumulation * seq_len,
                      micro_batch=micro_batch, lr=6e-4, eval_count=6, eval_first_fraction=0.2,
                      eval_batches=1, compile=compile_model, use_gpu=device.type == "cuda")
    spec = model_spec(model_name, vocab_size=vocab, seq_len=seq_len)
    torch.manual_seed(0)
    model = spec.build()
    tokens = TokenIds(vocab_size=vocab, pad_id=vocab, eod_id=vocab, mask_id=vocab)  # no padding
    val = {"random": next(random_batches(micro_batch, seq_len, vocab, seed=1))["input_ids"].numpy()}
    rows: list[dict] = []
    t0 = time.perf_counter()
    train_proxy(cfg, model=model, objective=spec.objective, tokens=tokens,
                batches=random_batches(micro_batch, seq_len, vocab), validation=val,
                layout=cfg.batch_layout(seq_len, 1), total_steps=cfg.total_steps(seq_len),
                run=RunInfo("bench", ("random",), {"random": 1.0}),
                report=lambda row, save: rows.append(row), worker=Worker(device))
    wall = time.perf_counter() - t0
    later = rows[1:]
    tok = sum(r["tokens"] - p["tokens"] for p, r in zip(rows, later))
    sec = sum((r["tokens"] - p["tokens"]) / r["tokens_per_s"] for p, r in zip(rows, later))
    tps = tok / sec
    return {"tokens_per_s": tps, "mfu": rows[-1]["mfu"] * tps / rows[-1]["tokens_per_s"],
            "peak_mem_gib": rows[-1]["peak_mem_bytes"] / 2**30, "wall_s": wall,
            "loss": rows[-1]["loss"], "params": rows[-1]["params"]}


def _packed_one(barrier, queue, args: tuple) -> None:
    torch.set_num_threads(1)  # K processes share the host's cores
    barrier.wait()  # start together: the aggregate is over overlapping runs
    queue.put(measure(*args))


def measure_packed(k: int, args: tuple) -> dict:
    """K processes training the same proxy at once (spawned, as Ray starts trial workers)."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=_packed_one, args=(barrier, queue, args)) for _ in range(k)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return {"tokens_per_s": sum(r["tokens_per_s"] for r in results),
            "slowest_s": max(r["wall_s"] for r in results),
            "peak_mem_gib": max(r["peak_mem_gib"] for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=["gpt2-124m"])
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--accumulation", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--compile", choices=["off", "on", "both"], default="both")
    parser.add_argument("--smoke", action="store_true", help="gpt2-tiny, seq 128, few steps, CPU ok")
    parser.add_argument("--pack", type=int, nargs="+", help="K tiny proxies at once, for each K given")
    args = parser.parse_args()
    if args.smoke or args.pack:
        args.model, args.seq_len, args.micro_batch, args.accumulation = ["gpt2-tiny"], 128, 8, 1
        args.steps = 12 if args.smoke else args.steps
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    vocab = 260 if args.smoke else VOCAB  # bytes in the smoke check, as before
    print(f"{', '.join(args.model)} on {name}: seq {args.seq_len}, micro-batch {args.micro_batch} x "
          f"{args.accumulation} accumulation, {args.steps} steps, "
          f"{'bf16 autocast' if device.type == 'cuda' else 'fp32'}, SDPA, torch {torch.__version__}")
    if args.pack:
        print(f"{'K':>3}{'aggregate tokens/s':>20}{'vs K=1':>8}{'slowest s':>11}{'peak GiB':>10}")
        base = 0.0
        for k in sorted({1, *args.pack}):  # K = 1 first: the baseline, measured in this run
            m = measure_packed(k, (args.model[0], args.seq_len, args.micro_batch, args.accumulation,
                                   args.steps, False, device, vocab))
            base = base or m["tokens_per_s"]
            print(f"{k:>3}{m['tokens_per_s']:>20.0f}{m['tokens_per_s'] / base:>8.2f}{m['slowest_s']:>11.1f}"
                  f"{m['peak_mem_gib']:>10.2f}")
        return
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    print(f"{'model':<11}{'compile':<9}{'tokens/s':>12}{'MFU':>8}{'peak GiB':>10}{'wall s':>9}{'loss':>8}")
    for model_name in args.model:
        for flag in modes:
            m = measure(model_name, args.seq_len, args.micro_batch, args.accumulation, args.steps,
                        flag, device, vocab)
            print(f"{model_name:<11}{'on' if flag else 'off':<9}{m['tokens_per_s']:>12.0f}{m['mfu']:>8.1%}"
                  f"{m['peak_mem_gib']:>10.2f}{m['wall_s']:>9.1f}{m['loss']:>8.3f}")
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
