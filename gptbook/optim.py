"""The optimiser's parts, written out: AdamW and gradient clipping by global norm.

Introduced in chapter 5, which builds them next to the PyTorch calls the Trainer makes
(``torch.optim.AdamW``, fused on a GPU, and ``torch.nn.utils.clip_grad_norm_``) and checks
that both give the same numbers, step by step.

AdamW (Loshchilov & Hutter, 2019) keeps two running averages per parameter, of the gradient
(m) and of its square (v), and moves each weight by m / (√v + ε): a step of about ``lr`` in
every direction, whatever the gradient's scale. Weight decay is *decoupled*: the weights
shrink by ``lr · weight_decay`` directly, instead of adding ``weight_decay · w`` to the
gradient, where Adam's division would weaken it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class AdamW(torch.optim.Optimizer):
    """AdamW, one parameter at a time. The same update as ``torch.optim.AdamW``, and the same
    state names (``step``, ``exp_avg``, ``exp_avg_sq``), so their state dicts are interchangeable.

    GPT-1 used β₂ = 0.999 (PyTorch's default); GPT-3 used β₂ = 0.95, which forgets old squared
    gradients faster and keeps large models stable.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr}")
        if not all(0 <= b < 1 for b in betas):
            raise ValueError(f"betas must lie in [0, 1), got {betas}")
        if eps < 0 or weight_decay < 0:
            raise ValueError(f"eps and weight_decay must be ≥ 0, got {eps} and {weight_decay}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None) -> None:
        """Update every parameter that has a gradient."""
        if closure is not None:
            raise ValueError("this AdamW takes no closure: compute the loss and backward() first")
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:  # the first step: both averages start at zero
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t, g = state["step"].item(), p.grad
                m, v = state["exp_avg"], state["exp_avg_sq"]
                p.mul_(1 - group["lr"] * group["weight_decay"])  # decoupled weight decay
                m.lerp_(g, 1 - beta1)  # m = β₁·m + (1 - β₁)·g
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v = β₂·v + (1 - β₂)·g²
                m_hat = m / (1 - beta1**t)  # both averages start at 0: undo that bias
                v_hat = v / (1 - beta2**t)
                p.addcdiv_(m_hat, v_hat.sqrt() + group["eps"], value=-group["lr"])


def clip_grad_norm(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    Returns the norm before clipping (what the Trainer would log). The direction of the update
    is kept; only its length is capped, which protects training from rare huge gradients.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))  # √(Σ‖g‖²)
    scale = (max_norm / (total + 1e-6)).clamp(max=1.0)  # 1 when the norm is already small
    for g in grads:
        g.mul_(scale)
    return total
