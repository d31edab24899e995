"""Wall time of the same search with `--out` on a local folder vs on S3 (moto's server on loopback).

Both runs are `autoscale-ray run` in a subprocess on a fresh local Ray, same synthetic corpus (packed
once beforehand, so neither pays for packing), same plan (2 probes of DDO trials on 4 domains, one round, no replicate seeds: 18 trials of tiny
gpt2, 6 evaluations each, a checkpoint every `--checkpoint-every` of them and always the last). The
S3 run also keeps Tune's experiment (results, checkpoints, searcher state), the done/ markers and
the corpus upload on S3. Loopback S3 has no network latency, so this measures the extra work of
the object-store path (uploads, listing, per-trial markers), not a real bucket's round trips.

    .venv/bin/python benchmarks/storage_overhead.py [--repeats 2] [--checkpoint-every 1 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

EXE = str(Path(sys.executable).with_name("autoscale-ray"))


def config(tmp: Path, checkpoint_every: int) -> Path:
    cfg = {"name": "storage-bench",
           "corpus": {"synthetic": True, "seq_len": 64, "val_tokens": 2048, "cache_dir": str(tmp / "cache")},
           "train": {"model": "gpt2-tiny", "global_batch_tokens": 1024, "micro_batch": 16, "eval_count": 6,
                     "eval_batches": 2, "checkpoint_every": checkpoint_every},
           "search": {"probe_budgets": [1.2e4, 2.4e4], "target_budget": 2e5, "lr": 3e-3, "verify_probe": False,
                      "ddo": {"rounds": 1, "replicates": 0}},
           "resources": {"max_concurrent_trials": 2, "cpus_per_trial": 0.5}}
    path = tmp / f"bench-k{checkpoint_every}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


REQUESTS: list[str] = []  # request lines moto's server handled (its werkzeug handler, this process)


def count_requests() -> None:
    """Record every request line moto's in-process server handles (werkzeug's per-request log hook)."""
    import werkzeug.serving

    def log_request(self, code="-", size="-"):
        REQUESTS.append(self.requestline)

    werkzeug.serving.WSGIRequestHandler.log_request = log_request


def request_kinds(lines: list[str]) -> dict[str, int]:
    """Requests by kind: single PutObject of a file, directory markers (a PUT of an empty `key/`),
    multipart uploads (each a create + parts + complete), reads (GET/HEAD, listings included), other."""
    out = {"requests": len(lines), "put_object": 0, "dir_markers": 0, "multipart_uploads": 0,
           "multipart_requests": 0, "reads": 0, "other": 0}
    for line in lines:
        method, path = (line.split(" ") + ["", ""])[:2]
        if "uploads" in path or "uploadId=" in path:
            out["multipart_requests"] += 1
            out["multipart_uploads"] += path.endswith("?uploads") and method == "POST"
        elif method == "PUT" and path.split("?")[0].endswith("/"):
            out["dir_markers"] += 1
        elif method == "PUT":
            out["put_object"] += 1
        elif method in ("GET", "HEAD"):
            out["reads"] += 1
        else:
            out["other"] += 1
    return out


def timed_run(cfg: Path, out: str, env: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run([EXE, "run", str(cfg), "--out", out, "--json"], capture_output=True, text=True,
                          env=env, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return time.perf_counter() - started, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--checkpoint-every", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--log-requests", type=Path, help="write the S3 runs' request lines here")
    args = parser.parse_args()

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    count_requests()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
           "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    os.environ.update({k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                           "AWS_DEFAULT_REGION")})
    boto3.client("s3").create_bucket(Bucket="bench")
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for k in args.checkpoint_every:
                cfg = config(Path(tmp), k)
                timed_run(cfg, str(Path(tmp) / f"warm{k}"), env)  # packs the corpus once, warms imports
                for i in range(args.repeats):
                    local_s, local = timed_run(cfg, str(Path(tmp) / f"local{k}-{i}"), env)
                    REQUESTS.clear()
                    s3_s, remote = timed_run(cfg, f"s3://bench/k{k}-run{i}", env)
                    kinds = request_kinds(REQUESTS)
                    if args.log_requests:
                        with args.log_requests.open("a") as log:
                            log.writelines(f"k={k} run {i} {line}\n" for line in REQUESTS)
                    same = local["weights"] == remote["weights"] and local["lr"] == remote["lr"]
                    rows.append((k, i, local_s, s3_s, local["evidence"]["utilisation"]["trials"],
                                 remote["evidence"]["utilisation"]["trials"], same, kinds))
    finally:
        server.stop()
    print(f"{'checkpoint_every':>16} {'run':>4} {'local out s':>12} {'s3 out s':>10} {'s3 / local':>11} "
          f"{'trials':>7} {'same answer':>12} {'S3 requests':>12} {'PutObject':>10} {'dir markers':>12} "
          f"{'multipart (requests)':>21} {'reads':>6}")
    for k, i, local_s, s3_s, n_local, n_s3, same, kinds in rows:
        print(f"{k:>16} {i:>4} {local_s:>12.1f} {s3_s:>10.1f} {s3_s / local_s:>11.2f} {n_local:>3}/{n_s3:<3} "
              f"{str(same):>12} {kinds['requests']:>12} {kinds['put_object']:>10} {kinds['dir_markers']:>12} "
              f"{kinds['multipart_uploads']:>10} ({kinds['multipart_requests']:>4})      {kinds['reads']:>6}")
    # each PutObject was a 3-request multipart upload before pyarrow's allow_delayed_open (storage.py)
    for k, i, *_, kinds in rows:
        print(f"k={k} run {i}: {kinds['requests']} S3 requests; written as multipart uploads, the "
              f"{kinds['put_object']} single-part objects would have been {kinds['requests'] + 2 * kinds['put_object']}")


if __name__ == "__main__":
    main()
