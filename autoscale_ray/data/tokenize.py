"""Tokenisers: byte-level by default (no download, any language), or a `tokenizers` tokenizer.json.

Byte tokeniser ids: 0-255 the UTF-8 bytes, 256 end-of-document, 257 pad, 258 mask. Its vocabulary
is padded to 320 (a multiple of 64) so that embedding and output matrices have GPU-friendly shapes;
ids 259-319 never occur.

A tokenizer.json keeps its own ids. Its end-of-document / pad / mask tokens are looked up by their
usual names; any that it lacks get new ids after its vocabulary (and the vocabulary grows by them).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from autoscale_ray.errors import BadInput

BYTE_VOCAB = 320
BYTE_EOD, BYTE_PAD, BYTE_MASK = 256, 257, 258

_EOD_NAMES = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>", "<|eos|>", "[SEP]", "<|end|>")
_PAD_NAMES = ("<pad>", "[PAD]", "<|padding|>", "<|pad|>")
_MASK_NAMES = ("<mask>", "[MASK]", "<|mask|>")


@dataclass(frozen=True)
class TokenizerSpec:
    """What the packed corpus and the model need to know about the tokeniser."""

    name: str          # "byte" or the tokenizer.json path
    sha256: str        # content hash of tokenizer.json ("" for byte)
    vocab_size: int
    eod_id: int
    pad_id: int
    mask_id: int

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint16) if self.vocab_size <= 1 << 16 else np.dtype(np.int32)


def tokenizer_spec(tokenizer: str) -> TokenizerSpec:
    """Resolve "byte" or a path to a tokenizer.json into a TokenizerSpec (checked)."""
    if tokenizer == "byte":
        return TokenizerSpec("byte", "", BYTE_VOCAB, BYTE_EOD, BYTE_PAD, BYTE_MASK)
    path = Path(tokenizer).expanduser()
    if not path.is_file():
        raise BadInput(f"tokenizer file `{tokenizer}` not found", "tokenizer",
                       "give \"byte\" or the path of a `tokenizers` tokenizer.json")
    tok = _load_hf(str(path.absolute()))
    size = tok.get_vocab_size(with_added_tokens=True)
    ids = []
    for names in (_EOD_NAMES, _PAD_NAMES, _MASK_NAMES):
        found = next((tok.token_to_id(n) for n in names if tok.token_to_id(n) is not None), None)
        if found is None:
            found, size = size, size + 1
        ids.append(int(found))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return TokenizerSpec(str(path.absolute()), sha, size, *ids)


@functools.lru_cache(maxsize=4)
def _load_hf(path: str):
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(path)
    except Exception as exc:
        raise BadInput(f"cannot load tokenizer `{path}` ({str(exc).splitlines()[0]})", "tokenizer",
                       "give a `tokenizers` tokenizer.json (e.g. from tokenizer.save())") from None


def encode(texts: Sequence[str], spec: TokenizerSpec) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of each text, flat, plus each text's length (no end-of-document tokens)."""
    if spec.name == "byte":
        encoded = [t.encode("utf-8", errors="replace") for t in texts]
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
        flat = np.frombuffer(b"".join(encoded), dtype=np.uint8).astype(spec.dtype)
        return flat, lengths
    tok = _load_hf(spec.name)
    out = tok.encode_batch(list(texts), add_special_tokens=False)
    lengths = np.fromiter((len(e.ids) for e in out), dtype=np.int64, count=len(out))
    flat = np.fromiter((i for e in out for i in e.ids), dtype=spec.dtype, count=int(lengths.sum()))
    return flat, lengths


def decode(ids: np.ndarray, spec: TokenizerSpec) -> str:
    """Text of a sequence of ids (special ids shown as ⏎EOD markers); for inspection and tests."""
    ids = np.asarray(ids)
    if spec.name == "byte":
        pieces, start = [], 0
        for pos in np.flatnonzero(ids >= 256).tolist() + [len(ids)]:
            pieces.append(bytes(ids[start:pos].astype(np.uint8)).decode("utf-8", errors="replace"))
            if pos < len(ids):
                pieces.append("⏎EOD" if ids[pos] == BYTE_EOD else f"<{int(ids[pos])}>")
            start = pos + 1
        return "".join(pieces)
    return _load_hf(spec.name).decode(ids.tolist(), skip_special_tokens=False)
