"""GPT: the decoder-only Transformer, as GPT-1 and GPT-2 build it.

Introduced in chapter 5 (GPT-1: post-LN blocks) and extended in chapter 7 (GPT-2:
pre-LN blocks, a final LayerNorm, residual projections initialised with 1/sqrt(2N)) and
chapter 8 (GPT-3: its sizes, and every other block's attention locally banded; attention-only
blocks, ``mlp="none"``, for the induction heads of :mod:`gptbook.induction`).
One class covers them all; a :class:`~gptbook.config.GPTConfig` says which.

    token ids (B, T) → token embedding + learned position embedding → dropout
    → n_layer × Block → [final LayerNorm, pre-LN only] → tied output head → logits (B, T, V)

Post-LN block (GPT-1):  x = LN(x + Attention(x));  x = LN(x + MLP(x))
Pre-LN block (GPT-2):   x = x + Attention(LN(x));  x = x + MLP(LN(x))
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import torch
from torch import nn

from .attention import KVCache, LayerCache, MultiHeadAttention, banded_mask
from .checks import id_batch
from .config import GPT3_TABLE, PRESETS, GPTConfig
from .embeddings import tie_weights
from .files import DamagedFile, atomic_dir, read_files, write_manifest
from .layers import MLP, MoE, RMSNorm, SwiGLU
from .lm import cross_entropy
from .positional import LearnedPositional

__all__ = ["GPT", "GPT3_TABLE", "PRESETS", "Block", "GPTConfig", "make_mlp", "make_norm"]

#: The file :meth:`GPT.save` writes last, with the SHA-256 of the others.
SAVED_MANIFEST = "manifest.json"
#: The files of a folder written by :meth:`GPT.save`, and nothing else.
SAVED_FILES = {"config.json", "model.safetensors", SAVED_MANIFEST}
#: The output layer's weight: with tied embeddings, the token embedding's matrix, stored once.
TIED = "lm_head.weight"


def make_norm(config: GPTConfig) -> nn.Module:
    """The block's norm layer: LayerNorm (GPT) or RMSNorm (chapter 10)."""
    if config.norm_type == "rmsnorm":
        return RMSNorm(config.n_embd, config.norm_eps)
    return nn.LayerNorm(config.n_embd, eps=config.norm_eps, bias=config.bias)


def make_mlp(config: GPTConfig, experts: bool = True) -> nn.Module:
    """The block's feed-forward layer: GPT's GELU MLP or SwiGLU (chapter 10), or a mixture of
    ``n_expert`` of them (chapter 10)."""
    if experts and config.n_expert:
        mixture = [make_mlp(config, experts=False) for _ in range(config.n_expert)]
        return MoE(mixture, config.n_embd, config.expert_top_k)
    if config.mlp == "swiglu":
        return SwiGLU(config.n_embd, config.hidden, config.dropout, config.bias)
    return MLP(config.n_embd, config.dropout, config.bias)


class Block(nn.Module):
    """A Transformer decoder block: masked multi-head attention, then an MLP, each with a
    residual connection and a LayerNorm (after the sum in GPT-1, before the sub-layer in GPT-2).
    A ``banded`` block attends to the last ``config.local_window`` positions only (GPT-3).
    With ``config.mlp="none"`` the block is attention only: no MLP and no second norm
    (chapter 8)."""

    def __init__(self, config: GPTConfig, banded: bool = False):
        super().__init__()
        self.pre_ln = config.norm == "pre"
        band = banded_mask(config.block_size, config.local_window) if banded else None
        self.register_buffer("band", band, persistent=False)  # (T, T) or None: dense
        self.ln1 = make_norm(config)
        self.attn = MultiHeadAttention(
            config.n_embd,
            config.n_head,
            causal=True,
            dropout=config.dropout,
            bias=config.bias,
            qkv_bias=config.bias or config.qkv_bias,
            n_kv_head=config.kv_heads,
            rope_base=config.rope[0] if config.positions == "rope" else None,
            rope_factor=config.rope[1],
        )
        attention_only = config.mlp == "none"  # chapter 8: no MLP, no norm before it
        self.ln2 = None if attention_only else make_norm(config)
        self.mlp = None if attention_only else make_mlp(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        # (B, T, C) -> (B, T, C); the cache (chapter 9) holds the earlier tokens' keys and values
        if self.pre_ln:
            x = x + self.drop(self.attend(self.ln1(x), cache=cache))
            return x if self.mlp is None else x + self.mlp(self.ln2(x))
        x = self.ln1(x + self.drop(self.attend(x, cache=cache)))
        return x if self.mlp is None else self.ln2(x + self.mlp(x))

    def attend(self, x: torch.Tensor, return_weights: bool = False, cache=None):
        """The block's attention over x (B, T, C), banded if the block is; with
        ``return_weights``, also its weights (B, H, T, T)."""
        T, past = x.shape[1], 0 if cache is None else cache.start
        mask = None if self.band is None else self.band[past : past + T, : past + T]
        return self.attn(x, mask=mask, return_weights=return_weights, cache=cache)

    def attention_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights (B, H, T, T) this block computes on its input x (B, T, C)."""
        return self.attend(self.ln1(x) if self.pre_ln else x, return_weights=True)[1]


class GPT(nn.Module):
    """A GPT language model: ``model(idx, targets=None) -> (logits, loss)``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.block_size = config.block_size
        self.wte = nn.Embedding(config.padded_vocab_size, config.n_embd)
        learned = config.positions == "learned"  # RoPE (chapter 10) rotates inside attention
        self.wpe = LearnedPositional(config.block_size, config.n_embd) if learned else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(config, banded=config.banded(i)) for i in range(config.n_layer)
        )
        pre_ln = config.norm == "pre"  # GPT-2 adds a LayerNorm after the last block
        self.ln_f = make_norm(config) if pre_ln else nn.Identity()
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        if config.tie_embeddings:
            tie_weights(self.wte, self.lm_head)
        self.apply(self._init_weights)
        if config.scaled_residual_init:  # GPT-2: the residual stream's variance stays flat
            for name, p in self.named_parameters():
                if name.endswith(("attn.proj.weight", "mlp.proj.weight", "mlp.down.weight")):
                    nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None
    ):
        logits = self.lm_head(self.features(idx, cache))  # (B, T, padded V)
        logits = logits[..., : self.config.vocab_size]  # (B, T, V): the padding cut off
        if targets is None:
            return logits, None
        loss = cross_entropy(logits, targets)
        if self.config.n_expert and self.training:  # chapter 10: keep the experts in use
            loss = loss + self.config.aux_loss_weight * self.aux_loss()
        return logits, loss

    def aux_loss(self) -> torch.Tensor:
        """The mean load-balancing loss of the mixture-of-experts blocks' last forward pass."""
        losses = [block.mlp.aux_loss for block in self.blocks if isinstance(block.mlp, MoE)]
        return torch.stack(losses).mean()

    def features(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """The final hidden states (B, T, C): what the output layer scores, and what a
        fine-tuning head reads (chapter 6). With a ``cache`` (chapter 9), ``idx`` continues the
        tokens cached, and is added to them."""
        start = 0 if cache is None else cache.length
        x = self.embed(idx, start)  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, None if cache is None else cache.layer(i))
        if cache is not None:
            cache.advance(idx.shape[1])
        return self.ln_f(x)  # (B, T, C)

    def new_cache(self, max_len: int | None = None) -> KVCache:
        """An empty KV cache for up to ``max_len`` tokens (default ``block_size``): chapter 9."""
        return KVCache(self.config.n_layer, max_len or self.config.block_size)

    @torch.no_grad()
    def attention_weights(self, idx: torch.Tensor) -> list[torch.Tensor]:
        """Every block's attention weights on ``idx`` (B, T), one (B, H, T, T) tensor per block:
        what each position looks at (chapter 8 finds the head that learns in context)."""
        x, weights = self.embed(idx), []
        for block in self.blocks:
            weights.append(block.attention_weights(x))
            x = block(x)
        return weights

    def embed(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Token plus position embeddings of ``idx`` (B, T), after dropout: (B, T, C). The
        tokens sit at positions start..start+T-1 (``start`` > 0 after a KV cache's tokens)."""
        id_batch(idx)
        B, T = idx.shape
        if start + T > self.config.block_size:
            raise ValueError(
                f"the input has {start + T} tokens but the context is block_size="
                f"{self.config.block_size}: crop it to the last block_size tokens "
                "(sampling.generate does)"
            )
        if not idx.is_cuda and not torch.compiler.is_compiling():
            self._check_ids(idx)  # on a GPU it would stall every step; the embedding checks there
        x = self.wte(idx)  # (B, T, C)
        if self.wpe is not None:  # learned positions; RoPE's are applied inside attention
            x = x + self.wpe(T, start)
        return self.drop(x)

    def _check_ids(self, idx: torch.Tensor) -> None:
        V = self.config.vocab_size
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= V):
            lo, hi = int(idx.min()), int(idx.max())
            raise ValueError(f"token ids must lie in 0..{V - 1}, got {lo}..{hi}")

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, counted once when shared (tied); without the position table if
        ``non_embedding``."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and self.wpe is not None:
            n -= self.wpe.table.weight.numel()
        return n

    def flops_per_token(self, T: int | None = None) -> int:
        """Training FLOPs per token at context ``T`` (``block_size`` if omitted): 6 per weight
        plus attention's 6·n_layer·T·n_embd, the formula of :func:`gptbook.sizes.flops_per_token`.

        nanoGPT and PaLM count attention as 12·n_layer·T·n_embd (the full square, not the
        causal half), so their MFUs run slightly higher for the same speed.
        """
        from .sizes import flops_per_token

        return flops_per_token(self.config, T)

    # ------------------------------------------------------------------ files
    @classmethod
    def from_hf(cls, name_or_path: str | Path, device: str | torch.device = "cpu") -> GPT:
        """A Hugging Face GPT-2 checkpoint (``"gpt2"`` … ``"gpt2-xl"``, an ``owner/repo`` on the
        hub, or a local folder) as a GPT in eval mode: chapter 7, :mod:`gptbook.hf`; chapter 10
        adds Llama and Qwen2 checkpoints (:mod:`gptbook.hf_llama`)."""
        from .hf import from_hf

        return from_hf(name_or_path, device)

    def to_hf(self, path: str | Path) -> Path:
        """Write this (pre-LN) model as a GPT-2 checkpoint folder that ``transformers`` loads:
        chapter 7, :mod:`gptbook.hf`; a Llama-style model as a Llama folder (chapter 10)."""
        from .hf import to_hf

        return to_hf(self, path)

    def save(self, path: str | Path, metadata: dict[str, str] | None = None) -> None:
        """Write the model to the folder ``path``: ``config.json``, ``model.safetensors`` (with
        ``metadata``) and ``manifest.json`` with their SHA-256, so that :meth:`load` can tell a
        damaged file from a good one. The folder appears whole or not at all: it is built beside
        ``path`` and renamed into place, replacing an earlier save there. A folder that holds
        anything else is refused, since replacing it would delete those files."""
        from safetensors.torch import save_file

        path = Path(path)
        if path.is_dir() and (others := sorted({p.name for p in path.iterdir()} - SAVED_FILES)):
            raise FileExistsError(
                f"{path} holds files that are not a saved model's ({', '.join(others[:3])}): "
                f"save the model to a folder of its own, e.g. {path / 'model'}"
            )
        config = json.dumps(dataclasses.asdict(self.config), indent=2)
        state = {k: v.contiguous() for k, v in self.state_dict().items()}
        if self.config.tie_embeddings:
            del state[TIED]  # the same tensor as wte.weight: stored once
        with atomic_dir(path) as tmp:
            (tmp / "config.json").write_text(config, encoding="utf-8")
            save_file(state, tmp / "model.safetensors", metadata)
            write_manifest(tmp / SAVED_MANIFEST, ["config.json", "model.safetensors"])

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> GPT:
        """A model saved with :meth:`save`, its files verified first (no pickle is ever read).

        Raises :class:`~gptbook.files.DamagedFile` naming a file that is missing or altered.
        """
        from safetensors.torch import load

        path = Path(path)
        if not (path / SAVED_MANIFEST).exists() and (path / "config.json").exists():
            if "model_type" in (path / "config.json").read_text(encoding="utf-8"):
                raise ValueError(
                    f"{path} is a Hugging Face checkpoint, not a GPT.save() folder: load it "
                    "with GPT.from_hf(path)"
                )
        # the bytes loaded are the bytes verified, even while another process saves to path
        try:
            _, blobs = read_files(path / SAVED_MANIFEST, fix="save the model again (GPT.save)")
        except DamagedFile:
            if not path.is_dir():
                raise FileNotFoundError(f"{path} is not a folder written by GPT.save()") from None
            raise
        if set(blobs) != {"config.json", "model.safetensors"}:
            raise DamagedFile(f"{path / SAVED_MANIFEST} does not list a saved model's two files")
        try:
            config = GPTConfig(**json.loads(blobs["config.json"].decode("utf-8")))
        except (ValueError, TypeError) as err:  # verified, yet not a config: another program's
            raise ValueError(f"{path / 'config.json'} is not a GPTConfig: {err}") from None
        model = cls(config)
        state = load(blobs["model.safetensors"])
        if config.tie_embeddings:
            state[TIED] = state["wte.weight"]
        model.load_state_dict(state)
        return model.to(device)
