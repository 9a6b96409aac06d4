"""Induction heads (Olsson et al., 2022): two attention layers that copy what came next before.

Introduced in chapter 8. Each row holds random tokens in which a segment of random length L
sits at a random start and is repeated right after it. The first copy cannot be predicted; the
second can, by anyone who finds the current token's earlier occurrence and reads the token after
it. That takes two heads working together: a *previous-token* head in layer 1 writes each token's
predecessor into it, and an *induction head* in layer 2 attends from the current token to the
earlier position whose predecessor matches it (*prefix matching*) and copies the token there.

    position  …  P … P+L-1    P+L … P+2L-1   …
    token     r  s₁ … s_L     s₁  … s_L      r      (r: random tokens)
    target    -  -  …  -      -   s₂ … s_L   -      (-: ignored; the model reads s₁ … to predict)

Only the L - 1 predictable tokens of the repeat are targets: a model that cannot copy in context
scores ln V on them (a little less if it guesses among the tokens it has seen: :func:`bag_loss`).
The segment's length and start vary from row to row, so no fixed offset finds the answer.

    task = RepeatTask()
    idx, targets = task.batch(64, generator)           # (B, T) each
    weights = model.attention_weights(idx)             # (n_layer, B, H, T, T)
    induction_scores(weights[-1], idx, targets)        # (H,): near 1 for an induction head
    with ablate_head(model, layer=1, head=0): ...      # that head writes nothing

Importing the module adds chapter 8's models to :mod:`gptbook.pretrained`: two attention-only
layers trained from each of :data:`SEEDS`, and the one-layer and dense contrasts
(:func:`model_name`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from . import pretrained
from .checks import whole
from .lm import IGNORE_INDEX


@dataclass(frozen=True)
class RepeatTask:
    """Rows of ``block_size`` random tokens from ``vocab`` holding one segment of length
    ``min_len`` … ``max_len`` shown twice; ``probe_rows`` fixed rows (seed ``probe_seed``)
    measure a model while it trains."""

    vocab: int = 64
    block_size: int = 48
    min_len: int = 6
    max_len: int = 16
    probe_rows: int = 256
    probe_seed: int = 1234

    def __post_init__(self):
        if self.vocab < 2 or not 2 <= self.min_len <= self.max_len:
            raise ValueError(
                f"need vocab ≥ 2 and 2 ≤ min_len ≤ max_len, got vocab={self.vocab}, "
                f"min_len={self.min_len}, max_len={self.max_len}"
            )
        if 2 * self.max_len > self.block_size + 1:
            raise ValueError(
                f"two copies of a segment of max_len={self.max_len} need block_size ≥ "
                f"{2 * self.max_len - 1}, got {self.block_size}: lower max_len or raise block_size"
            )

    def batch(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_size`` rows: inputs and targets (B, T), targets on the repeat only."""
        T = self.block_size
        tokens = torch.randint(self.vocab, (batch_size, T + 1), generator=generator)
        L = torch.randint(self.min_len, self.max_len + 1, (batch_size, 1), generator=generator)
        start = (torch.rand(batch_size, 1, generator=generator) * (T + 2 - 2 * L)).long()
        pos = torch.arange(T + 1)  # (T + 1,)
        repeat = (pos >= start + L) & (pos < start + 2 * L)  # (B, T + 1): the second copy
        source = torch.where(repeat, pos - L, pos)  # the second copy reads the first's tokens
        tokens = tokens.gather(1, source)
        targets = tokens[:, 1:].clone()  # (B, T)
        predictable = repeat[:, 1:] & (pos[1:] > start + L)  # s₂ … s_L of the second copy
        targets[~predictable] = IGNORE_INDEX
        return tokens[:, :-1], targets

    def batches(self, batch_size: int):
        """The :data:`~gptbook.train.Batches` of a :class:`~gptbook.train.Trainer` on this task."""
        return lambda step, generator: self.batch(batch_size, generator)

    def probe(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed rows every measurement uses: inputs and targets (probe_rows, T)."""
        return self.batch(self.probe_rows, torch.Generator().manual_seed(self.probe_seed))

    @torch.no_grad()
    def metrics(self, model: nn.Module) -> dict[str, float]:
        """A :class:`~gptbook.train.Trainer`'s measures: ``val``, the loss on the probe's
        predictable tokens, and ``score``, the largest induction score of a last-layer head."""
        device = next(model.parameters()).device
        idx, targets = (t.to(device) for t in self.probe())
        loss = model(idx, targets)[1].item()
        weights = model.attention_weights(idx)[-1]  # (B, H, T, T)
        return {"val": loss, "score": induction_scores(weights, idx, targets).max().item()}


def induction_scores(
    weights: torch.Tensor, idx: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """(H,): for each head of one layer's attention ``weights`` (B, H, T, T), the attention that
    a predictable token of the repeat puts on earlier positions whose *predecessor* is that same
    token (Olsson et al.'s prefix matching): near 1 for an induction head, near 0 otherwise."""
    B, H, T, S = weights.shape
    if idx.shape != (B, T) or targets.shape != (B, T) or S != T:
        raise ValueError(
            f"weights (B, H, T, T), idx and targets (B, T) must come from the same batch, got "
            f"{tuple(weights.shape)}, {tuple(idx.shape)} and {tuple(targets.shape)}"
        )
    before = torch.cat([torch.full_like(idx[:, :1], -1), idx[:, :-1]], 1)  # (B, T): predecessors
    causal = torch.ones(T, T, dtype=torch.bool, device=idx.device).tril()
    matches = (before[:, None, :] == idx[:, :, None]) & causal  # (B, T, T): key follows a copy
    on_matches = (weights * matches[:, None]).sum(-1)  # (B, H, T)
    predictable = targets != IGNORE_INDEX  # (B, T)
    return (on_matches * predictable[:, None]).sum((0, 2)) / predictable.sum().clamp_min(1)


def previous_token_scores(weights: torch.Tensor) -> torch.Tensor:
    """(H,): each head's mean attention (weights (B, H, T, T)) from a token to the one just
    before it: near 1 for a previous-token head."""
    return weights.diagonal(-1, 2, 3).mean((0, 2))


def phase_change(
    steps: list[int], losses: list[float], ceiling: float, high: float = 0.8, low: float = 0.5
) -> tuple[int, int] | None:
    """When the loss dropped: the last evaluated step at which it was still near ``ceiling``
    (≥ high·ceiling, e.g. ln V) before it first fell below low·ceiling, and that first step;
    None if it never fell that far."""
    below = next((i for i, loss in enumerate(losses) if loss < low * ceiling), None)
    if below is None:
        return None
    near = [i for i in range(below) if losses[i] >= high * ceiling]
    return (steps[near[-1]] if near else 0), steps[below]


def bag_loss(idx: torch.Tensor, targets: torch.Tensor) -> float:
    """The loss (nats) of a guess spread evenly over the distinct tokens seen so far, on the
    predictable tokens: what attending to every earlier token alike, without knowing which comes
    next, can reach. Below ln V, far above an induction head's."""
    B, T = idx.shape
    seen = torch.zeros(B, int(idx.max()) + 1, dtype=torch.bool)
    losses = []
    for t in range(T):
        seen[torch.arange(B), idx[:, t]] = True
        keep = targets[:, t] != IGNORE_INDEX
        losses += [math.log(n) for n in seen[keep].sum(1).tolist()]
    return sum(losses) / max(1, len(losses))


@contextlib.contextmanager
def ablate_head(model: nn.Module, layer: int, head: int) -> Iterator[None]:
    """Inside the ``with`` block, head ``head`` of block ``layer`` of a GPT writes nothing: its
    slice of the attention's output is zeroed before the output projection mixes the heads."""
    layer, head = whole("layer", layer, least=0), whole("head", head, least=0)
    if not 0 <= layer < len(model.blocks):
        raise ValueError(f"layer={layer}: the model has layers 0..{len(model.blocks) - 1}")
    attn = model.blocks[layer].attn
    if not 0 <= head < attn.n_head:
        raise ValueError(f"head={head}: layer {layer} has heads 0..{attn.n_head - 1}")
    D = attn.head_dim

    def zero_head(module: nn.Module, args: tuple[torch.Tensor, ...]):
        y = args[0].clone()  # (B, T, H·D): the heads side by side
        y[..., head * D : (head + 1) * D] = 0
        return (y,)

    handle = attn.proj.register_forward_pre_hook(zero_head)
    try:
        yield
    finally:
        handle.remove()


#: Chapter 8's task.
TASK = RepeatTask()
#: The seeds of the two-layer model: chapter 8 shows the phase change of each.
SEEDS = (0, 1, 2)


def model_name(n_layer: int, seed: int = 0, banded: bool = True) -> str:
    """The pretrained name of a chapter-8 model: ``n_layer`` attention-only layers of one head,
    trained from ``seed``; ``banded``: the first layer sees the current and the previous token
    only (chapter 8 says why)."""
    n_layer, seed = whole("n_layer", n_layer), whole("seed", seed, least=0)
    return f"induction-{n_layer}-{seed}" + ("" if banded else "-dense")


def _spec(n_layer: int, seed: int, banded: bool) -> dict:
    """A pretrained entry, the same at both scales: the experiment is small enough for a CPU."""
    model = dict(preset="book-tiny", vocab_size=TASK.vocab, block_size=TASK.block_size)
    model |= dict(n_layer=n_layer, n_head=1, n_embd=64, norm="pre", mlp="none", dropout=0.0)
    model |= dict(local_window=2 if banded else 0, banded_blocks="first")
    train = dict(max_steps=1000, batch_size=64, lr=1e-3, warmup_steps=20, eval_interval=25)
    entry = dict(model=model, train=dict(train, seed=seed), task=TASK)
    return {"quick": entry, "full": entry}


for _seed in SEEDS:
    pretrained.SPECS[model_name(2, _seed)] = _spec(2, _seed, banded=True)
pretrained.SPECS[model_name(1, banded=False)] = _spec(1, 0, banded=False)
pretrained.SPECS[model_name(2, banded=False)] = _spec(2, 0, banded=False)
