"""Mixed precision: which 16-bit type the forward pass runs in, and the autocast that does it.

Introduced in chapter 5. On a GPU, matrix products in 16 bits run on tensor cores, several
times faster than in float32, while the weights, the optimiser state and the reductions that
need the range stay in float32 (autocast chooses per operation):

- bfloat16 has float32's exponent range, so nothing overflows: used where the GPU supports it
  natively (compute capability 8.0 and newer: A100, H100, L4, RTX 30xx and later);
- float16 has more mantissa but a small range, so small gradients underflow to zero unless the
  loss is scaled up first (``torch.amp.GradScaler``): used on older GPUs (T4, V100);
- on the CPU the book trains in float32, which keeps its quick runs exactly reproducible.
"""

from __future__ import annotations

import torch

#: Training precisions: the autocast dtype of each (None: plain float32).
PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def autocast_dtype(device: str | torch.device, precision: str = "auto") -> torch.dtype | None:
    """The dtype the forward pass autocasts to, or None for float32.

    ``"auto"`` picks bfloat16 on GPUs with native support, float16 on older GPUs such as
    Colab's T4 (the Trainer then scales the loss so that small gradients do not underflow),
    and float32 on the CPU.
    """
    if precision not in ("auto", *PRECISIONS):
        raise ValueError(f"precision={precision!r}: choose one of auto, {', '.join(PRECISIONS)}")
    if precision != "auto":
        return PRECISIONS[precision]
    if torch.device(device).type != "cuda":
        return None
    native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.bfloat16 if native_bf16 else torch.float16


def autocast(device: str | torch.device, dtype: torch.dtype | None) -> torch.autocast:
    """Mixed precision to ``dtype`` for a forward pass on ``device`` (a no-op for None)."""
    kind = torch.device(device).type
    return torch.autocast(kind, dtype=dtype or torch.bfloat16, enabled=dtype is not None)
