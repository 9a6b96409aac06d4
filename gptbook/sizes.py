"""What a GPT costs, by formula: parameters per component, FLOPs per token, training memory.

Chapter 5 counts GPT-1's parameters with these formulas; chapter 7 does GPT-2's four sizes and
their FLOPs and memory. Each count is a formula in the configuration's numbers (d = n_embd,
L = n_layer, V = vocabulary, T = block_size), checked against a model built on PyTorch's
``meta`` device, which has every shape and no memory.
"""

from __future__ import annotations

import dataclasses

from .model import GPTConfig


def param_counts(config: GPTConfig) -> dict[str, int]:
    """Parameters per component; a tied output layer shares the token embedding's matrix, so it
    adds none. A LayerNorm has d weights (and d biases when ``config.bias``), an RMSNorm d.

    Chapter 10's switches change the counts: RoPE has no position table, grouped-query
    attention projects keys and values to n_kv_head heads, SwiGLU has three matrices of the
    hidden width, and an untied output layer adds V·d. Attention-only blocks (``mlp="none"``,
    chapter 8) have no MLP and one norm each."""
    d, L, h = config.n_embd, config.n_layer, config.hidden
    b = int(config.bias)
    qkv_b = int(config.bias or config.qkv_bias)  # Qwen2 has biases on Q, K, V only
    kv = config.kv_heads * (d // config.n_head)  # keys' and values' width: d without GQA
    norm = d * (1 + b) if config.norm_type == "layernorm" else d
    if config.mlp == "none":
        mlp = 0  # attention only
    elif config.mlp == "swiglu":
        mlp = 3 * d * h + (2 * h + d) * b  # gate and up d → h, down h → d
    else:
        mlp = 2 * d * h + (h + d) * b  # d → 4d → d
    if config.n_expert:  # chapter 10: n_expert copies and a router, d → n_expert
        mlp = config.n_expert * mlp + d * config.n_expert
    counts = {
        "token embedding": config.padded_vocab_size * d,
        "position embedding": config.block_size * d if config.positions == "learned" else 0,
        "attention": L * (2 * d * d + 2 * d * kv + (d + 2 * kv) * qkv_b + d * b),  # Q, K, V, out
        "MLP": L * mlp,
        # one before (pre-LN) or after (post-LN) each sub-layer; pre-LN adds a final one
        "LayerNorms": ((1 + (config.mlp != "none")) * L + (config.norm == "pre")) * norm,
    }
    if not config.tie_embeddings:
        counts["output layer"] = config.padded_vocab_size * d
    return counts


def active_params(config: GPTConfig) -> int:
    """The parameters one token's forward pass uses: all of them in a dense model; in a mixture
    of experts (chapter 10) only ``expert_top_k`` of each block's ``n_expert`` experts."""
    total = sum(param_counts(config).values())
    if not config.n_expert:
        return total
    expert = param_counts(dataclasses.replace(config, n_expert=0))["MLP"] // config.n_layer
    return total - config.n_layer * (config.n_expert - config.expert_top_k) * expert


def non_embedding(config: GPTConfig) -> int:
    """Parameters without the token and position tables: the N of Kaplan et al.'s scaling
    laws (chapter 8), which count only what the blocks compute with."""
    counts = param_counts(config)
    return sum(counts.values()) - counts["token embedding"] - counts["position embedding"]


def flops_per_token(config: GPTConfig, T: int | None = None, training: bool = True) -> int:
    """FLOPs per token: 2 per weight for the forward pass (a multiply and an add), plus
    attention's scores and weighted sum, 2·L·T·d; training adds the backward pass, twice the
    forward, so 6 per weight and 6·L·T·d (Kaplan et al., 2020). ``T`` is the context length
    (``block_size`` if omitted). The position table is a lookup and is left out; the tied token
    matrix stays in, as the output layer's product. A locally banded block (GPT-3, chapter 8)
    scores ``local_window`` keys per token instead of T: 2·min(window, T)·d."""
    T = T or config.block_size
    weights = active_params(config) - param_counts(config)["position embedding"]
    forward = 2 * weights + 2 * sum(attended(config, T)) * config.n_embd
    return 3 * forward if training else forward


def attended(config: GPTConfig, T: int | None = None) -> list[int]:
    """How many keys each block's attention scores per query at context ``T``: T in a dense
    block (the count Kaplan et al. use), at most ``local_window`` in a banded one."""
    T = T or config.block_size
    return [min(T, config.local_window) if config.banded(i) else T for i in range(config.n_layer)]


def training_memory(config: GPTConfig) -> dict[str, int]:
    """Bytes to train with AdamW, before activations: float32 weights, their float32 gradients
    and AdamW's two float32 moments, 16 bytes per parameter. Mixed precision as the book's
    Trainer does it (autocast) changes none of these: only the activations are 16-bit."""
    n = sum(param_counts(config).values())
    return {"weights": 4 * n, "gradients": 4 * n, "AdamW moments": 2 * 4 * n}


#: Bytes of a float32 number: the book counts activations as its CPU run keeps them.
FLOAT32 = 4


def activation_memory(config: GPTConfig, batch_size: int = 1, T: int | None = None) -> dict:
    """Bytes of activations one training forward pass of the book's GPT keeps for the backward
    pass, in float32, without dropout, with PyTorch's fused attention (which keeps no T×T
    matrix). Per token, each block keeps 16·d numbers — two LayerNorm inputs and outputs (4d),
    the Q, K, V projection (3d), the attention output (d), the MLP's hidden layer before and
    after GELU (8d) — plus a mean and a spread per LayerNorm (4) and one log-sum-exp per head
    (n_head). The output keeps the final LayerNorm's (pre-LN only), the last hidden state, the
    log-probabilities over the vocabulary and the token ids. Checked against
    :func:`gptbook.measure.saved_tensor_bytes` in the tests.

    Korthikanti et al. (2022) count the same 16 numbers per token per layer (34·d bytes in
    16-bit with dropout masks, plus the T×T attention matrices that fused attention does not
    keep). A banded block (``local_window``) also keeps its T×T mask, once, in float32."""
    gpt = (config.norm_type, config.mlp, config.kv_heads, config.n_expert)
    if gpt != ("layernorm", "gelu", config.n_head, 0):
        raise ValueError(
            "activation_memory counts GPT's blocks (LayerNorm, a GELU MLP, one key/value head "
            "per query head); this config has chapter 10's parts"
        )
    T = T or config.block_size
    d, tokens = config.n_embd, batch_size * T
    per_token_block = 16 * d + 2 * 2 + config.n_head
    final_ln = (d + 2) if config.norm == "pre" else 0
    ids = 2  # int64: two float32s' worth
    per_token_output = final_ln + d + config.vocab_size + ids
    n_banded = sum(config.banded(i) for i in range(config.n_layer))
    return {
        "blocks": FLOAT32 * (tokens * config.n_layer * per_token_block + n_banded * T * T),
        "output": FLOAT32 * (tokens * per_token_output + 1),  # + the loss's normaliser
    }


def kv_cache_bytes(
    config: GPTConfig, T: int | None = None, batch_size: int = 1, bytes_per_element: int = 2
) -> int:
    """Bytes a KV cache takes (chapter 9): keys and values, 2 · n_layer · T · n_embd numbers
    per sequence, at ``T`` = block_size unless given; 2 bytes each in bf16 or fp16. With
    grouped-query attention (chapter 10) the width is n_kv_head · head size, not n_embd."""
    T = config.block_size if T is None else T
    width = config.kv_heads * (config.n_embd // config.n_head)  # n_embd without GQA
    return 2 * config.n_layer * T * width * batch_size * bytes_per_element


def matched_width(config: GPTConfig, target: int) -> GPTConfig:
    """``config`` with the SwiGLU width whose parameter count (active count, with experts) comes
    closest to ``target``: chapter 10 compares its parts at matched size. The count is a straight
    line in the width, so two counts give it."""
    if config.mlp != "swiglu":
        raise ValueError(
            f"mlp={config.mlp!r}: GPT's GELU MLP is 4·n_embd wide, so only mlp='swiglu' has a "
            "width to match"
        )

    def count(width: int) -> int:
        return active_params(dataclasses.replace(config, mlp_hidden=width))

    per_unit = count(2) - count(1)  # the weights one more hidden unit adds
    width = round((target - count(1)) / per_unit) + 1
    if width < 1:
        raise ValueError(
            f"target={target:,} is below this config's {count(1):,} parameters at width 1: "
            "the rest of the model is already larger"
        )
    return dataclasses.replace(config, mlp_hidden=width)


#: FLOPs per parameter per training token: 2 forward, 4 backward (Kaplan et al., 2020).
FLOPS_PER_PARAMETER_TOKEN = 6
