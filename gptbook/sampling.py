"""Generating text one token at a time: the autoregressive sampling loop.

Introduced in chapter 1 in its first form: temperature sampling (temperature 0 is
greedy decoding). Chapter 9 adds the logits processors (temperature, top-k, top-p, min-p,
repetition penalty), each a function of the logits, decoding with the KV cache
(:class:`Decoder`, :class:`~gptbook.attention.KVCache`) and beam search.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from .checks import id_batch, whole


@contextlib.contextmanager
def evaluating(*models: torch.nn.Module) -> Iterator[None]:
    """Run ``models`` in eval mode (no dropout: a model just trained is in train mode) and give
    each its own mode back afterwards, as nanoGPT's sampler does. Every decoding loop here runs
    inside it, so temperature 0 gives the same tokens on every call."""
    modes = [model.training for model in models]
    for model in models:
        model.eval()
    try:
        yield
    finally:
        for model, mode in zip(models, modes):
            model.train(mode)


def probabilities(logits: torch.Tensor, t: float = 1.0) -> torch.Tensor:
    """softmax(logits / t) over the last dimension (:func:`temperature`, then the softmax);
    t = 0 puts all the mass on the argmax."""
    return temperature(logits, t).softmax(-1)


def generate(
    model: torch.nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    min_p: float | None = None,
    repetition_penalty: float | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
    *,
    block_size: int | None = None,
) -> torch.Tensor:
    """Extend each row of ``idx`` (B, T) by ``max_new_tokens`` tokens sampled from ``model``.

    Each step asks the model for the next token's logits, reshapes them with the processors
    (:class:`Sampler`), samples one token and appends it: one model call per new token, each
    waiting for the one before. The model reads at most ``block_size`` (default
    ``model.block_size``) last tokens; with ``use_cache`` it runs on the new token alone and
    reads the others' keys and values from its KV cache (chapter 9). Returns
    (B, T + max_new_tokens).
    """
    choose = Sampler(temperature, top_k, top_p, min_p, repetition_penalty)
    context = prompt_context(model, idx, max_new_tokens, block_size)
    length = idx.shape[1] + max_new_tokens
    step = Decoder(model, use_cache, min(length, context or length), context)
    with torch.inference_mode(), evaluating(model):  # no autograd bookkeeping, no dropout
        for _ in range(max_new_tokens):
            logits = step(idx)[:, -1]  # (B, V): the next token's logits
            idx = torch.cat([idx, choose(logits, idx, generator)], dim=1)  # (B, T + 1)
    return idx.clone()  # an ordinary tensor again, which training may use (inference ones not)


def prompt_context(
    model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, block_size: int | None = None
) -> int | None:
    """Check a generation's arguments; return the context it conditions on (``block_size``, or
    the model's), warning when the prompt is longer: only its last tokens are read."""
    id_batch(idx)
    if idx.shape[1] == 0:
        raise ValueError("idx needs at least one token per row to condition on (e.g. a newline)")
    whole("max_new_tokens", max_new_tokens, least=0)
    largest = getattr(model, "block_size", None)
    if block_size is not None:
        whole("block_size", block_size)
        if largest is not None and block_size > largest:
            raise ValueError(
                f"block_size={block_size} is more than the model's context, {largest}: "
                "leave it out to use the model's own"
            )
    context = block_size or largest
    if context is not None and idx.shape[1] > context and hasattr(model, "new_cache"):
        warnings.warn(
            f"the prompt has {idx.shape[1]} tokens and the model reads {context}: the first "
            f"{idx.shape[1] - context} do not condition the output (crop the prompt to silence "
            "this)",
            stacklevel=3,
        )
    return context


class Decoder:
    """Next-token logits for sequences that grow: ``Decoder(model)(idx)`` runs ``model`` on what
    it has not seen yet of ``idx`` (B, T), its earlier tokens read from the model's KV cache of
    ``max_len`` tokens (default: its ``block_size``); ``context`` caps what the model reads.

    A model without a cache (chapter 1's n-grams), or ``use_cache=False``, is run on the last
    ``block_size`` tokens at every call. Past ``block_size`` tokens the cache cannot help a model
    with learned positions (every token's position shifts when the window slides), so each call
    then runs on the window too: cached and uncached decoding give the same tokens throughout.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        use_cache: bool = True,
        max_len: int | None = None,
        context: int | None = None,
    ):
        self.model = model
        self.context: int | None = context or getattr(model, "block_size", None)
        has_cache = use_cache and hasattr(model, "new_cache")
        self.cache = model.new_cache(max_len) if has_cache else None  # attention.KVCache

    def __call__(self, idx: torch.Tensor, last: int = 1) -> torch.Tensor:
        """The logits (B, last, V) that the model gives at the last ``last`` positions of ``idx``.

        ``idx`` must begin with the tokens cached so far (the ones of the call before, less any
        dropped with :meth:`rewind`)."""
        cache, T = self.cache, idx.shape[1]
        if cache is None or T > cache.max_len:  # the window, computed whole
            window = idx if self.context is None else idx[:, -(self.context + last - 1) :]
            return self.model(window)[0][:, -last:]
        start = min(cache.length, T - last)  # the first token the model has not seen
        cache.crop(start)
        logits, _ = self.model(idx[:, start:], cache=cache)  # (B, T - start, V)
        return logits[:, -last:]

    def rewind(self, length: int) -> None:
        """Forget every cached token from position ``length`` on."""
        if self.cache is not None:
            self.cache.crop(min(length, self.cache.length))

    def reorder(self, rows: torch.Tensor) -> None:
        """Row i continues old row ``rows[i]``: see :meth:`gptbook.attention.KVCache.reorder`."""
        if self.cache is not None:
            self.cache.reorder(rows)


# ---------------------------------------------------------------------- logits processors
# Chapter 9: each takes logits (..., V) and returns new logits, the removed tokens at -inf, with
# the conventions of Hugging Face transformers' logits warpers (tested against them).
REMOVED = float("-inf")


def temperature(logits: torch.Tensor, t: float) -> torch.Tensor:
    """Logits divided by ``t``: below 1 sharper, above 1 flatter; 0 keeps only the argmax
    (greedy decoding as a distribution)."""
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t < float("inf"):
        raise ValueError(f"temperature must be a number ≥ 0 (0 = greedy), got {t}")
    if t == 0:
        best = logits.argmax(-1, keepdim=True)
        return torch.full_like(logits, REMOVED).scatter(-1, best, logits.gather(-1, best))
    return logits / t


def top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Only the ``k`` largest logits (and any tied with the k-th) survive."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k must be a whole number ≥ 1, got {k!r}")
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, REMOVED)


def top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus sampling: the smallest set of the likeliest tokens whose probabilities add up to
    at least ``p`` survives (always at least one token). Sort, add up, cut."""
    if isinstance(p, bool) or not isinstance(p, int | float) or not 0 < p <= 1:
        raise ValueError(f"top_p must be a number in (0, 1], got {p!r}")
    ordered, order = logits.sort(dim=-1)  # ascending: the unlikeliest first
    below = ordered.softmax(-1).cumsum(-1) <= 1 - p  # (..., V): mass that can go
    below[..., -1] = False  # the likeliest token always stays
    return logits.masked_fill(below.scatter(-1, order, below), REMOVED)


def min_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Tokens at least ``p`` times as likely as the likeliest survive: the cut follows the
    model's confidence (Nguyen et al., 2024)."""
    if not 0 <= p <= 1:
        raise ValueError(f"min_p must be in [0, 1], got {p}")
    probs = logits.softmax(-1)
    return logits.masked_fill(probs < p * probs.amax(-1, keepdim=True), REMOVED)


def repetition_penalty(logits: torch.Tensor, ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """Tokens already in ``ids`` (..., T) made less likely, by transformers' rule: a positive logit
    divided by ``penalty``, a negative one multiplied (CTRL divides both); 1 changes nothing."""
    if not penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0 (1: none), got {penalty}")
    seen = logits.gather(-1, ids)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(-1, ids, seen)


@dataclass(frozen=True)
class Sampler:
    """How the next token is chosen (chapter 9): the logits processors in the order
    transformers applies them (repetition penalty, temperature, top-k, top-p, min-p), then one
    draw from the softmax; temperature 0 takes the argmax (greedy decoding). ``None`` leaves a
    processor out."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None

    def __post_init__(self):  # each processor checks its own setting, before the first token
        probe = torch.zeros(1, 2)
        temperature(probe, self.temperature)
        for cut, setting in ((top_k, self.top_k), (top_p, self.top_p), (min_p, self.min_p)):
            if setting is not None:
                cut(probe, setting)
        if self.repetition_penalty is not None:
            repetition_penalty(probe, torch.zeros(1, 1, dtype=torch.long), self.repetition_penalty)

    def logits(self, logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The processed logits (B, V), given the tokens so far ``ids`` (B, T)."""
        if self.repetition_penalty is not None:
            logits = repetition_penalty(logits, ids, self.repetition_penalty)
        logits = temperature(logits, self.temperature)
        if self.temperature == 0:  # one token left: no cut can change the choice
            return logits
        if self.top_k is not None:
            logits = top_k(logits, self.top_k)
        if self.top_p is not None:
            logits = top_p(logits, self.top_p)
        if self.min_p is not None:
            logits = min_p(logits, self.min_p)
        return logits

    def __call__(
        self, logits: torch.Tensor, ids: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The next token of each row, (B, 1), from the logits (B, V)."""
        if self.temperature == 0 and self.repetition_penalty is None:  # greedy: the argmax alone
            return logits.argmax(-1, keepdim=True)
        logits = self.logits(logits.float(), ids)
        if self.temperature == 0:
            return logits.argmax(-1, keepdim=True)
        return torch.multinomial(logits.softmax(-1), 1, generator=generator)


# ---------------------------------------------------------------------- beam search
@torch.no_grad()
def beam_search(
    model: torch.nn.Module,
    idx: torch.Tensor,
    max_new_tokens: int,
    num_beams: int,
    length_penalty: float = 1.0,
    eos_token_id: int | None = None,
    use_cache: bool = True,
) -> torch.Tensor:
    """The likeliest continuation of ``idx`` (1, T) that a beam search finds: (1, T + n), with
    n ≤ ``max_new_tokens`` (chapter 9).

    Each step extends the ``num_beams`` best partial sequences by every token and keeps the
    ``num_beams`` best by total log-probability. A sequence ends at ``eos_token_id`` or after
    ``max_new_tokens`` tokens, scored by its log-probability divided by (new tokens) **
    ``length_penalty``: 0 favours the shortest endings, larger values longer ones. The search
    stops once no open beam can beat the ``num_beams`` finished ones. These are transformers'
    conventions (its default ``early_stopping=False``); one beam is greedy decoding.
    """
    if idx.ndim != 2 or idx.shape[0] != 1:
        raise ValueError(
            f"beam_search continues one prompt: idx must be (1, T), got {tuple(idx.shape)}"
        )
    context = prompt_context(model, idx, max_new_tokens)
    whole("num_beams", num_beams)
    whole("max_new_tokens", max_new_tokens)
    if not (isinstance(length_penalty, int | float) and math.isfinite(length_penalty)):
        raise ValueError(f"length_penalty must be a finite number, got {length_penalty!r}")
    beams = idx.expand(num_beams, -1)  # (K, T)
    scores = torch.full((num_beams,), float("-inf"), device=idx.device)
    scores[0] = 0.0  # the beams start as one: the first step extends only one of them
    finished: list[tuple[float, torch.Tensor]] = []  # (score, sequence): the best num_beams
    length = idx.shape[1] + max_new_tokens
    step = Decoder(model, use_cache, min(length, context or length), context)
    with evaluating(model):  # no dropout
        for n in range(1, max_new_tokens + 1):
            logprobs = step(beams)[:, -1].float().log_softmax(-1)  # (K, V)
            V = logprobs.shape[-1]
            total = (scores[:, None] + logprobs).flatten()  # (K·V): every beam × every token
            best, where = total.topk(min(2 * num_beams, total.numel()))  # spares for beams that end
            rows, tokens = where // V, where % V
            keep = []
            for rank, (row, token) in enumerate(zip(rows.tolist(), tokens.tolist())):
                if token == eos_token_id or n == max_new_tokens:
                    if rank < num_beams:  # an ending ranked below the open beams is dropped
                        ending = torch.cat([beams[row], tokens[rank : rank + 1]])
                        finished.append((best[rank].item() / n**length_penalty, ending))
                elif len(keep) < num_beams:
                    keep.append(rank)
            finished = sorted(finished, key=lambda f: f[0], reverse=True)[:num_beams]
            if n == max_new_tokens:
                break
            keep = torch.tensor(keep, device=idx.device)
            beams = torch.cat([beams[rows[keep]], tokens[keep, None]], dim=1)  # (K, T + n)
            scores = best[keep]
            step.reorder(rows[keep])
            best_open = scores[0].item() / n**length_penalty  # if it ended now
            if len(finished) == num_beams and best_open <= finished[-1][0]:
                break  # the best open beam would not make the list
    return finished[0][1][None]
