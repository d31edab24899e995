"""A packed corpus on disk and the trial streams drawn from it.

Layout of a corpus folder (written by `prepare_corpus`):

    manifest.json           tokeniser, seq_len, per-domain counts, cache key, source provenance
    train/<domain>.npy      [n_train, seq_len] token ids (uint16, or int32 for vocabularies > 65536)
    val/<domain>.npy        [n_val, seq_len]   held-out documents, disjoint from train

The arrays are memory-mapped, never loaded whole: a trial's stream gathers only the rows its plan
names. The folder must be readable by every node that runs the stream (a shared filesystem on a
multi-node cluster).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from autoscale_ray.data.plan import DEFAULT_MAX_EPOCHS, MixturePlan, make_plan
from autoscale_ray.errors import BadInput

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
# Rows per Ray Data block of the stream: ~8 MB of int64 ids per block keeps memory flat and small.
_BLOCK_BYTES = 8 << 20


class PackedCorpus:
    """Tokenised and packed domains, cached on disk; plans and streams trial mixtures from them."""

    def __init__(self, root: Path, manifest: Mapping[str, Any]) -> None:
        self.root = Path(root)
        self.manifest = dict(manifest)
        self.key: str = manifest["key"]
        self.domains: tuple[str, ...] = tuple(d["name"] for d in manifest["domains"])
        self.seq_len: int = int(manifest["seq_len"])
        tok = manifest["tokenizer"]
        self.tokenizer: str = tok["name"]
        self.vocab_size: int = int(tok["vocab_size"])
        self.eod_id: int = int(tok["eod_id"])
        self.pad_id: int = int(tok["pad_id"])
        self.mask_id: int = int(tok["mask_id"])
        self._n_train = {d["name"]: int(d["train_sequences"]) for d in manifest["domains"]}

    @classmethod
    def load(cls, root: str | Path) -> "PackedCorpus":
        root = Path(root)
        path = root / MANIFEST
        if not path.is_file():
            raise BadInput("no packed corpus here (manifest.json missing)", str(root),
                           "build it with prepare_corpus(...) or point at its folder")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise BadInput(f"manifest is not valid JSON ({exc})", str(path), "rebuild the corpus") from None
        if manifest.get("format_version") != FORMAT_VERSION:
            raise BadInput(f"packed corpus format {manifest.get('format_version')!r}, this version "
                           f"reads {FORMAT_VERSION}", str(path), "rebuild the corpus")
        return cls(root, manifest)

    def __repr__(self) -> str:
        return (f"PackedCorpus({str(self.root)!r}, domains={list(self.domains)}, seq_len={self.seq_len}, "
                f"tokenizer={self.tokenizer!r})")

    def __reduce__(self):  # ship only the path and manifest to Ray tasks, never open memmaps
        return (PackedCorpus, (self.root, self.manifest))

    # ---- per-domain arrays ------------------------------------------------------------------
    def _check_domain(self, domain: str) -> None:
        if domain not in self.domains:
            raise BadInput(f"unknown domain `{domain}`", str(self.root), f"the corpus has {list(self.domains)}")

    def n_train_sequences(self, domain: str) -> int:
        self._check_domain(domain)
        return self._n_train[domain]

    def train_array(self, domain: str) -> np.ndarray:
        """Memory-mapped [n_train, seq_len] training sequences of a domain (read-only)."""
        self._check_domain(domain)
        return _open(str(self.root / "train" / f"{domain}.npy"))

    def validation(self, domain: str) -> np.ndarray:
        """int32 [n_val, seq_len]: the domain's held-out sequences (fixed; disjoint from train)."""
        self._check_domain(domain)
        return np.asarray(_open(str(self.root / "val" / f"{domain}.npy")), dtype=np.int32)

    def domain_stats(self) -> dict[str, dict[str, Any]]:
        """Documents, tokens and sequences per domain, as recorded when packing."""
        return {d["name"]: {k: v for k, v in d.items() if k not in ("name", "source")}
                for d in self.manifest["domains"]}

    # ---- trial streams -----------------------------------------------------------------------
    def plan(self, budget_tokens: int, weights: Mapping[str, float], seed: int, *,
             max_epochs: float = DEFAULT_MAX_EPOCHS) -> MixturePlan:
        """The exact-quota, seeded plan of a trial (see `autoscale_ray.data.plan`)."""
        return make_plan(budget_tokens, weights, seed, domains=self.domains,
                         n_train=[self._n_train[d] for d in self.domains], seq_len=self.seq_len,
                         corpus_key=self.key, max_epochs=max_epochs)

    def _check_plan(self, plan: MixturePlan, start: int) -> None:
        if plan.corpus_key != self.key:
            raise BadInput("the plan was made for another packed corpus", "plan",
                           "make the plan with this corpus's plan(...)")
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) \
                or not 0 <= start <= plan.n_sequences:
            raise BadInput(f"start {start!r} is outside the plan's 0..{plan.n_sequences} sequences", "start")

    def gather(self, domain_of: np.ndarray, index_of: np.ndarray) -> dict[str, np.ndarray]:
        """The batch for these plan positions: `input_ids` int64 [b, seq_len], `domain` int32 [b]."""
        out = np.empty((len(domain_of), self.seq_len), dtype=np.int64)
        for i in np.unique(domain_of):
            rows = np.flatnonzero(domain_of == i)
            idx = index_of[rows]
            # sorted reads are kinder to the page cache; put them back in plan order afterwards
            sort = np.argsort(idx, kind="stable")
            out[rows[sort]] = self.train_array(self.domains[int(i)])[idx[sort]]
        return {"input_ids": out, "domain": np.asarray(domain_of, dtype=np.int32)}

    def iter_plan(self, plan: MixturePlan, batch_size: int, start: int = 0, rank: int = 0,
                  world_size: int = 1) -> Iterator[dict[str, np.ndarray]]:
        """The plan's sequences from `start` on, without Ray (in-process path for tiny proxies).

        Rank r of `world_size` gets positions start+r, start+r+world_size, ...; the last batch may
        be smaller. Same sequences and order as `mixture_dataset` for world_size 1.
        """
        self._check_plan(plan, start)
        if batch_size < 1 or not 0 <= rank < world_size:
            raise BadInput(f"batch_size {batch_size}, rank {rank}, world_size {world_size}",
                           "iter_plan", "need batch_size >= 1 and 0 <= rank < world_size")
        positions = np.arange(start + rank, plan.n_sequences, world_size)
        for a in range(0, len(positions), batch_size):
            pos = positions[a:a + batch_size]
            yield self.gather(plan.domain_of[pos], plan.index_of[pos])

    def mixture_dataset(self, plan: MixturePlan, start: int = 0, *, rank: int = 0, world_size: int = 1,
                        rows_per_block: int | None = None):
        """A streaming Ray Dataset of the plan's sequences from position `start` on.

        Columns: `input_ids` (int64 [seq_len]) and `domain` (int32, index into `domains`). The plan
        is cut into small blocks of positions; each block's sequences are gathered from the
        memory-mapped shards in a Ray task, so memory stays flat whatever the corpus size. Consume
        it with `preserve_order=True` (see `stream_data_config`) to see the plan's order.

        With `rank`/`world_size`, only positions start+rank, start+rank+world_size, ... (as in
        `iter_plan`): one exact, deterministic dataset per DDP rank, for when Train's own split
        (`streaming_split(equal=True)` drops up to world_size-1 rows and assigns blocks dynamically)
        is not exact enough.
        """
        import pyarrow as pa
        import ray.data

        self._check_plan(plan, start)
        if not 0 <= rank < world_size:
            raise BadInput(f"rank {rank} of world_size {world_size}", "mixture_dataset",
                           "need 0 <= rank < world_size")
        rows = rows_per_block or max(16, _BLOCK_BYTES // (8 * self.seq_len))
        positions = np.arange(start + rank, plan.n_sequences, world_size)
        tables = [pa.table({"domain": plan.domain_of[positions[a:a + rows]],
                            "index": plan.index_of[positions[a:a + rows]]})
                  for a in range(0, len(positions), rows)]
        if not tables:
            tables = [pa.table({"domain": plan.domain_of[:0], "index": plan.index_of[:0]})]
        ds = ray.data.from_arrow(tables).map_batches(
            _gather_block, fn_kwargs={"corpus": self}, batch_format="numpy", batch_size=None)
        ds.context.execution_options.preserve_order = True  # for direct iteration; Train: see below
        return ds


def _gather_block(batch: dict[str, np.ndarray], corpus: PackedCorpus) -> dict[str, np.ndarray]:
    return corpus.gather(batch["domain"], batch["index"])


@functools.lru_cache(maxsize=64)
def _open(path: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise BadInput("packed shard missing", path, "rebuild the corpus (delete its folder)") from None


def stream_data_config(datasets_to_split: tuple[str, ...] = ("train",)):
    """A Ray Train `DataConfig` that keeps the plan's order (Train otherwise drops preserve_order)."""
    import ray.train
    from ray.data import DataContext, ExecutionOptions

    current = DataContext.get_current().execution_options
    opts = ExecutionOptions(resource_limits=current.resource_limits, preserve_order=True)
    return ray.train.DataConfig(datasets_to_split=list(datasets_to_split), execution_options=opts)
