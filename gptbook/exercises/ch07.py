"""Graders for chapter 7, *GPT-2: zero-shot prompting, and the real GPT-2*."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..hf import stored_transposed, weight_names
from ..model import Block, GPTConfig
from ..sizes import flops_per_token
from ._grading import Exercise


def check_07_1(pre_ln_block: Callable) -> None:
    """7.1 — ``pre_ln_block(x, block)``: GPT-2's block from the block's parts,
    x + Attention(LN1(x)), then + MLP(LN2(·)). A pre-LN block of width 16 on x (2, 6, 16)."""
    ex = Exercise("7.1")
    torch.manual_seed(7)
    block = Block(GPTConfig(n_embd=16, n_head=2, dropout=0.0, norm="pre")).eval()
    post = Block(GPTConfig(n_embd=16, n_head=2, dropout=0.0, norm="post")).eval()
    post.load_state_dict(block.state_dict())  # the same weights, LayerNorm after the sum
    x = torch.randn(2, 6, 16)
    with torch.no_grad():
        got = ex.tensor(pre_ln_block, x, block)
        want, post_ln = block(x), post(x)
    ex.expect_shape(got, x.shape, "the block's output", "every part keeps (B, T, n_embd).")
    if torch.allclose(got.double(), post_ln.double(), atol=1e-5):
        ex.fail(
            "this is GPT-1's post-LN block: LN(x + Attention(x)).",
            "in GPT-2 the LayerNorm comes first, inside the branch: x + block.attn(block.ln1(x)).",
        )
    ex.expect_close(
        got,
        want,
        "the output differs from h + MLP(LN2(h)) with h = x + Attention(LN1(x))",
        "normalise the input of each sub-layer, not the sum; the residual adds the "
        "un-normalised x.",
        atol=1e-5,
    )
    ex.passed("pre-LN: normalise the branch, keep the residual stream as it is")


#: (vocab_size, block_size, n_layer, n_embd, T): GPT-2 small and XL at full context, a small one.
FLOP_CASES = [(50_257, 1024, 12, 768, 1024), (50_257, 1024, 48, 1600, 512), (84, 64, 2, 64, 64)]


def check_07_2(training_flops: Callable) -> None:
    """7.2 — ``training_flops(vocab_size, block_size, n_layer, n_embd, T)``: a GPT-2 model's
    training FLOPs per token at context T: 6 per weight (the position table left out, the tied
    output layer in) plus attention's 6·n_layer·T·n_embd."""
    ex = Exercise("7.2")
    for V, block_size, L, d, T in FLOP_CASES:
        config = GPTConfig.preset(
            "gpt2", vocab_size=V, block_size=block_size, n_layer=L, n_head=1, n_embd=d
        )
        want = flops_per_token(config, T)
        got = ex.scalar(training_flops, V, block_size, L, d, T)
        weights = (want - 6 * L * T * d) // 6
        hints = {
            want // 3: "that is the forward pass only: the backward pass costs twice as much.",
            want - 6 * L * T * d: "add attention's scores and weighted sum: 6·n_layer·T·n_embd.",
            want + 6 * block_size * d: "the position table is a lookup, not a product: leave out "
            "block_size·n_embd.",
            want - 12 * d: "GPT-2 has a final LayerNorm after the last block: 2·n_embd more "
            "weights.",
        }
        ex.expect(
            got == want,
            f"for vocab_size={V:,}, n_layer={L}, n_embd={d}, T={T} expected {want:,} FLOPs per "
            f"token, got {got:,.0f}.",
            hints.get(
                round(got),
                f"count the weights first ({weights:,} here): V·d, then per block 12·d² + 13·d, "
                "then the final LayerNorm's 2·d.",
            ),
        )
    ex.passed("6 FLOPs per weight and 6·n_layer·T·n_embd for attention")


def check_07_3(convert: Callable) -> None:
    """7.3 — ``convert(name, weight)``: a Hugging Face GPT-2 weight as the book's model holds it,
    ``(book_name, tensor)``: names from :func:`gptbook.hf.weight_names`, Conv1D weights
    transposed."""
    ex = Exercise("7.3")
    ours_of = {theirs: ours for ours, theirs in weight_names(2).items()}
    shapes = {"wte.weight": (10, 8), "wpe.weight": (6, 8), "h.1.attn.c_attn.weight": (8, 24)}
    shapes |= {"h.0.attn.c_attn.bias": (24,), "h.1.mlp.c_proj.weight": (32, 8)}
    shapes |= {"h.0.ln_2.weight": (8,), "ln_f.bias": (8,), "h.0.mlp.c_fc.weight": (8, 32)}
    for theirs, shape in shapes.items():
        weight = torch.randn(shape, generator=ex.random)
        ours = ours_of[theirs]
        want = weight.t() if stored_transposed(ours) else weight
        got = ex.call(convert, theirs, weight.clone())
        ex.expect(
            isinstance(got, tuple | list) and len(got) == 2,
            f"return (book_name, tensor), got {type(got).__name__}.",
            "end with: return name, weight",
        )
        name, tensor = got
        ex.expect(
            name == ours,
            f"{theirs!r} is {ours!r} in the book's model, got {name!r}.",
            "h.{i} becomes blocks.{i}; c_attn → attn.qkv, c_proj → proj, c_fc → mlp.fc, "
            "ln_1 → ln1; wpe.weight → wpe.table.weight.",
        )
        tensor = ex.as_tensor(tensor, f"the tensor of {theirs}")
        transpose = "transpose it: " if stored_transposed(ours) else "do not transpose it: "
        ex.expect_shape(
            tensor,
            want.shape,
            f"{ours}",
            transpose + "only Conv1D weights (attention's and the MLP's matrices) are stored "
            "(in, out); biases, LayerNorms and embeddings are as nn.Linear keeps them.",
        )
        ex.expect_close(tensor, want, f"the values of {ours} moved", "only transpose: .t()")
    ex.passed("names mapped, Conv1D weights transposed, nothing else changed")


def check_07_4(option_log_likelihood: Callable) -> None:
    """7.4 — ``option_log_likelihood(log_probs, ids, n_prompt)``: ``ids`` (T,) is a prompt of
    ``n_prompt`` tokens followed by an option, ``log_probs`` (T, V) the model's log-probabilities
    at each position; return the option's log-likelihood, the sum over its tokens."""
    ex = Exercise("7.4")
    g = ex.random
    for T, n_prompt in [(9, 5), (6, 1), (7, 6)]:
        log_probs = torch.randn(T, 13, generator=g).log_softmax(-1)
        ids = torch.randint(13, (T,), generator=g)
        positions = torch.arange(n_prompt, T)
        want = log_probs[positions - 1, ids[positions]].sum().item()
        got = ex.scalar(option_log_likelihood, log_probs, ids, n_prompt)
        same_position = log_probs[positions, ids[positions]].sum().item()
        mean = want / (T - n_prompt)
        hint = "position t - 1 predicts token t: add log_probs[t - 1, ids[t]] for t ≥ n_prompt."
        if abs(got - same_position) < 1e-5:
            hint = "log_probs[t] predicts the token after t, not token t: use log_probs[t - 1]."
        elif abs(got - mean) < 1e-5 and T - n_prompt > 1:
            hint = "that is the mean per token; return the sum."
        ex.expect(
            abs(got - want) < 1e-5,
            f"with {T} tokens of which {n_prompt} are the prompt expected {want:.4f}, "
            f"got {got:.4f}.",
            hint,
        )
    ex.passed("the sum of log p(option token | everything before it)")
