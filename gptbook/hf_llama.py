"""Llama-architecture checkpoints in and out of the book's :class:`~gptbook.model.GPT` (chapter 10).

Introduced in chapter 10. Llama, TinyLlama, SmolLM, Qwen2 and Mixtral (model types ``llama``,
``qwen2`` and ``mixtral``) are the book's GPT with chapter 10's switches on: pre-norm with
RMSNorm, SwiGLU, RoPE, often grouped-query attention and an untied output layer (Qwen2 adds
biases to the query, key and value projections; Mixtral replaces each SwiGLU by a mixture of
experts: a router ``gate`` and experts whose ``w1``, ``w3`` and ``w2`` are SwiGLU's gate, up and
down). Loading renames the weights and fuses q, k and v into the book's one ``qkv``
projection, with one twist: the RoPE convention.

The book's RoPE (chapter 3, as in the RoFormer paper and Meta's code) rotates the feature pairs
(0, 1), (2, 3), …; Hugging Face's rotates (i, i + D/2), "rotate half", and its checkpoints'
query and key weights are laid out for that. Both rotate pair i by the same angle, so reordering
each head's rows of W_q and W_k — Hugging Face's row i to the book's 2i, row i + D/2 to 2i + 1 —
makes the book's model compute exactly the same scores. Values are not rotated and keep their
order.

    GPT.from_hf("path/to/llama-folder")   # any model_type of LLAMA_TYPES, or GPT-2
    model.to_hf("folder")                  # a Llama-style GPT becomes a LlamaForCausalLM folder
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .files import atomic_dir
from .hf import LLAMA_TYPES
from .model import GPT, GPTConfig

#: A block's weights: the book's name → the checkpoint's (under ``model.layers.{i}.``).
BLOCK_NAMES = {
    "ln1.weight": "input_layernorm.weight",
    "attn.proj.weight": "self_attn.o_proj.weight",
    "ln2.weight": "post_attention_layernorm.weight",
    "mlp.gate.weight": "mlp.gate_proj.weight",
    "mlp.up.weight": "mlp.up_proj.weight",
    "mlp.down.weight": "mlp.down_proj.weight",
}


#: The load-balancing weight of a Mixtral config.json that names none: ``transformers``' default.
HF_AUX_LOSS_WEIGHT = 0.001
#: A Mixtral expert's weights: the book's SwiGLU names → Mixtral's.
MIXTRAL_EXPERT = {"gate.weight": "w1.weight", "up.weight": "w3.weight", "down.weight": "w2.weight"}


def config_from_llama(hf: dict) -> GPTConfig:
    """The :class:`~gptbook.config.GPTConfig` of a Llama or Qwen2 ``config.json``; refuses what
    the book's model does not compute, naming it."""
    kind = hf.get("model_type")
    if kind not in LLAMA_TYPES:
        raise ValueError(f"model_type {kind!r}: this loader reads {', '.join(LLAMA_TYPES)}")
    rope = {"rope_theta": hf.get("rope_theta", 10_000.0), **(hf.get("rope_scaling") or {})}
    rope.update(hf.get("rope_parameters") or {})  # transformers 5 keeps them all here
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    heads, d = hf["num_attention_heads"], hf["hidden_size"]
    checks = {
        "hidden_act": (hf.get("hidden_act", "silu") == "silu", "silu"),
        "head_dim": (hf.get("head_dim") in (None, d // heads), f"{d // heads} = hidden / heads"),
        "rope_type": (rope_type in ("default", "linear"), "default or linear"),
        "attention_bias": (not hf.get("attention_bias", False), "false"),
        "mlp_bias": (not hf.get("mlp_bias", False), "false"),
        "use_sliding_window": (not hf.get("use_sliding_window", False), "false"),
        "sliding_window": (kind == "qwen2" or not hf.get("sliding_window"), "none"),
    }
    unlike = [f"{k} (the book computes {v})" for k, (ok, v) in checks.items() if not ok]
    if unlike:
        raise ValueError(
            f"this {kind} checkpoint differs from the book's model: " + "; ".join(unlike)
        )
    return GPTConfig(
        vocab_size=hf["vocab_size"],
        block_size=hf["max_position_embeddings"],
        n_layer=hf["num_hidden_layers"],
        n_head=heads,
        n_kv_head=hf.get("num_key_value_heads") or heads,
        n_embd=d,
        mlp_hidden=hf["intermediate_size"],
        dropout=0.0,
        bias=False,
        qkv_bias=kind == "qwen2",  # Qwen2's q, k and v projections have biases
        norm="pre",
        norm_type="rmsnorm",
        norm_eps=hf.get("rms_norm_eps", 1e-6),
        mlp="swiglu",
        positions="rope",
        rope_base=float(rope["rope_theta"]),
        rope_scaling="linear" if rope_type == "linear" else "none",
        rope_factor=float(rope.get("factor", 1.0)) if rope_type == "linear" else 1.0,
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        n_expert=hf.get("num_local_experts", 0) if kind == "mixtral" else 0,
        expert_top_k=hf.get("num_experts_per_tok", 2),
        aux_loss_weight=hf.get("router_aux_loss_coef", HF_AUX_LOSS_WEIGHT),
    )


def config_to_llama(config: GPTConfig) -> dict:
    """The ``LlamaForCausalLM`` ``config.json`` of a Llama-style
    :class:`~gptbook.config.GPTConfig`."""
    if (config.norm, config.norm_type, config.mlp, config.positions) != (
        "pre",
        "rmsnorm",
        "swiglu",
        "rope",
    ) or (
        config.bias
        or config.qkv_bias
        or config.local_window
        or config.n_expert
        or config.rope_scaling == "ntk"
    ):
        raise ValueError(
            "to_hf writes a Llama checkpoint only for a Llama-style GPT: norm='pre', "
            "norm_type='rmsnorm', mlp='swiglu', positions='rope', bias=False, qkv_bias=False, "
            "local_window=0, n_expert=0, rope_scaling 'none' or 'linear' "
            "(GPTConfig.preset('llama-small') is one)"
        )
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": config.vocab_size,
        "max_position_embeddings": config.block_size,
        "num_hidden_layers": config.n_layer,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.kv_heads,
        "hidden_size": config.n_embd,
        "intermediate_size": config.hidden,
        "hidden_act": "silu",
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_base,
        "rope_parameters": {
            "rope_theta": config.rope_base,
            **(
                {"rope_type": "linear", "factor": config.rope_factor}
                if config.rope_scaling == "linear"
                else {"rope_type": "default"}
            ),
        },
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": None,
        "eos_token_id": None,
    }


# ---------------------------------------------------------------------- the RoPE layout
def to_interleaved(w: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Rows (or entries) of a query or key projection from Hugging Face's rotate-half layout to
    the book's interleaved pairs, head by head: row i → 2i, row i + D/2 → 2i + 1."""
    heads = w.shape[0] // head_dim
    halves = w.reshape(heads, 2, head_dim // 2, *w.shape[1:])  # (H, 2, D/2, …)
    return halves.transpose(1, 2).reshape(w.shape)  # (H, D/2, 2, …): pairs side by side


def to_rotate_half(w: torch.Tensor, head_dim: int) -> torch.Tensor:
    """The inverse of :func:`to_interleaved`: the book's layout back to Hugging Face's."""
    heads = w.shape[0] // head_dim
    pairs = w.reshape(heads, head_dim // 2, 2, *w.shape[1:])  # (H, D/2, 2, …)
    return pairs.transpose(1, 2).reshape(w.shape)


# ---------------------------------------------------------------------- loading and writing
def from_llama(folder: Path, hf: dict, device: str | torch.device = "cpu") -> GPT:
    """The checkpoint in ``folder`` (``config.json`` already read into ``hf``) as the book's
    :class:`~gptbook.model.GPT`, in eval mode."""
    from safetensors.torch import load_file

    config = config_from_llama(hf)
    saved = load_file(str(folder / "model.safetensors"))
    model = GPT(config)
    D = config.n_embd // config.n_head

    def take(name: str) -> torch.Tensor:
        if name not in saved:
            raise ValueError(
                f"{folder}: model.safetensors has no {name!r}: not a {hf['model_type']}"
            )
        return saved[name]

    state = {
        "wte.weight": take("model.embed_tokens.weight"),
        "ln_f.weight": take("model.norm.weight"),
    }
    for i in range(config.n_layer):
        ours, theirs = f"blocks.{i}.", f"model.layers.{i}."
        for name, hf_name in BLOCK_NAMES.items():
            if config.n_expert and name.startswith("mlp."):
                continue  # Mixtral: the experts, below
            state[ours + name] = take(theirs + hf_name)
        if config.n_expert:
            moe = theirs + "block_sparse_moe."
            state[ours + "mlp.router.weight"] = take(moe + "gate.weight")
            for e in range(config.n_expert):
                for name, hf_name in MIXTRAL_EXPERT.items():
                    state[f"{ours}mlp.experts.{e}.{name}"] = take(f"{moe}experts.{e}.{hf_name}")
        attn = theirs + "self_attn."
        kinds = ("weight", "bias") if config.qkv_bias else ("weight",)
        for kind in kinds:
            q = to_interleaved(take(f"{attn}q_proj.{kind}"), D)
            k = to_interleaved(take(f"{attn}k_proj.{kind}"), D)
            state[f"{ours}attn.qkv.{kind}"] = torch.cat([q, k, take(f"{attn}v_proj.{kind}")])
    state["lm_head.weight"] = (
        state["wte.weight"] if config.tie_embeddings else take("lm_head.weight")
    )
    expected = model.state_dict()
    for name, weight in state.items():
        if weight.shape != expected[name].shape:
            raise ValueError(
                f"{folder}: {name!r} has shape {tuple(weight.shape)} where its config.json makes "
                f"{tuple(expected[name].shape)}: the weights and the configuration differ"
            )
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.to(device).eval()


def to_llama(model: GPT, path: str | Path) -> Path:
    """Write a Llama-style ``model`` as a ``LlamaForCausalLM`` folder, all at once."""
    from safetensors.torch import save_file

    config = model.config
    hf_config = config_to_llama(config)
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    D, kv = config.n_embd // config.n_head, config.kv_heads * (config.n_embd // config.n_head)
    state = {
        "model.embed_tokens.weight": weights["wte.weight"][: config.vocab_size],
        "model.norm.weight": weights["ln_f.weight"],
    }
    if not config.tie_embeddings:
        state["lm_head.weight"] = weights["lm_head.weight"][: config.vocab_size]
    for i in range(config.n_layer):
        ours, theirs = f"blocks.{i}.", f"model.layers.{i}."
        for name, hf_name in BLOCK_NAMES.items():
            state[theirs + hf_name] = weights[ours + name]
        q, k, v = weights[ours + "attn.qkv.weight"].split([config.n_embd, kv, kv])
        state[theirs + "self_attn.q_proj.weight"] = to_rotate_half(q, D)
        state[theirs + "self_attn.k_proj.weight"] = to_rotate_half(k, D)
        state[theirs + "self_attn.v_proj.weight"] = v
    state = {k: v.contiguous() for k, v in state.items()}
    with atomic_dir(path) as tmp:
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2), encoding="utf-8")
        save_file(state, str(tmp / "model.safetensors"), {"format": "pt"})
    return Path(path)
