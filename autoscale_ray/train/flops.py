"""Parameter counts, training FLOPs per token and model FLOPs utilisation (MFU).

Training FLOPs per token (PaLM, Chowdhery et al. 2022, appendix B): 6N + 12 L d T, where N counts
the parameters that take part in matmuls (every non-embedding weight plus the output projection,
which multiplies every position even when tied to the input embedding), L layers, d the model
width and T the sequence length (the attention score and value matmuls, not discounted for the
causal mask, as in PaLM). MFU = achieved tokens/s x FLOPs per token / peak FLOP/s of the devices.

Peak FLOP/s: dense bf16 tensor-core numbers from the vendors' datasheets for known GPUs. A CPU
has no datasheet number that a transformer can reach, so its "peak" is measured once per process
as the fp32 throughput of a large torch matmul on the threads torch uses; CPU MFU is thus relative
to the best matmul the machine does. `AUTOSCALE_RAY_PEAK_FLOPS` overrides both (FLOP/s per device).
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass

import torch
from torch import nn

# Dense BF16 tensor-core FLOP/s per device (no sparsity), most specific names first.
GPU_PEAK_FLOPS: tuple[tuple[str, float], ...] = (
    ("GH200", 989.4e12),
    ("H200", 989.4e12),
    ("H100 PCIe", 756.0e12),
    ("H100 NVL", 835.0e12),
    ("H100", 989.4e12),      # SXM
    ("H800", 989.4e12),
    ("B200", 2250.0e12),
    ("A100", 312.0e12),
    ("A800", 312.0e12),
    ("L40S", 362.0e12),
    ("L4", 121.0e12),
    ("A10G", 70.0e12),
    ("A10", 125.0e12),
    ("V100", 125.0e12),      # fp16 (no bf16 units)
    ("T4", 65.0e12),         # fp16
)


@dataclass(frozen=True)
class ModelShape:
    non_embedding_params: int   # the `params` column (Kaplan et al. 2020's N)
    head_params: int            # output projection (vocab x d), counted once even if tied
    n_layer: int
    d_model: int
    seq_len: int

    def flops_per_token(self) -> float:
        """6N + 12 L d T training FLOPs per token (PaLM appendix B), N incl. the output head."""
        n = self.non_embedding_params + self.head_params
        return 6.0 * n + 12.0 * self.n_layer * self.d_model * self.seq_len


def model_shape(model: nn.Module, seq_len: int) -> ModelShape:
    """Shape of a transformers model: parameters outside every embedding table and the LM head."""
    embedding_ids = {id(p) for m in model.modules() if isinstance(m, nn.Embedding)
                     for p in m.parameters(recurse=False)}
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_weight = head.weight if head is not None else None
    if head_weight is not None:
        embedding_ids.add(id(head_weight))
    seen: set[int] = set()
    non_embedding = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if id(p) not in embedding_ids:
            non_embedding += p.numel()
    cfg = model.config
    return ModelShape(non_embedding_params=non_embedding,
                      head_params=head_weight.numel() if head_weight is not None else 0,
                      n_layer=int(cfg.num_hidden_layers), d_model=int(cfg.hidden_size),
                      seq_len=seq_len)


def device_peak_flops(device: torch.device) -> float:
    """Peak FLOP/s of one device: env override, GPU datasheet table, or measured CPU matmul."""
    override = os.environ.get("AUTOSCALE_RAY_PEAK_FLOPS")
    if override:
        return float(override)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, flops in GPU_PEAK_FLOPS:
            if key in name:
                return flops
        return float("nan")  # unknown GPU: MFU is reported as NaN rather than guessed
    return measured_cpu_peak_flops()


@functools.lru_cache(maxsize=1)
def measured_cpu_peak_flops(size: int = 1024, seconds: float = 0.3) -> float:
    """fp32 matmul FLOP/s this process reaches (best of repeated timed batches)."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        dt = time.perf_counter() - t0
        best = max(best, 4 * 2.0 * size**3 / dt)
    return best


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops_per_device: float,
        n_devices: int = 1) -> float:
    """Model FLOPs utilisation: achieved training FLOP/s over the devices' peak."""
    return tokens_per_s * flops_per_token / (peak_flops_per_device * n_devices)
