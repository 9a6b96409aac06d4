"""GPT: the decoder-only Transformer, as GPT-1 and GPT-2 build it.

Introduced in chapter 5 (GPT-1: post-LN blocks) and extended in chapter 7 (GPT-2:
pre-LN blocks, a final LayerNorm, residual projections initialised with 1/sqrt(2N)) and
chapter 8 (GPT-3: its sizes, and every other block's attention locally banded).
One class covers them all; a :class:`GPTConfig` says which.

    token ids (B, T) → token embedding + learned position embedding → dropout
    → n_layer × Block → [final LayerNorm, pre-LN only] → tied output head → logits (B, T, V)

Post-LN block (GPT-1):  x = LN(x + Attention(x));  x = LN(x + MLP(x))
Pre-LN block (GPT-2):   x = x + Attention(LN(x));  x = x + MLP(LN(x))
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .attention import KVCache, LayerCache, MultiHeadAttention, banded_mask
from .checks import id_batch, whole
from .embeddings import tie_weights
from .files import atomic_write, read_manifest, write_manifest, write_text
from .layers import MLP, MoE, RMSNorm, SwiGLU, swiglu_hidden
from .lm import cross_entropy
from .positional import LearnedPositional

NORMS = ("post", "pre")
#: Chapter 10's switches: the norm layer, the feed-forward layer, how positions enter.
NORM_TYPES = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu")
POSITIONS = ("learned", "rope")
ROPE_SCALINGS = ("none", "linear", "ntk")
#: The file :meth:`GPT.save` writes last, with the SHA-256 of the others.
SAVED_MANIFEST = "manifest.json"

#: GPT-2's vocabulary: 50,000 merges, 256 bytes and <|endoftext|> (chapter 2).
GPT2_VOCAB_SIZE = 50_257
#: GPT-2's four sizes (chapter 7): n_layer, n_head, n_embd.
GPT2_TABLE = {
    "gpt2": (12, 12, 768),
    "gpt2-medium": (24, 16, 1024),
    "gpt2-large": (36, 20, 1280),
    "gpt2-xl": (48, 25, 1600),
}
#: GPT-3's Table 2.1: n_layer, n_head, d_model of its eight models. Two rows do not multiply
#: out: XL's 24 heads of 128 make 3,072, not its d_model 2,048 (the preset keeps d_model and
#: the heads of 128: 16 of them), and 13B's 40 heads of 128 make 5,120, not 5,140 (the preset
#: takes 5,120). Neither choice changes a parameter count by more than 0.5%.
GPT3_TABLE = {
    "gpt3-small": (12, 12, 768),
    "gpt3-medium": (24, 16, 1024),
    "gpt3-large": (24, 16, 1536),
    "gpt3-xl": (24, 16, 2048),
    "gpt3-2.7b": (32, 32, 2560),
    "gpt3-6.7b": (32, 32, 4096),
    "gpt3-13b": (40, 40, 5120),
    "gpt3-175b": (96, 96, 12288),
}


def gpt2_shaped(block_size: int, table: dict[str, tuple[int, int, int]]) -> dict[str, dict]:
    """Presets with GPT-2's blocks (chapters 7 and 8): pre-LN, the scaled residual init and
    GPT-2's BPE vocabulary, a context of ``block_size``, one per (n_layer, n_head, n_embd)."""
    return {
        name: dict(
            vocab_size=GPT2_VOCAB_SIZE,
            block_size=block_size,
            n_layer=n_layer,
            n_head=n_head,
            n_embd=n_embd,
            norm="pre",
            scaled_residual_init=True,
        )
        for name, (n_layer, n_head, n_embd) in table.items()
    }


#: Named sizes: GPT-1, GPT-2 and GPT-3 as published; the book-* ones fit the book's CPU budget.
PRESETS: dict[str, dict] = {
    "gpt1": dict(vocab_size=40_478, block_size=512, n_layer=12, n_head=12, n_embd=768, norm="post"),
    "book-tiny": dict(vocab_size=84, block_size=64, n_layer=2, n_head=4, n_embd=64, norm="post"),
    "book-small": dict(vocab_size=84, block_size=128, n_layer=4, n_head=4, n_embd=128, norm="post"),
    "book-medium": dict(
        vocab_size=84, block_size=256, n_layer=6, n_head=6, n_embd=384, norm="post"
    ),
    **gpt2_shaped(1024, GPT2_TABLE),  # GPT-2 (chapter 7): context 1,024
    **gpt2_shaped(2048, GPT3_TABLE),  # GPT-3 (chapter 8): the same blocks, context 2,048
}
#: Chapter 10: LLaMA's parts (pre-norm with RMSNorm, SwiGLU, RoPE, no biases, an untied output
#: layer), given to the book's sizes as the presets llama-tiny, llama-small and llama-medium.
LLAMA_PARTS = dict(
    norm="pre", norm_type="rmsnorm", mlp="swiglu", positions="rope", bias=False,
    tie_embeddings=False,
)  # fmt: skip
PRESETS.update(
    {
        f"llama-{size}": {**PRESETS[f"book-{size}"], **LLAMA_PARTS}
        for size in ("tiny", "small", "medium")
    }
)


def divisors(n: int, most: int | None = None) -> list[int]:
    """The whole numbers up to ``most`` that divide ``n``: the head counts a width allows."""
    return [h for h in range(1, min(n, most or n) + 1) if n % h == 0]


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT. Defaults are GPT-1's choices: post-LN, GELU, dropout 0.1, N(0, 0.02)."""

    vocab_size: int = 84
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.1
    bias: bool = True
    norm: str = "post"
    scaled_residual_init: bool = False  # GPT-2: std 0.02 / sqrt(2 n_layer) on residual projections
    pad_vocab_to: int = 1  # round the embedding table up to a multiple (64 helps GPU kernels)
    local_window: int = 0  # GPT-3: > 0 makes every other block attend to its last k tokens only
    # chapter 10: what today's LLMs changed (the defaults keep GPT's choices)
    norm_type: str = "layernorm"  # or "rmsnorm"
    mlp: str = "gelu"  # or "swiglu"
    mlp_hidden: int = 0  # the feed-forward width; 0: 4·n_embd (GELU) or swiglu_hidden (SwiGLU)
    positions: str = "learned"  # or "rope": queries and keys rotated, no position table
    rope_base: float = 10_000.0
    rope_scaling: str = "none"  # or "linear" (position interpolation) or "ntk": longer contexts
    rope_factor: float = 1.0  # how many times the trained context the scaling stretches to
    n_kv_head: int = 0  # key/value heads (GQA); 0: one per query head
    tie_embeddings: bool = True  # the output layer shares the token embedding's matrix
    norm_eps: float = 1e-5  # added to the variance (LayerNorm) or mean square (RMSNorm)
    qkv_bias: bool = False  # biases on the query/key/value projections even without ``bias``
    n_expert: int = 0  # > 0: each block's feed-forward layer is a mixture of this many experts
    expert_top_k: int = 2  # the experts each token runs through
    aux_loss_weight: float = 0.01  # the load-balancing loss's weight in the training loss

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "pad_vocab_to"):
            whole(name, getattr(self, name))
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}: each head gets "
                f"n_embd / n_head features; try n_head in {divisors(self.n_embd, most=64)}"
            )
        if self.norm not in NORMS:
            raise ValueError(f"norm={self.norm!r}: use 'post' (GPT-1) or 'pre' (GPT-2)")
        if not isinstance(self.n_expert, int) or self.n_expert < 0:
            raise ValueError(
                f"n_expert must be a whole number ≥ 0 (0: dense), got {self.n_expert!r}"
            )
        if self.n_expert and not 1 <= self.expert_top_k <= self.n_expert:
            raise ValueError(
                f"expert_top_k={self.expert_top_k}: each token runs through 1 to n_expert="
                f"{self.n_expert} experts"
            )
        if not self.rope_factor >= 1 or (self.rope_scaling == "none") != (self.rope_factor == 1):
            raise ValueError(
                f"rope_scaling={self.rope_scaling!r} with rope_factor={self.rope_factor}: a "
                "scaling stretches the context by a factor > 1, and 'none' needs rope_factor=1"
            )
        if not self.norm_eps > 0:
            raise ValueError(f"norm_eps must be > 0, got {self.norm_eps}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        for name, allowed in (
            ("norm_type", NORM_TYPES),
            ("mlp", MLPS),
            ("positions", POSITIONS),
            ("rope_scaling", ROPE_SCALINGS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}: use one of {allowed}")
        if not isinstance(self.mlp_hidden, int) or self.mlp_hidden < 0:
            raise ValueError(
                f"mlp_hidden must be a whole number ≥ 0 (0: the default width), got "
                f"{self.mlp_hidden!r}"
            )
        if self.mlp == "gelu" and self.mlp_hidden not in (0, 4 * self.n_embd):
            raise ValueError(
                f"mlp_hidden={self.mlp_hidden}: GPT's GELU MLP is 4·n_embd = {4 * self.n_embd} "
                "wide; leave mlp_hidden at 0, or use mlp='swiglu'"
            )
        if not isinstance(self.n_kv_head, int) or self.n_kv_head < 0:
            raise ValueError(
                f"n_kv_head must be a whole number ≥ 0 (0: n_head), got {self.n_kv_head!r}"
            )
        if self.n_head % self.kv_heads:
            raise ValueError(
                f"n_head={self.n_head} is not a multiple of n_kv_head={self.n_kv_head}: each "
                f"key/value head serves a group of query heads; try n_kv_head in "
                f"{divisors(self.n_head)}"
            )
        if self.positions == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(
                f"RoPE rotates pairs of features, and a head of n_embd / n_head = "
                f"{self.n_embd // self.n_head} has an odd number: choose an even head size"
            )
        if not isinstance(self.local_window, int) or self.local_window < 0:
            raise ValueError(
                f"local_window must be a whole number ≥ 0 (0: every block dense), got "
                f"{self.local_window!r}"
            )

    def banded(self, layer: int) -> bool:
        """Whether block ``layer`` (from 0) is locally banded: GPT-3 alternates dense and
        banded blocks, dense first, when ``local_window`` > 0."""
        return self.local_window > 0 and layer % 2 == 1

    @property
    def kv_heads(self) -> int:
        """The number of key/value heads: ``n_kv_head``, or ``n_head`` when it is 0."""
        return self.n_kv_head or self.n_head

    @property
    def hidden(self) -> int:
        """The feed-forward layer's width: ``mlp_hidden``, or the default of the ``mlp``."""
        if self.mlp_hidden:
            return self.mlp_hidden
        return swiglu_hidden(self.n_embd) if self.mlp == "swiglu" else 4 * self.n_embd

    @property
    def rope(self) -> tuple[float, float]:
        """RoPE's (base, position divisor) after the scaling (chapter 10): position interpolation
        divides positions by the factor (Chen et al., 2023); NTK-aware scaling raises the base
        by factor^(D / (D - 2)) instead, stretching the slow pairs and keeping the fast ones."""
        if self.rope_scaling == "linear":
            return self.rope_base, self.rope_factor
        if self.rope_scaling == "ntk":
            D = self.n_embd // self.n_head
            return self.rope_base * self.rope_factor ** (D / (D - 2)), 1.0
        return self.rope_base, 1.0

    @property
    def padded_vocab_size(self) -> int:
        return math.ceil(self.vocab_size / self.pad_vocab_to) * self.pad_vocab_to

    @classmethod
    def preset(cls, name: str, **overrides) -> GPTConfig:
        """A named configuration, e.g. ``GPTConfig.preset("gpt1")``, with fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"no preset {name!r}; presets: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


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
    A ``banded`` block attends to the last ``config.local_window`` positions only (GPT-3)."""

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
        self.ln2 = make_norm(config)
        self.mlp = make_mlp(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None) -> torch.Tensor:
        # (B, T, C) -> (B, T, C); the cache (chapter 9) holds the earlier tokens' keys and values
        if self.pre_ln:
            x = x + self.drop(self.attend(self.ln1(x), cache=cache))
            return x + self.mlp(self.ln2(x))
        x = self.ln1(x + self.drop(self.attend(x, cache=cache)))
        return self.ln2(x + self.mlp(x))

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
        """Write ``path/config.json`` and ``path/model.safetensors`` (with ``metadata``), each
        atomically, then ``path/manifest.json`` with their SHA-256: once it is there, the folder
        is complete, and :meth:`load` can tell a damaged file from a good one."""
        from safetensors.torch import save_file

        path = Path(path)
        config = json.dumps(dataclasses.asdict(self.config), indent=2)
        tied = "lm_head.weight"  # the same tensor as wte.weight: stored once
        state = {k: v.contiguous() for k, v in self.state_dict().items() if k != tied}
        write_text(path / "config.json", config)
        atomic_write(path / "model.safetensors", lambda tmp: save_file(state, tmp, metadata))
        write_manifest(path / SAVED_MANIFEST, ["config.json", "model.safetensors"])

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> GPT:
        """A model saved with :meth:`save`, its files verified first (no pickle is ever read).

        Raises :class:`~gptbook.files.DamagedFile` naming a file that is missing or altered.
        """
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path} is not a folder written by GPT.save()")
        read_manifest(path / SAVED_MANIFEST, fix="save the model again (GPT.save)")
        try:
            config = GPTConfig(**json.loads((path / "config.json").read_text(encoding="utf-8")))
        except (ValueError, TypeError) as err:  # verified, yet not a config: another program's
            raise ValueError(f"{path / 'config.json'} is not a GPTConfig: {err}") from None
        model = cls(config)
        state = load_file(str(path / "model.safetensors"), device=str(device))
        state["lm_head.weight"] = state["wte.weight"]
        model.load_state_dict(state)
        return model.to(device)
