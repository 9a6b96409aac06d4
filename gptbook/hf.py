"""The real GPT-2: Hugging Face checkpoints in and out of the book's
:class:`~gptbook.model.GPT` (chapter 7).

A GPT-2 checkpoint, on the Hugging Face hub or written by ``transformers``, is a folder with
``config.json`` and ``model.safetensors``. Its layers are the book's pre-LN blocks under other
names, with one twist: OpenAI wrote its linear layers as ``Conv1D``, which stores a weight as
(in, out), the transpose of ``nn.Linear``'s (out, in). Loading renames and transposes; nothing
else changes, so the book's model computes the same logits as ``transformers``' GPT-2.

    GPT.from_hf("gpt2")           # downloads once when online (any of the four sizes)
    GPT.from_hf("path/to/folder") # or a local checkpoint folder
    model.to_hf("folder")         # a folder GPT2LMHeadModel.from_pretrained loads
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .files import atomic_dir
from .model import GPT, GPTConfig

#: The four GPT-2 sizes on the Hugging Face hub.
HUB_NAMES = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}
#: Chapter 10's checkpoint types, which :mod:`gptbook.hf_llama` reads.
LLAMA_TYPES = ("llama", "qwen2", "mixtral")
#: What a checkpoint folder holds.
FILES = ("config.json", "model.safetensors")
#: A block's weights: the book's name → GPT-2's (under ``h.{i}.``).
BLOCK_NAMES = {
    "ln1": "ln_1",
    "attn.qkv": "attn.c_attn",
    "attn.proj": "attn.c_proj",
    "ln2": "ln_2",
    "mlp.fc": "mlp.c_fc",
    "mlp.proj": "mlp.c_proj",
}
#: The layers GPT-2 writes as Conv1D, whose weights are stored transposed.
CONV1D = ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")
#: GPT-2's GELU is the tanh approximation (the book's MLP computes the same); both names mean it.
GELU_TANH = ("gelu_new", "gelu_pytorch_tanh")
#: nn.LayerNorm's epsilon, which GPT-2 also uses.
LAYER_NORM_EPS = 1e-5
#: GPT-2's ``<|endoftext|>``, its first and last token (``bos_token_id``, ``eos_token_id``).
END_OF_TEXT = 50_256


def weight_names(n_layer: int) -> dict[str, str]:
    """Every weight of a GPT-2-shaped :class:`~gptbook.model.GPT`: the book's name → the
    checkpoint's."""
    names = {"wte.weight": "wte.weight", "wpe.table.weight": "wpe.weight"}
    for i in range(n_layer):
        for ours, theirs in BLOCK_NAMES.items():
            for kind in ("weight", "bias"):
                names[f"blocks.{i}.{ours}.{kind}"] = f"h.{i}.{theirs}.{kind}"
    names.update({"ln_f.weight": "ln_f.weight", "ln_f.bias": "ln_f.bias"})
    return names


def stored_transposed(name: str) -> bool:
    """Whether the book's weight ``name`` is a Conv1D weight, which GPT-2 stores as (in, out)."""
    return name.endswith(".weight") and name.rsplit(".", 1)[0].endswith(CONV1D)


# ---------------------------------------------------------------------- configurations
def config_from_hf(hf: dict) -> GPTConfig:
    """The :class:`~gptbook.config.GPTConfig` of a GPT-2 ``config.json``; refuses options the
    book's model does not compute, naming them."""
    if hf.get("model_type") != "gpt2":
        raise ValueError(
            f"model_type {hf.get('model_type')!r}: GPT.from_hf reads GPT-2 checkpoints "
            "(model_type 'gpt2')"
        )
    checks = {
        "activation_function": (hf.get("activation_function", "gelu_new") in GELU_TANH, "gelu_new"),
        "n_inner": (hf.get("n_inner") in (None, 4 * hf["n_embd"]), "null (4 × n_embd)"),
        "layer_norm_epsilon": (hf.get("layer_norm_epsilon", 1e-5) == LAYER_NORM_EPS, "1e-05"),
        "scale_attn_weights": (hf.get("scale_attn_weights", True), "true"),
        "scale_attn_by_inverse_layer_idx": (
            not hf.get("scale_attn_by_inverse_layer_idx", False),
            "false",
        ),
        "tie_word_embeddings": (hf.get("tie_word_embeddings", True), "true"),
    }
    unlike = [
        f"{k}={hf.get(k)!r} (the book computes {v})" for k, (ok, v) in checks.items() if not ok
    ]
    if unlike:
        raise ValueError("this GPT-2 differs from the book's model: " + "; ".join(unlike))
    return GPTConfig(
        vocab_size=hf["vocab_size"],
        block_size=hf["n_positions"],
        n_layer=hf["n_layer"],
        n_head=hf["n_head"],
        n_embd=hf["n_embd"],
        dropout=hf.get("resid_pdrop", 0.1),
        bias=True,
        norm="pre",
        scaled_residual_init=True,
    )


def config_to_hf(config: GPTConfig) -> dict:
    """The GPT-2 ``config.json`` of a :class:`~gptbook.config.GPTConfig`; only pre-LN models
    with biases (GPT-2's shape) have one."""
    if config.local_window:
        raise ValueError(
            f"to_hf writes GPT-2 checkpoints, whose blocks are all dense; this model has "
            f"local_window={config.local_window}: build it with local_window=0"
        )
    llama_parts = {
        name: getattr(config, name)
        for name, gpt in (
            ("norm_type", "layernorm"),
            ("mlp", "gelu"),
            ("positions", "learned"),
            ("n_kv_head", 0),
            ("tie_embeddings", True),
            ("qkv_bias", False),
            ("norm_eps", LAYER_NORM_EPS),
            ("n_expert", 0),
        )
        if getattr(config, name) != gpt
    }
    if llama_parts:
        raise ValueError(
            f"to_hf writes GPT-2 checkpoints; this model has chapter 10's parts ({llama_parts}), "
            "which GPT-2 does not have: leave them at their defaults"
        )
    if config.norm != "pre" or not config.bias:
        raise ValueError(
            f"to_hf writes GPT-2 checkpoints, which are pre-LN with biases; this model has "
            f"norm={config.norm!r}, bias={config.bias}: build it with norm='pre', bias=True"
        )
    eot = END_OF_TEXT
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": LAYER_NORM_EPS,
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "scale_attn_weights": True,
        "tie_word_embeddings": True,
        # GPT-2's vocabulary has <|endoftext|>; a smaller one (the book's characters) has none
        **dict.fromkeys(("bos_token_id", "eos_token_id"), eot if config.vocab_size > eot else None),
    }


# ---------------------------------------------------------------------- loading
def checkpoint_folder(name_or_path: str | Path) -> Path:
    """A local folder with :data:`FILES`, or the hub's copy of ``name_or_path`` (a name of
    :data:`HUB_NAMES` or ``owner/repo``), downloaded once and cached by ``huggingface_hub``."""
    path = Path(name_or_path)
    if path.is_dir():
        missing = [f for f in FILES if not (path / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{path} has no {' or '.join(missing)}: a GPT-2 checkpoint folder holds "
                f"{' and '.join(FILES)} (transformers' save_pretrained writes them)"
            )
        return path
    from . import book

    repo = HUB_NAMES.get(str(name_or_path), str(name_or_path))
    if not book.online():
        raise OSError(
            f"{name_or_path!r} is not a local folder, and the Hugging Face hub cannot be reached "
            f"(offline): pass a folder with {' and '.join(FILES)}, or run where the hub is "
            "reachable (Colab is)"
        )
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo, allow_patterns=list(FILES)))


def from_hf(name_or_path: str | Path, device: str | torch.device = "cpu") -> GPT:
    """A GPT-2 checkpoint as the book's :class:`~gptbook.model.GPT`, in eval mode (see the
    module's notes)."""
    from safetensors.torch import load_file

    folder = checkpoint_folder(name_or_path)
    hf = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if hf.get("model_type") in LLAMA_TYPES:  # chapter 10: Llama and Qwen2
        from .hf_llama import from_llama

        return from_llama(folder, hf, device)
    config = config_from_hf(hf)
    # transformers writes "transformer.h.0...", the hub's original files "h.0..."
    saved = {
        k.removeprefix("transformer."): v
        for k, v in load_file(str(folder / "model.safetensors")).items()
    }
    model = GPT(config)
    expected = model.state_dict()
    state = {}
    for ours, theirs in weight_names(config.n_layer).items():
        if theirs not in saved:
            raise ValueError(f"{folder / FILES[1]} has no {theirs!r}: not a GPT-2 checkpoint")
        weight = saved[theirs].t() if stored_transposed(ours) else saved[theirs]
        if weight.shape != expected[ours].shape:
            raise ValueError(
                f"{folder}: {theirs!r} has shape {tuple(saved[theirs].shape)}, but its config.json "
                f"({config.n_layer=}, {config.n_embd=}, {config.vocab_size=}, "
                f"{config.block_size=}) makes it {tuple(_as_saved(ours, expected[ours]).shape)}: "
                "the weights and the configuration come from different models"
            )
        state[ours] = weight
    if "lm_head.weight" in saved and not torch.equal(saved["lm_head.weight"], state["wte.weight"]):
        raise ValueError(f"{folder}: its output layer is not tied to the token embedding")
    state["lm_head.weight"] = state["wte.weight"]
    model.load_state_dict(state)
    return model.to(device).eval()


def _as_saved(name: str, weight: torch.Tensor) -> torch.Tensor:
    """A weight of the book's model as a GPT-2 checkpoint stores it."""
    return weight.t() if stored_transposed(name) else weight


def to_hf(model: GPT, path: str | Path) -> Path:
    """Write ``model`` as a GPT-2 checkpoint folder (:data:`FILES`), all at once: the folder
    appears complete or not at all. ``GPT2LMHeadModel.from_pretrained(path)`` loads it."""
    from safetensors.torch import save_file

    config = model.config
    if (config.norm_type, config.mlp, config.positions) != ("layernorm", "gelu", "learned"):
        from .hf_llama import to_llama  # chapter 10: a Llama-style GPT

        return to_llama(model, path)
    hf_config = config_to_hf(config)
    weights = model.state_dict()
    state = {}
    for ours, theirs in weight_names(config.n_layer).items():
        w = _as_saved(ours, weights[ours].detach().cpu())
        state["transformer." + theirs] = w[: config.vocab_size] if ours == "wte.weight" else w
    state = {k: v.contiguous() for k, v in state.items()}
    with atomic_dir(path) as tmp:  # flushed and renamed into place as a whole
        (tmp / FILES[0]).write_text(json.dumps(hf_config, indent=2), encoding="utf-8")
        save_file(state, str(tmp / FILES[1]), {"format": "pt"})
    return Path(path)
