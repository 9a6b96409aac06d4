"""Chapter 10's ablation: what each of LLaMA's changes to the GPT-2 block buys, measured.

Every arm starts from chapter 7's GPT-2 block (pre-LN, GELU, learned positions, biases, a tied
output layer, the scaled initialisation) and switches on one change, or all four of LLaMA's,
or LLaMA's with grouped-query attention or a mixture of experts. Every arm has the same shape
and the same token budget, and a SwiGLU layer's width is chosen so that the parameter count
matches the GPT-2 block's (:func:`gptbook.sizes.matched_width`). Each arm's learning rate is the
best of a sweep of :data:`LEARNING_RATES` (seed 0); the arm is then trained from the other
:data:`SEEDS` at that rate. Every run is cached by :mod:`gptbook.pretrained`
(``ablation-<arm>-<seed>-lr<i>``, ``i`` the rate's place in the sweep). :func:`effect` gives
each change's effect on the validation loss with its interval over the seeds.
"""

from __future__ import annotations

import dataclasses

from . import book, pretrained
from .checks import whole
from .finetune import mean_interval
from .model import GPTConfig
from .sizes import active_params, matched_width

#: The model every arm shares, at each scale: the chapter's characters, two blocks at quick scale.
SHAPE = {
    "quick": dict(block_size=64, n_layer=2, n_head=4, n_embd=64),
    "full": dict(block_size=256, n_layer=6, n_head=6, n_embd=384),
}
#: The training run every arm shares, but for its learning rate (:func:`chosen_rate`).
RUN = {
    "quick": dict(max_steps=1000, batch_size=32, warmup_steps=100, eval_interval=50),
    "full": dict(max_steps=2000, batch_size=64, warmup_steps=100, eval_interval=100),
}
if book.fast_dev_run():  # a check that every cell runs: 40 full-scale runs of a few sequences
    for _run in RUN.values():
        _run["batch_size"] = min(_run["batch_size"], book.fast_dev_run())
#: The learning rates each arm is tried at (seed 0), at each scale: the sweep.
LEARNING_RATES = {"quick": (3e-3, 1e-2, 3e-2), "full": (3e-4, 1e-3, 3e-3)}
#: The seeds of every arm: the spread of their results is the noise a change must clear.
SEEDS = (0, 1, 2)

LLAMA = dict(norm_type="rmsnorm", mlp="swiglu", positions="rope", bias=False, tie_embeddings=False)
#: Key/value heads of the GQA arm; experts, and experts per token, of the MoE arm.
N_KV_HEAD, N_EXPERT, TOP_K = 2, 4, 2
#: Each arm: its short name in the cache, and its changes to the GPT-2 block.
ARMS = {
    "GPT-2 block": ("gpt2", {}),
    "+ RMSNorm": ("rmsnorm", dict(norm_type="rmsnorm")),
    "+ SwiGLU": ("swiglu", dict(mlp="swiglu")),
    "+ RoPE": ("rope", dict(positions="rope")),
    "+ no biases, untied": ("nobias", dict(bias=False, tie_embeddings=False)),
    "LLaMA (all four)": ("llama", LLAMA),
    "LLaMA + GQA": ("gqa", dict(LLAMA, n_kv_head=N_KV_HEAD)),
    "LLaMA + MoE": ("moe", dict(LLAMA, n_expert=N_EXPERT, expert_top_k=TOP_K)),
}
BASELINE = "GPT-2 block"


def base_config(scale: str | None = None) -> GPTConfig:
    """Chapter 7's GPT-2 block at the ablation's shape."""
    shape = SHAPE[scale or book.scale()]
    return GPTConfig(**shape, vocab_size=84, dropout=0.0, norm="pre", scaled_residual_init=True)


def arm_config(arm: str, scale: str | None = None) -> GPTConfig:
    """The model of ``arm``: the GPT-2 block with the arm's changes, a SwiGLU layer's width
    matched to the GPT-2 block's parameter count (a mixture of experts': its active count)."""
    if arm not in ARMS:
        raise ValueError(f"no ablation arm {arm!r}; the arms: {', '.join(ARMS)}")
    base = base_config(scale)
    config = dataclasses.replace(base, **ARMS[arm][1])
    return matched_width(config, active_params(base)) if config.mlp == "swiglu" else config


def _name(arm: str, seed: int, rate: int) -> str:
    if arm not in ARMS:
        raise ValueError(f"no ablation arm {arm!r}; the arms: {', '.join(ARMS)}")
    return f"ablation-{ARMS[arm][0]}-{seed}-lr{rate}"


def sweep(arm: str, scale: str | None = None) -> dict[float, dict]:
    """The training histories of ``arm`` from seed 0 at each learning rate of the sweep (trained
    once, quietly, then read from the cache), by rate."""
    rates = LEARNING_RATES[scale or book.scale()]
    return {
        lr: pretrained.history(_name(arm, 0, i), scale, progress=False)
        for i, lr in enumerate(rates)
    }


def chosen_rate(arm: str, scale: str | None = None) -> float:
    """The learning rate of ``arm``: the one of the sweep with the lowest final validation loss."""
    runs = sweep(arm, scale)
    return min(runs, key=lambda lr: runs[lr]["val"][-1])


def run_name(arm: str, seed: int = 0, scale: str | None = None) -> str:
    """The pretrained name of ``arm`` trained from ``seed`` at its :func:`chosen_rate` (which
    trains the sweep first if it is not cached)."""
    seed = whole("seed", seed, least=0)
    rate = LEARNING_RATES[scale or book.scale()].index(chosen_rate(arm, scale))
    name = _name(arm, seed, rate)
    pretrained.SPECS.setdefault(name, _spec(arm, seed, rate))  # another seed at that rate
    return name


def effect(arm: str, metric: str = "val") -> tuple[float, float, float]:
    """The change in the final ``metric`` that ``arm`` brings over the GPT-2 block: the mean of
    the paired differences (seed by seed: the same data order) and its 95% interval, ``(mean,
    low, high)``. Below 0 is better. The runs are trained once and cached."""
    differences = [
        pretrained.history(run_name(arm, s), progress=False)[metric][-1]
        - pretrained.history(run_name(BASELINE, s), progress=False)[metric][-1]
        for s in SEEDS
    ]  # each arm at its own chosen rate
    return mean_interval(differences)


def _spec(arm: str, seed: int, rate: int) -> dict:
    """A pretrained entry per scale: the arm's model and the shared run from ``seed``, at the
    sweep's learning rate number ``rate``."""
    entries = {}
    for scale in SHAPE:
        model = {"preset": "book-tiny", **dataclasses.asdict(arm_config(arm, scale))}
        train = dict(RUN[scale], seed=seed, lr=LEARNING_RATES[scale][rate])
        entries[scale] = dict(model=model, train=train)
    return entries


for _arm in ARMS:  # the sweep; the other seeds are registered at their arm's chosen rate
    for _rate in range(len(LEARNING_RATES["quick"])):
        pretrained.SPECS[_name(_arm, 0, _rate)] = _spec(_arm, 0, _rate)
