"""Methods compared on real training: autoscale (DDO + projection) vs regmix vs log-linear vs the
uniform mixture, each search at matched proxy compute, each recommendation trained at the target
with several seeds by `autoscale-ray compare` (one Tune experiment, paired by seed).

CPU, the synthetic corpus (4 domains of known, different learnability), gpt2-tiny proxies. The
autoscale search runs first; its proxy tokens set the swarm size of the others (same budget of
tokens, proxies at the smallest probe budget), so every method spends about the same compute.

    .venv/bin/python benchmarks/method_comparison.py [--seeds 3] [--out results/method-comparison]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from helpers import experiment_config  # noqa: E402  (the tests' small synthetic config)

PROBES = [1.2e4, 2.4e4]
TARGET = 2.4e5


def configs(root: Path, swarm_size: int) -> dict[str, dict]:
    cache = root / "cache"
    tiny = {"model": "gpt2-tiny"}  # the proxies RESULTS.md's comparison was measured with
    auto = experiment_config("cmp-autoscale", cache, train=tiny, search={
        "probe_budgets": PROBES, "target_budget": TARGET, "verify_probe": False,
        "ddo": {"rounds": 1, "replicates": 2}})
    out = {"autoscale": auto}
    for method in ("regmix", "log-linear"):
        out[method] = experiment_config(f"cmp-{method}", cache, drop=("search.probe_budgets", "search.verify_probe"),
                                        train=tiny, search={"target_budget": TARGET, "method": method,
                                                "swarm": {"size": swarm_size, "budget": PROBES[0]},
                                                "ddo": {"replicates": 2}})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="results/method-comparison")
    args = ap.parse_args()
    import ray

    from autoscale_ray import search
    from autoscale_ray.comparison import compare, table
    from autoscale_ray.fits.comparison import search_compute

    root = Path(args.out)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    t0 = time.time()
    auto = search(configs(root, 2)["autoscale"], root / "autoscale", restart=True)
    spent = search_compute(auto.runs, None)["proxy_tokens"]
    size = max(6, round(spent / PROBES[0]) - 3)  # minus the prior's base run and 2 replicates
    outs = [root / "autoscale"]
    for method in ("regmix", "log-linear"):
        search(configs(root, size)[method], root / method, restart=True)
        outs.append(root / method)
    searched = time.time() - t0
    cmp_out = root / "compare"
    if cmp_out.exists():
        import shutil

        shutil.rmtree(cmp_out)
    result = compare([str(o) for o in outs], seeds=args.seeds, out=str(cmp_out), dashboard=False)
    print(f"\nswarm size {size} at {PROBES[0]:.3g} tokens (autoscale spent {spent:.3g} proxy tokens); "
          f"searches {searched:.0f} s, compare {time.time() - t0 - searched:.0f} s\n")
    print(table(result))
    print(json.dumps({a: v["weights"] for a, v in result["arms"].items()}, indent=1))


if __name__ == "__main__":
    main()
