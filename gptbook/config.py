"""The shape of a GPT: :class:`GPTConfig`, its checks, and the named sizes (presets).

Introduced in chapter 5 (GPT-1's shape and the book's small sizes), with GPT-2's four sizes
(chapter 7), GPT-3's eight (chapter 8) and, in chapter 10, the switches of today's LLMs (RMSNorm,
SwiGLU, RoPE, grouped-query attention, experts), the book's Llama-style sizes and published
Llama and Mixtral shapes. :class:`gptbook.model.GPT` builds a model from a config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .checks import flag, number, whole
from .layers import swiglu_hidden

NORMS = ("post", "pre")
#: Chapter 10's switches: the norm layer, the feed-forward layer, how positions enter.
NORM_TYPES = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu", "none")  # "none": attention-only blocks (chapter 8's induction heads)
POSITIONS = ("learned", "rope")
#: Which blocks ``local_window`` bands: every other one, from the second (GPT-3), or the first
#: only (chapter 8's induction heads: a first layer that can see the previous token and no more).
BANDED_BLOCKS = ("odd", "first")
ROPE_SCALINGS = ("none", "linear", "ntk")

#: GPT-2's vocabulary: 50,000 merges, 256 bytes and ``<|endoftext|>`` (chapter 2).
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
#: Chapter 10: published models built from these parts, as their papers and released configs
#: give them: n_layer, n_head, n_embd, n_kv_head, the SwiGLU width, the vocabulary, the context
#: and the RoPE base. Mixtral 8x7B also has 8 experts, 2 per token. Their parameter counts by
#: :func:`gptbook.sizes.param_counts` equal the released checkpoints' (the tests check this).
LLM_TABLE = {
    "llama2-7b": (32, 32, 4096, 32, 11_008, 32_000, 4096, 10_000.0),
    "llama2-70b": (80, 64, 8192, 8, 28_672, 32_000, 4096, 10_000.0),
    "llama3-8b": (32, 32, 4096, 8, 14_336, 128_256, 8192, 500_000.0),
    "llama3-70b": (80, 64, 8192, 8, 28_672, 128_256, 8192, 500_000.0),
    "mixtral-8x7b": (32, 32, 4096, 8, 14_336, 32_000, 32_768, 1_000_000.0),
}
for _name, (_L, _H, _d, _kv, _hidden, _V, _T, _base) in LLM_TABLE.items():
    PRESETS[_name] = dict(
        LLAMA_PARTS, n_layer=_L, n_head=_H, n_embd=_d, n_kv_head=_kv, mlp_hidden=_hidden,
        vocab_size=_V, block_size=_T, rope_base=_base, dropout=0.0,
    )  # fmt: skip
PRESETS["mixtral-8x7b"].update(n_expert=8, expert_top_k=2)


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
    banded_blocks: str = "odd"  # which blocks local_window bands: "odd" (GPT-3) or "first"
    # chapter 10: what today's LLMs changed (the defaults keep GPT's choices)
    norm_type: str = "layernorm"  # or "rmsnorm"
    mlp: str = "gelu"  # or "swiglu"; "none": attention-only blocks (chapter 8)
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
    # the load-balancing loss's weight in the training loss: the Switch Transformer's 0.01 (the
    # Mixtral paper gives none; its released config has 0.02, transformers' default is 0.001)
    aux_loss_weight: float = 0.01

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
        for name in ("bias", "scaled_residual_init", "tie_embeddings", "qkv_bias"):
            flag(name, getattr(self, name))
        whole("expert_top_k", self.expert_top_k)
        number("rope_base", self.rope_base)
        if not self.rope_base > 0:
            raise ValueError(
                f"rope_base must be > 0 (RoPE's angles are position / base^(2i/d); Llama uses "
                f"10,000 or 500,000), got {self.rope_base}"
            )
        number("rope_factor", self.rope_factor)
        number("norm_eps", self.norm_eps)
        number("dropout", self.dropout)
        number("aux_loss_weight", self.aux_loss_weight, least=0)
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
        if self.mlp == "none" and (self.mlp_hidden or self.n_expert):
            raise ValueError(
                f"mlp='none' builds attention-only blocks, which have no feed-forward layer: "
                f"leave mlp_hidden (got {self.mlp_hidden}) and n_expert (got {self.n_expert}) "
                "at 0, or choose mlp='gelu' or 'swiglu'"
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
        if self.rope_scaling == "ntk" and self.n_embd // self.n_head <= 2:
            raise ValueError(
                f"rope_scaling='ntk' raises the base by factor^(D / (D - 2)), which needs a head "
                f"size D > 2; n_embd / n_head is {self.n_embd // self.n_head}: use fewer heads, "
                "or rope_scaling='linear'"
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
        if self.banded_blocks not in BANDED_BLOCKS:
            raise ValueError(
                f"banded_blocks={self.banded_blocks!r}: choose 'odd' (every other block, as "
                "GPT-3) or 'first' (the first block only)"
            )

    def banded(self, layer: int) -> bool:
        """Whether block ``layer`` (from 0) is locally banded when ``local_window`` > 0: GPT-3
        alternates dense and banded blocks, dense first (``banded_blocks="odd"``); chapter 8's
        induction-head models band the first block only (``"first"``)."""
        if self.banded_blocks == "first":
            return self.local_window > 0 and layer == 0
        return self.local_window > 0 and layer % 2 == 1

    @property
    def kv_heads(self) -> int:
        """The number of key/value heads: ``n_kv_head``, or ``n_head`` when it is 0."""
        return self.n_kv_head or self.n_head

    @property
    def hidden(self) -> int:
        """The feed-forward layer's width: ``mlp_hidden``, or the default of the ``mlp``; 0 for
        attention-only blocks (``mlp="none"``)."""
        if self.mlp == "none":
            return 0
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
        """The token table's rows: ``vocab_size`` rounded up to a multiple of ``pad_vocab_to``."""
        return math.ceil(self.vocab_size / self.pad_vocab_to) * self.pad_vocab_to

    @classmethod
    def preset(cls, name: str, **overrides) -> GPTConfig:
        """A named configuration, e.g. ``GPTConfig.preset("gpt1")``, with fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"no preset {name!r}; presets: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})
