"""Attention: scaled dot-product attention, masks, multi-head self-attention, the KV cache.

Introduced in chapter 4. Each position asks a question (its query), every position
offers a label (its key) and a content (its value); the output at a position is the
average of the values, weighted by softmax(q · k / sqrt(d)). Masks decide who may
look at whom: a causal mask lets position t see positions ≤ t (GPT); banded and
strided masks keep only some of them (the Sparse Transformer, used by GPT-3). Chapter 9
adds the KV cache: the keys and values of the tokens already generated, kept for the next step.

Masks here are boolean, shape (T_q, T_k) or broadcastable to the scores, with
True meaning "may attend" — the convention of
``torch.nn.functional.scaled_dot_product_attention``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .checks import number, whole
from .positional import apply_rope

BACKENDS = ("naive", "torch")


def causal_mask(T: int, device: torch.device | str | None = None, past: int = 0) -> torch.Tensor:
    """(T, T) boolean, True on and below the diagonal: position t sees 0..t. With ``past``
    earlier positions (cached, chapter 9), (T, past + T): query t sees keys 0..past + t."""
    T, past = whole("T", T), whole("past", past, least=0)
    return torch.ones(T, past + T, dtype=torch.bool, device=device).tril(diagonal=past)


def banded_mask(T: int, width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Causal and local: position t sees the ``width`` positions t-width+1..t."""
    T, width = whole("T", T), whole("width", width)
    i = torch.arange(T, device=device)
    distance = i[:, None] - i[None, :]  # (T, T): query minus key
    return (distance >= 0) & (distance < width)


def strided_mask(T: int, stride: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The Sparse Transformer's strided pattern: t sees its last ``stride`` positions and every
    earlier position whose distance is a multiple of ``stride``."""
    T, stride = whole("T", T), whole("stride", stride)
    i = torch.arange(T, device=device)
    distance = i[:, None] - i[None, :]
    return (distance >= 0) & ((distance < stride) | (distance % stride == 0))


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    return_weights: bool = False,
):
    """softmax(q kᵀ / sqrt(d) + mask) v, written out, for q (..., T_q, d), k (..., T_k, d) and
    v (..., T_k, d_v).

    ``mask`` is boolean (True = may attend), broadcastable to (..., T_q, T_k). Returns the
    output (..., T_q, d_v), and the attention weights too if ``return_weights``.
    """
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"queries and keys need the same feature size, got {q.shape[-1]} and {k.shape[-1]}"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"every key needs a value: {k.shape[-2]} keys but {v.shape[-2]} values")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T_q, T_k)
    if mask is not None:
        if mask.dtype != torch.bool:
            raise ValueError("mask must be boolean (True = may attend), e.g. causal_mask(T)")
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # each row sums to 1
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    out = weights @ v  # (..., T_q, d_v)
    return (out, weights) if return_weights else out


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention: one fused QKV projection, H heads, an output projection.

    ``backend="naive"`` uses :func:`scaled_dot_product_attention` above; ``"torch"`` calls
    PyTorch's fused kernels (flash / memory-efficient attention where the device has them).
    Both give the same result. ``causal=True`` applies the causal mask; ``mask`` may add
    any other boolean (T, T) pattern. Given a ``cache`` (chapter 9), the keys and values of
    earlier tokens come from it, and the new ones are added to it. Chapter 10 adds
    ``n_kv_head`` < ``n_head`` (grouped-query attention: each key/value head serves
    n_head / n_kv_head query heads, and the cache keeps only n_kv_head) and ``rope_base``
    (queries and keys rotated by their positions, chapter 3's RoPE, instead of added positions).
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        causal: bool = True,
        dropout: float = 0.0,
        bias: bool = True,
        backend: str = "torch",
        n_kv_head: int | None = None,
        rope_base: float | None = None,
        qkv_bias: bool | None = None,
        rope_factor: float = 1.0,
    ):
        super().__init__()
        n_embd, n_head = whole("n_embd", n_embd), whole("n_head", n_head)
        if n_embd % n_head:
            raise ValueError(
                f"n_embd={n_embd} is not divisible by n_head={n_head}; "
                "choose n_head that divides it (each head gets n_embd / n_head features)"
            )
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r}: use one of {', '.join(BACKENDS)}")
        n_kv_head = n_head if n_kv_head is None else whole("n_kv_head", n_kv_head)
        if n_head % n_kv_head:
            raise ValueError(
                f"n_head={n_head} is not a multiple of n_kv_head={n_kv_head}: each key/value "
                "head serves a whole group of query heads; choose n_kv_head dividing n_head"
            )
        self.n_embd, self.n_head, self.causal, self.dropout, self.backend = (
            n_embd,
            n_head,
            causal,
            number("dropout", dropout, least=0),
            backend,
        )
        self.n_kv_head, self.head_dim = n_kv_head, n_embd // n_head
        self.rope_base = rope_base  # chapter 10: rotate queries and keys by position (RoPE)
        self.rope_factor = rope_factor  # positions divided by it: position interpolation
        kv_dim = n_kv_head * self.head_dim  # n_embd unless heads share keys and values (GQA)
        qkv_bias = bias if qkv_bias is None else qkv_bias  # Qwen2: biases here, not in proj
        self.qkv = nn.Linear(n_embd, n_embd + 2 * kv_dim, bias=qkv_bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H·D) -> (B, H, T, D), for any number of heads H."""
        B, T, C = x.shape
        return x.view(B, T, C // self.head_dim, self.head_dim).transpose(1, 2)

    @staticmethod
    def merge_heads(x: torch.Tensor) -> torch.Tensor:
        """(B, H, T, D) -> (B, T, H·D): the heads side by side."""
        B, H, T, D = x.shape
        return x.transpose(1, 2).reshape(B, T, H * D)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        return_weights: bool = False,
        cache: LayerCache | None = None,
    ):
        """Self-attention over x (B, T, C): (B, T, C), and the weights (B, H, T, S) if asked,
        S = T plus the tokens in ``cache``."""
        if x.ndim != 3 or x.shape[-1] != self.n_embd:
            raise ValueError(f"expected input (B, T, {self.n_embd}), got {tuple(x.shape)}")
        T = x.shape[1]
        kv_dim = self.n_kv_head * self.head_dim
        q, k, v = self.qkv(x).split([self.n_embd, kv_dim, kv_dim], dim=-1)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # (B, H·, T, D)
        past = 0 if cache is None else cache.start
        if self.rope_base is not None:  # chapter 10: positions past .. past + T - 1
            positions = torch.arange(past, past + T, device=x.device) / self.rope_factor
            q, k = (
                apply_rope(q, positions, self.rope_base),
                apply_rope(k, positions, self.rope_base),
            )
        if cache is not None:
            k, v = cache.update(k, v)  # (B, H_kv, S, D): the cached tokens' keys and values too
        if self.n_kv_head != self.n_head:  # GQA: each key/value head serves a group of queries
            group = self.n_head // self.n_kv_head
            k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        p = self.dropout if self.training else 0.0
        fused = self.backend == "torch" and not return_weights  # flash / fused kernels
        causal = self.causal and T > 1  # a single new token may see every key before it
        if causal and (past > 0 or mask is not None or not fused):
            mask = (
                causal_mask(T, x.device, past)
                if mask is None
                else mask & causal_mask(T, x.device, past)
            )
            causal = False
        weights = None
        if fused:
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal
            )
        else:
            y, weights = scaled_dot_product_attention(q, k, v, mask, p, return_weights=True)
        out = self.proj(self.merge_heads(y))  # (B, T, C)
        return (out, weights) if return_weights else out


# ---------------------------------------------------------------------- the KV cache (chapter 9)
# Generating token t+1 needs attention over tokens 0..t, but the keys and values of tokens
# 0..t-1 were computed at the steps before and do not change (the mask stops a token from seeing
# later ones). The cache keeps them, so each step runs the model on the newest token only: its
# query meets the cached keys. Memory: 2 (keys and values) · n_layer · T · n_embd numbers per
# sequence (gptbook.sizes.kv_cache_bytes).
class KVCache:
    """Keys and values of ``n_layer`` attention layers for up to ``max_len`` tokens of a batch.

    The tensors (n_layer, B, H, max_len, D) are made at the first :meth:`update`, with the batch,
    heads, dtype and device of the keys given; ``length`` tokens of each row are filled.
    """

    def __init__(self, n_layer: int, max_len: int):
        self.n_layer, self.max_len = whole("n_layer", n_layer), whole("max_len", max_len)
        self.keys: torch.Tensor | None = None  # (n_layer, B, H, max_len, D) once filled
        self.values: torch.Tensor | None = None
        self.length = 0  # tokens cached in every row

    def layer(self, i: int) -> LayerCache:
        """The view of layer ``i`` that its attention reads and writes."""
        return LayerCache(self, i)

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Write the new tokens' keys and values k, v (B, H, T, D) of ``layer`` after the
        ``length`` cached ones; return every key and value so far, (B, H, length + T, D) each."""
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(
                f"the cache holds {self.max_len} tokens and {end} were asked for: make it with "
                "max_len large enough for the prompt and every new token"
            )
        if self.keys is None:
            B, H, _, D = k.shape
            self.keys = k.new_empty(self.n_layer, B, H, self.max_len, D)
            self.values = v.new_empty(self.n_layer, B, H, self.max_len, v.shape[-1])
        T = k.shape[2]  # narrow and copy_ in place: no new tensor, no indexing machinery
        self.keys[layer].narrow(2, self.length, T).copy_(k)
        self.values[layer].narrow(2, self.length, T).copy_(v)
        return self.keys[layer].narrow(2, 0, end), self.values[layer].narrow(2, 0, end)

    def advance(self, n: int) -> None:
        """Count ``n`` more tokens as cached: the model calls this once every layer has them."""
        self.length += n

    def crop(self, length: int) -> None:
        """Keep the first ``length`` tokens only (speculative decoding drops rejected drafts)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"can keep 0..{self.length} cached tokens, not {length}")
        self.length = length

    def reorder(self, rows: torch.Tensor) -> None:
        """Row i of the batch becomes old row ``rows[i]`` (beam search keeps its best beams)."""
        if self.keys is not None:
            self.keys = self.keys[:, rows]
            self.values = self.values[:, rows]

    @property
    def nbytes(self) -> int:
        """Bytes the cache's tensors take (0 before the first update)."""
        if self.keys is None:
            return 0
        return self.keys.nbytes + self.values.nbytes


class LayerCache:
    """One layer's share of a :class:`KVCache`: where its new tokens start, and their update."""

    __slots__ = ("cache", "index")

    def __init__(self, cache: KVCache, index: int):
        self.cache, self.index = cache, index

    @property
    def start(self) -> int:
        """The position of the first new token: how many are cached already."""
        return self.cache.length

    def update(self, k: torch.Tensor, v: torch.Tensor):
        """:meth:`KVCache.update` for this layer: append k, v and return every key and value."""
        return self.cache.update(self.index, k, v)
