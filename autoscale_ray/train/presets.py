"""The model presets by name: family, objective and shape, as plain data.

Here, apart from models.py (which builds transformers configs from them), so the config checks and
the driver know the names without importing torch and transformers (2.6 s, paid before Ray starts)."""

from __future__ import annotations

from typing import NamedTuple


class Preset(NamedTuple):
    family: str      # "gpt2" | "llama" | "bert": the transformers config class
    objective: str   # "causal" | "mlm"
    layers: int
    width: int
    heads: int
    ffn: int = 0     # LLaMA's intermediate size (GPT-2 and BERT use 4 x width)


# shapes from the GPT-2 paper, LLaMA, BERT
PRESETS: dict[str, Preset] = {
    "gpt2-nano": Preset("gpt2", "causal", 1, 64, 2),      # with micro and tiny: three CPU sizes
    "gpt2-micro": Preset("gpt2", "causal", 2, 96, 4),     # for a mixing-law search on a laptop
    "gpt2-tiny": Preset("gpt2", "causal", 2, 128, 4),     # CPU tests and laptop searches
    "gpt2-124m": Preset("gpt2", "causal", 12, 768, 12),
    "gpt2-355m": Preset("gpt2", "causal", 24, 1024, 16),
    "gpt2-774m": Preset("gpt2", "causal", 36, 1280, 20),  # "GPT-2 Large" of AutoScale
    "llama-tiny": Preset("llama", "causal", 2, 128, 4, 352),
    "llama-150m": Preset("llama", "causal", 12, 768, 12, 2560),  # ~150M total with a 32k vocabulary
    "bert-tiny": Preset("bert", "mlm", 2, 128, 2),
    "bert-base": Preset("bert", "mlm", 12, 768, 12),
}

# the presets small enough to train on a CPU (the trial contract's CPU settings)
TINY_PRESETS = ("gpt2-nano", "gpt2-micro", "gpt2-tiny", "llama-tiny", "bert-tiny")
