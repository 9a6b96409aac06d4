"""Non-autoregressive generation: predict every position at once, then refine.

Introduced in chapter 1. The task: generate a word of fixed length ``L`` (letters
a-z) that looks like Shakespeare's. One network, a *conditional masked language
model* (the cloze objective of BERT, on words), sees a word with some letters
replaced by ``[MASK]`` and predicts every masked letter in parallel. Three ways to
decode with it:

- **autoregressive** (:func:`decode_left_to_right`): fill position 0, then 1, ...,
  L model calls, each conditioned on every letter so far;
- **one-shot non-autoregressive** (:func:`decode_mask_predict` with 1 iteration):
  fill all L letters from one call, each sampled independently;
- **mask-predict** (Ghazvininejad et al., 2019) with k iterations: after each call,
  re-mask the least confident letters and predict them again, k calls in all.
"""

from __future__ import annotations

import re
import string

import torch
import torch.nn.functional as F
from torch import nn

from . import book
from .checks import whole

LETTERS = string.ascii_lowercase


def words(text: str, length: int) -> list[str]:
    """Every word of ``length`` letters in ``text`` (lower-cased, in order, with repeats)."""
    length = whole("length", length)
    return [w for w in re.findall(r"\b[a-z]+\b", text.lower()) if len(w) == length]


def encode(batch: list[str]) -> torch.Tensor:
    """Words of one length as letter ids (N, L), a = 0 ... z = 25."""
    if not batch or len({len(w) for w in batch}) != 1:
        raise ValueError("encode() needs a non-empty list of words of one length")
    bad = [w for w in batch if set(w) - set(LETTERS)]
    if bad:
        raise ValueError(f"only the letters a-z can be encoded, got {bad[:3]}")
    return torch.tensor([[LETTERS.index(c) for c in w] for w in batch])


def decode(ids: torch.Tensor) -> list[str]:
    """Letter ids (N, L) back to words."""
    return ["".join(LETTERS[i] for i in row) for row in ids.tolist()]


class MaskedWordModel(nn.Module):
    """Predicts every letter of a fixed-length word from the unmasked ones, in parallel.

    Input: ids (B, L) with ``mask_id`` (= 26) at masked positions. Output: logits
    (B, L, 26). An MLP over the whole word, so every position sees every other one
    (bidirectional, like BERT).
    """

    def __init__(self, length: int, d_embed: int = 32, d_hidden: int = 512):
        super().__init__()
        self.length, self.vocab_size, self.mask_id = length, len(LETTERS), len(LETTERS)
        self.embed = nn.Embedding(self.vocab_size + 1, d_embed)  # letters + [MASK]
        self.mlp = nn.Sequential(
            nn.Linear(length * d_embed, d_hidden),
            nn.GELU(),
            nn.Linear(d_hidden, d_hidden),
            nn.GELU(),
            nn.Linear(d_hidden, length * self.vocab_size),
        )

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        B, L = tokens.shape
        if L != self.length:
            raise ValueError(f"this model reads words of {self.length} letters, got {L}")
        h = self.embed(tokens).view(B, -1)  # (B, L * d_embed): every position, side by side
        return self.mlp(h).view(B, L, self.vocab_size)  # (B, L, V)


def random_masks(batch: int, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training masks (B, L), True = masked: half hide a suffix, half a random subset.

    Suffixes teach left-to-right decoding; random subsets of random size teach
    mask-predict's refinement steps.
    """
    batch, length = whole("batch", batch), whole("length", length)
    u = torch.rand(batch, length, generator=generator)
    kept = torch.randint(0, length, (batch, 1), generator=generator)  # letters left visible
    suffix = torch.arange(length) >= kept  # (B, L): hide positions kept..L-1
    n_masked = torch.randint(1, length + 1, (batch, 1), generator=generator)
    subset = u.argsort(dim=1).argsort(dim=1) < n_masked  # a random n_masked positions
    left_to_right = torch.rand(batch, 1, generator=generator) < 0.5
    return torch.where(left_to_right, suffix, subset)


def masked_loss(model: MaskedWordModel, batch: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the masked letters only (the cloze objective)."""
    logits = model(batch.masked_fill(masks, model.mask_id))  # (B, L, V)
    return F.cross_entropy(logits[masks], batch[masks])


def fit(
    model: MaskedWordModel,
    data: torch.Tensor,
    steps: int,
    batch_size: int = 256,
    lr: float = 3e-3,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Train on words ``data`` (N, L) with AdamW; returns the loss of every step."""
    steps = book.cap(steps)  # a fast dev run stops early
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses = []
    for _ in range(steps):
        batch = data[torch.randint(len(data), (batch_size,), generator=generator)]  # (B, L)
        loss = masked_loss(model, batch, random_masks(batch_size, model.length, generator))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        losses.append(loss.item())
    return losses


def _sample(
    logits: torch.Tensor, temperature: float, generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A letter per position from logits (B, L, V) and the probability it had: both (B, L)."""
    probs = torch.softmax(logits / temperature, dim=-1)
    ids = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(probs.shape[:2])
    return ids, probs.gather(-1, ids[..., None])[..., 0]


@torch.no_grad()
def decode_left_to_right(
    model: MaskedWordModel,
    n: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Autoregressive decoding: L model calls, position t sampled given letters 0..t-1."""
    tokens = torch.full((n, model.length), model.mask_id)
    for t in range(model.length):
        ids, _ = _sample(model(tokens), temperature, generator)  # (n, L)
        tokens[:, t] = ids[:, t]
    return tokens


def remask_lowest(
    tokens: torch.Tensor, confidence: torch.Tensor, n_mask: int, mask_id: int
) -> torch.Tensor:
    """Mask-predict's refinement: re-mask the ``n_mask`` least confident positions of each row."""
    if n_mask == 0:
        return tokens
    lowest = confidence.topk(n_mask, dim=1, largest=False).indices  # (B, n_mask)
    return tokens.scatter(1, lowest, mask_id)


@torch.no_grad()
def decode_mask_predict(
    model: MaskedWordModel,
    n: int,
    iterations: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Non-autoregressive decoding in ``iterations`` model calls (1 = one-shot)."""
    if not 1 <= iterations <= model.length:
        raise ValueError(f"iterations must be between 1 and the word length {model.length}")
    L = model.length
    tokens = torch.full((n, L), model.mask_id)
    confidence = torch.zeros(n, L)
    for it in range(iterations):
        masked = tokens == model.mask_id  # (n, L)
        ids, probs = _sample(model(tokens), temperature, generator)  # every masked letter at once
        tokens = torch.where(masked, ids, tokens)
        confidence = torch.where(masked, probs, confidence)
        n_mask = L * (iterations - 1 - it) // iterations  # fewer letters re-masked each time
        tokens = remask_lowest(tokens, confidence, n_mask, model.mask_id)
    return tokens
