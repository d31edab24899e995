"""Proxy models from transformers configs (random init, nothing downloaded).

Presets give the shape only; the vocabulary comes from the corpus's tokenizer (padded up to a
multiple of 64 for tensor-core friendly matmuls, as nanoGPT does) and the context length from the
corpus's packed sequence length. Dropout is 0 (pretraining proxies see each token about once).
Decoders (GPT-2 shapes as in AutoScale's GPT-2 Large setting, and a LLaMA-style one) train with
causal LM; encoders (BERT shapes, AutoScale's second setting) with masked LM. Any transformers
`config.json` can be given instead of a preset.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM, PretrainedConfig
from transformers import BertConfig, GPT2Config, LlamaConfig
from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                    MODEL_FOR_MASKED_LM_MAPPING_NAMES)

from autoscale_ray.errors import BadInput
from autoscale_ray.train.presets import PRESETS

log = logging.getLogger("autoscale_ray")

VOCAB_MULTIPLE = 64


def _gpt2(p: Preset, vocab: int, ctx: int) -> PretrainedConfig:
    return GPT2Config(vocab_size=vocab, n_positions=ctx, n_embd=p.width, n_layer=p.layers, n_head=p.heads,
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      bos_token_id=None, eos_token_id=None)  # GPT-2's 50256 is outside most corpus vocabularies


def _llama(p: Preset, vocab: int, ctx: int) -> PretrainedConfig:
    return LlamaConfig(vocab_size=vocab, max_position_embeddings=ctx, hidden_size=p.width,
                       intermediate_size=p.ffn, num_hidden_layers=p.layers, num_attention_heads=p.heads,
                       num_key_value_heads=p.heads, tie_word_embeddings=False, attention_dropout=0.0)


def _bert(p: Preset, vocab: int, ctx: int) -> PretrainedConfig:
    return BertConfig(vocab_size=vocab, max_position_embeddings=ctx, hidden_size=p.width,
                      num_hidden_layers=p.layers, num_attention_heads=p.heads, intermediate_size=4 * p.width,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


_BUILDERS: dict[str, Callable[[Preset, int, int], PretrainedConfig]] = {"gpt2": _gpt2, "llama": _llama, "bert": _bert}


def preset_config(name: str, vocab: int, ctx: int) -> PretrainedConfig:
    """The transformers config of preset `name` (presets.py) for a vocabulary and context length."""
    preset = PRESETS[name]
    return _BUILDERS[preset.family](preset, vocab, ctx)


@dataclass(frozen=True)
class ModelSpec:
    """What to build: a transformers config and the training objective."""

    config: PretrainedConfig
    objective: str  # "causal" | "mlm"

    def build(self, attn_implementation: str = "sdpa") -> nn.Module:
        auto = AutoModelForCausalLM if self.objective == "causal" else AutoModelForMaskedLM
        try:
            return auto.from_config(self.config, attn_implementation=attn_implementation)
        except (ValueError, ImportError) as exc:  # model family without SDPA support
            log.warning("%s: %s; falling back to eager attention", self.config.model_type, exc)
            return auto.from_config(self.config, attn_implementation="eager")


def padded_vocab(vocab_size: int, multiple: int = VOCAB_MULTIPLE) -> int:
    return -(-vocab_size // multiple) * multiple


def model_spec(model: str, *, vocab_size: int, seq_len: int, objective: str = "auto",
               special_ids: dict[str, int] | None = None) -> ModelSpec:
    """A preset name or a transformers config.json path -> ModelSpec sized for the corpus."""
    vocab = padded_vocab(vocab_size)
    if model in PRESETS:
        preset_objective = PRESETS[model].objective
        config = preset_config(model, vocab, seq_len)
        chosen = preset_objective if objective == "auto" else objective
        if chosen != preset_objective:
            raise BadInput(f"preset {model!r} trains with {preset_objective}, not {objective}",
                           "train config key `objective`", "use objective=auto for presets")
    else:
        config, chosen = _config_from_file(model, objective)
        config.vocab_size = vocab
        context = _context_length(config)
        if context is not None and context < seq_len:
            raise BadInput(f"the model's context ({context} positions) is shorter than the "
                           f"corpus sequence length {seq_len}", model,
                           f"raise max_position_embeddings/n_positions to >= {seq_len} or pack "
                           "the corpus with a shorter seq_len")
    for key, value in (special_ids or {}).items():
        setattr(config, key, value)
    return ModelSpec(config=config, objective=chosen)


def check_model_name(model: str) -> None:
    """Fail early (before any data is read) on a model that is neither a preset nor a file."""
    if model not in PRESETS and not Path(model).exists():
        raise BadInput(f"unknown model {model!r}: neither a preset nor an existing config file",
                       "train config key `model`",
                       f"use one of {', '.join(PRESETS)} or a transformers config.json path")


def _config_from_file(path: str, objective: str) -> tuple[PretrainedConfig, str]:
    check_model_name(path)
    p = Path(path)
    try:
        config = AutoConfig.from_pretrained(str(p))
    except (OSError, ValueError, KeyError) as exc:
        raise BadInput(f"not a transformers model config ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0][:160]})", path,
                       "give a config.json with a known `model_type`") from None
    kind = config.model_type
    causal = kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    masked = kind in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    if objective == "auto":
        # Families with both heads (BERT, RoBERTa, ...) are encoders unless marked as decoders.
        objective = "mlm" if masked and not (causal and getattr(config, "is_decoder", False)) \
            else "causal" if causal else ""
    ok = causal if objective == "causal" else masked
    if not objective or not ok:
        raise BadInput(f"model_type {kind!r} has no {'causal-LM or masked-LM' if not objective else objective} "
                       "head in transformers", path,
                       "give a decoder (causal LM) or encoder (masked LM) config")
    if objective == "causal" and masked and not getattr(config, "is_decoder", True):
        config.is_decoder = True  # e.g. BERT used as a causal LM needs its decoder mask
    return config, objective


def _context_length(config: PretrainedConfig) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value: Any = getattr(config, key, None)
        if isinstance(value, int):
            return value
    return None
