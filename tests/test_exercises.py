"""gptbook.exercises: graders accept right answers and explain wrong ones."""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
from collections import Counter
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gptbook import data, exercises
from gptbook.exercises import ExerciseFailed
from gptbook.exercises._grading import Exercise

# --- Right answers: the notebooks' solutions (book/*.ipynb), with the package's parameter names.


def longest_work(dataset):
    return max(dataset, key=lambda row: len(row["text"]))["title"]


def top_chars():
    return Counter(data.text("train")).most_common(5)


def eval_windows(ids, block_size):
    n = (len(ids) - 1) // block_size
    x = ids[: n * block_size].view(n, block_size)
    y = ids[1 : n * block_size + 1].view(n, block_size)
    return x, y


def bigram_counts(ids, vocab_size):
    pairs = ids[:-1] * vocab_size + ids[1:]
    return torch.bincount(pairs, minlength=vocab_size * vocab_size).view(vocab_size, vocab_size)


def generate_tokens(model, idx, max_new_tokens, temperature, position=-1):
    for _ in range(max_new_tokens):
        logits = model(idx)[0][:, position, :]
        if temperature == 0:
            next_id = logits.argmax(dim=-1, keepdim=True)
        else:
            next_id = torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1)
        idx = torch.cat([idx, next_id], dim=1)
    return idx


def remask(tokens, confidence, n_mask, mask_id, largest=False):
    out = tokens.clone()
    for row in range(tokens.shape[0]):
        order = torch.argsort(confidence[row], descending=largest)
        out[row, order[:n_mask]] = mask_id
    return out


def speculative_parts(p, q):
    accept = torch.clamp(p / q, max=1.0)
    residual = torch.clamp(p - q, min=0)
    return accept, residual / residual.sum()


def get_pair_counts(ids):
    counts = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge_pair(ids, pair, new_id, skip=2):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += skip
        else:
            out.append(ids[i])
            i += 1
    return out


def one_hot_lookup(ids, weight):
    return F.one_hot(ids, weight.shape[0]).to(weight.dtype) @ weight


def tie(embedding, head):
    head.weight = embedding.weight


def sinusoidal_table(T, d, swap=False):
    position = torch.arange(T, dtype=torch.float64)[:, None]
    omega = 10_000 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    table = torch.zeros(T, d, dtype=torch.float64)
    table[:, int(swap) :: 2] = torch.sin(position * omega)
    table[:, 1 - int(swap) :: 2] = torch.cos(position * omega)
    return table


def rope(x, positions, sign=1.0):
    D = x.shape[-1]
    omega = 10_000 ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    theta = positions.double()[:, None] * omega
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * theta.cos() - sign * b * theta.sin()
    out[..., 1::2] = sign * a * theta.sin() + b * theta.cos()
    return out


def rotation_for_offset(k, d):
    M = torch.zeros(d, d, dtype=torch.float64)
    for i in range(d // 2):
        angle = torch.tensor(k * 10_000 ** (-2 * i / d), dtype=torch.float64)
        M[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.stack(
            [torch.stack([angle.cos(), -angle.sin()]), torch.stack([angle.sin(), angle.cos()])]
        )
    return M


class PositionTable(nn.Module):
    """Exercise 3.4's solution; the arguments after ``d`` make the typical mistakes."""

    def __init__(
        self, block_size, d, error=ValueError, message="block_size={}", extra=0, detach=False
    ):
        super().__init__()
        self.block_size, self.error, self.message = block_size, error, message
        self.weight = nn.Parameter(torch.randn(block_size + extra, d) * 0.02)
        self.detach = detach

    def forward(self, T):
        if T > self.block_size and self.error is not None:
            raise self.error(self.message.format(self.block_size))
        return self.weight[:T].detach() if self.detach else self.weight[:T]


def make_table(block_size, d):
    return PositionTable(block_size, d)


def causal(T):
    i = torch.arange(T)
    return i[None, :] <= i[:, None]


def attend(q, k, v, mask=None, scale=True, dim=-1):
    scores = q @ k.T / (q.shape[-1] ** 0.5 if scale else 1.0)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=dim) @ v


def split_heads(x, n_head):
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)


def merge_heads(x):
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)


def banded(T, width):
    i = torch.arange(T)
    distance = i[:, None] - i[None, :]
    return (distance >= 0) & (distance < width)


def post_ln_block(x, block):
    h = block.ln1(x + block.attn(x))
    return block.ln2(h + block.mlp(h))


def schedule(step, max_steps, warmup_steps, lr, min_lr_ratio):
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min((step - warmup_steps) / max(1, max_steps - warmup_steps), 1.0)
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def count_parameters(vocab_size, block_size, n_layer, n_embd):
    d = n_embd
    per_block = (4 * d * d + 4 * d) + (8 * d * d + 5 * d) + 4 * d
    return vocab_size * d + block_size * d + n_layer * per_block


def batch_loss(logits, targets):
    log_probs = torch.log_softmax(logits, dim=-1)
    return -log_probs.gather(-1, targets[..., None]).mean()


def entailment_input(premise, hypothesis, special, max_len):
    room = max_len - len(hypothesis) - 3
    premise = premise[max(0, len(premise) - room) :]
    return [special.start, *premise, special.delim, *hypothesis, special.extract]


def combined_loss(task_logits, labels, lm_logits, lm_targets):
    task = F.cross_entropy(task_logits, labels)
    lm = F.cross_entropy(lm_logits.flatten(0, 1), lm_targets.flatten(), ignore_index=-100)
    return task + 0.5 * lm


def choice_probabilities(scores, n_choices):
    return scores.view(-1, n_choices).softmax(-1)


def extract_states(hidden, lengths):
    return hidden[torch.arange(len(hidden)), lengths - 1]


def pre_ln_block(x, block):
    x = x + block.attn(block.ln1(x))
    return x + block.mlp(block.ln2(x))


def training_flops(vocab_size, block_size, n_layer, n_embd, T):
    d = n_embd
    weights = vocab_size * d + n_layer * (12 * d * d + 13 * d) + 2 * d
    return 6 * weights + 6 * n_layer * T * d


HF_TO_BOOK = {"h": "blocks", "ln_1": "ln1", "ln_2": "ln2", "c_attn": "qkv", "c_proj": "proj"}
HF_TO_BOOK |= {"c_fc": "fc", "wpe": "wpe.table"}


def convert(name, weight):
    parts = [HF_TO_BOOK.get(p, p) for p in name.split(".")]
    conv1d = parts[-2] in ("qkv", "proj", "fc") and parts[-1] == "weight"
    return ".".join(parts), weight.t() if conv1d else weight


def option_log_likelihood(log_probs, ids, n_prompt):
    positions = torch.arange(n_prompt, len(ids))
    return log_probs[positions - 1, ids[positions]].sum()


def few_shot_prompt(examples, prompt):
    return "\n\n".join([p + a for p, a in examples] + [prompt])


def fit_law(x, y):
    log_x, log_y = torch.tensor(x).log(), torch.tensor(y).log()
    b = ((log_x - log_x.mean()) * (log_y - log_y.mean())).sum() / (
        (log_x - log_x.mean()) ** 2
    ).sum()
    a = log_y.mean() - b * log_x.mean()
    return math.exp(-a / b), -b.item()


def layer_masks(n_layer, T, window):
    i = torch.arange(T)
    distance = i[:, None] - i[None, :]
    dense, banded = distance >= 0, (distance >= 0) & (distance < window)
    return [banded if layer % 2 else dense for layer in range(n_layer)]


def minhash_similarity(a, b, perms):
    return (perms[:, a].min(1).values == perms[:, b].min(1).values).float().mean()


def top_k_filter(logits, k, keep=0, removed=float("-inf")):
    kth = logits.topk(k, dim=-1).values[..., -1:]
    if keep:  # a wrong answer: the k-th removed too
        return logits.masked_fill(logits <= kth, removed)
    return logits.masked_fill(logits < kth, removed)


def nucleus(logits, p, strict=False):
    probs, order = logits.softmax(-1).sort(dim=-1, descending=True)
    before = probs.cumsum(-1) - probs  # the mass of the likelier tokens
    drop = (probs.cumsum(-1) > p) if strict else (before >= p)
    drop[..., 0] = False
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def attend_with_cache(q, k, v, k_cache, v_cache, scale=True, self_too=True):
    k_all, v_all = torch.cat([k_cache, k], dim=2), torch.cat([v_cache, v], dim=2)
    keys, values = (k_all, v_all) if self_too else (k_cache, v_cache)
    scores = q @ keys.transpose(-2, -1) / (q.shape[-1] ** 0.5 if scale else 1.0)
    return scores.softmax(-1) @ values, k_all, v_all


def speculative_step(ps, qs, drafted, u, stop=True, residual=True):
    n = 0
    for i, token in enumerate(drafted.tolist()):
        if u[i] < min(1.0, (ps[i, token] / qs[i, token]).item()):
            n += 1
        elif stop:  # a wrong answer goes on testing (and counting) after a rejection
            break
    if n == len(drafted) or not residual:
        return n, ps[n]
    r = (ps[n] - qs[n]).clamp(min=0)
    return n, r / r.sum()


def rms_norm(x, weight, eps, centre=False, over=-1):
    if centre:  # a wrong answer: LayerNorm's centring
        x = x - x.mean(-1, keepdim=True)
    return x / torch.sqrt(x.pow(2).mean(over, keepdim=True) + eps) * weight


def swiglu(x, w_gate, w_up, w_down, act=F.silu, swap=False):
    gate, up = x @ w_gate.T, x @ w_up.T
    if swap:
        gate, up = up, gate
    return (act(gate) * up) @ w_down.T


def route(scores, k, renormalise=True):
    best, experts = scores.topk(k, dim=-1)
    if not renormalise:  # a wrong answer: the softmax over all experts, then the top k
        return scores.softmax(-1).gather(-1, experts), experts
    return best.softmax(-1), experts


def repeat_kv(kv, n_rep):
    return kv.repeat_interleave(n_rep, dim=1)


def sft_loss(logits, ids, mask, shift=True, reduction="mean"):
    if not shift:  # a wrong answer: the logits at t scoring token t
        return F.cross_entropy(logits[mask], ids[mask], reduction=reduction)
    keep = mask[:, 1:]
    return F.cross_entropy(logits[:, :-1][keep], ids[:, 1:][keep], reduction=reduction)


def bradley_terry(chosen, rejected):
    return -F.logsigmoid(chosen - rejected).mean()


def dpo(pc, pr, rc, rr, beta, reference=True):
    if not reference:  # a wrong answer: the policy's log-probabilities alone
        rc, rr = torch.zeros_like(rc), torch.zeros_like(rr)
    return -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()


def kl_penalty(logp, ref_logp, mask):
    return ((logp - ref_logp) * mask).sum(-1)


# The arguments of each grader when the answer is right (top_chars is a value: built lazily).
RIGHT: dict[str, Callable[[], tuple]] = {
    "0.1": lambda: (longest_work,),
    "0.2": lambda: (top_chars(),),
    "0.3": lambda: (eval_windows,),
    "1.1": lambda: (bigram_counts,),
    "1.2": lambda: (generate_tokens,),
    "1.3": lambda: (remask,),
    "1.4": lambda: (speculative_parts,),
    "2.1": lambda: (get_pair_counts,),
    "2.2": lambda: (merge_pair,),
    "2.3": lambda: (one_hot_lookup,),
    "2.4": lambda: (tie,),
    "3.1": lambda: (sinusoidal_table,),
    "3.2": lambda: (rope,),
    "3.3": lambda: (rotation_for_offset,),
    "3.4": lambda: (make_table,),
    "4.1": lambda: (causal,),
    "4.2": lambda: (attend,),
    "4.3": lambda: (split_heads, merge_heads),
    "4.4": lambda: (banded,),
    "5.1": lambda: (post_ln_block,),
    "5.2": lambda: (schedule,),
    "5.3": lambda: (count_parameters,),
    "5.4": lambda: (batch_loss,),
    "6.1": lambda: (entailment_input,),
    "6.2": lambda: (combined_loss,),
    "6.3": lambda: (choice_probabilities,),
    "6.4": lambda: (extract_states,),
    "7.1": lambda: (pre_ln_block,),
    "7.2": lambda: (training_flops,),
    "7.3": lambda: (convert,),
    "7.4": lambda: (option_log_likelihood,),
    "8.1": lambda: (few_shot_prompt,),
    "8.2": lambda: (fit_law,),
    "8.3": lambda: (layer_masks,),
    "8.4": lambda: (minhash_similarity,),
    "9.1": lambda: (top_k_filter,),
    "9.2": lambda: (nucleus,),
    "9.3": lambda: (attend_with_cache,),
    "9.4": lambda: (speculative_step,),
    "10.1": lambda: (rms_norm,),
    "10.2": lambda: (swiglu,),
    "10.3": lambda: (route,),
    "10.4": lambda: (repeat_kv,),
    "11.1": lambda: (sft_loss,),
    "11.2": lambda: (bradley_terry,),
    "11.3": lambda: (dpo,),
    "11.4": lambda: (kl_penalty,),
}


def grader(number: str) -> Callable:
    chapter, n = number.split(".")
    return getattr(exercises, f"check_{int(chapter):02d}_{n}")


def test_every_grader_has_a_right_answer():
    names = {name for name in exercises.__all__ if name.startswith("check_")}
    assert names == {grader(number).__name__ for number in RIGHT}


@pytest.mark.parametrize("number", list(RIGHT))
def test_right_answer_passes(number, capsys):
    grader(number)(*RIGHT[number]())
    out = capsys.readouterr().out
    assert out.startswith(f"✓ Exercise {number} passed: ") and out.count("\n") == 1


# --- Typical mistakes: (exercise, what the message must say, the wrong answer...).

WRONG = [
    # 0.1: the shortest work, the text instead of the title, an error, a value for a function
    (
        "0.1",
        "longest work is 'King Richard III'",
        lambda d: min(d, key=lambda r: len(r["text"]))["title"],
    ),
    ("0.1", "but the longest work is", lambda d: max(d, key=lambda r: len(r["text"]))["text"]),
    ("0.1", "raised ZeroDivisionError: division by zero", lambda d: 1 / 0),
    ("0.1", "expected a function, got str", "Hamlet"),
    # 0.3: one window, Y = X, overlapping windows, one tensor instead of two
    ("0.3", "must have shape", lambda ids, t: (ids[:t][None], ids[1 : t + 1][None])),
    ("0.3", "Y is wrong.*shifted .*entries differ", lambda ids, t: (eval_windows(ids, t)[0],) * 2),
    (
        "0.3",
        r"53 ids and block_size=5, X and Y must have shape \(10, 5\)",
        lambda ids, t: (ids[:-1].unfold(0, t, 1), ids[1:].unfold(0, t, 1)),
    ),
    ("0.3", r"return the 2 values \(X, Y\)", lambda ids, t: eval_windows(ids, t)[0]),
    # 1.1: rows and columns swapped, a wrap-around pair, the wrong size
    ("1.1", "is row i the previous token", lambda ids, V: bigram_counts(ids, V).T),
    (
        "1.1",
        "20 tokens hold 19 .* add up to 20",
        lambda ids, V: bigram_counts(torch.cat([ids, ids[:1]]), V),
    ),
    (
        "1.1",
        r"counts for vocab_size=3 should have shape \(3, 3\), got \(4, 4\)",
        lambda ids, V: bigram_counts(ids, V + 1),
    ),
    # 1.2: the first position's logits, only the new tokens, the temperature ignored
    ("1.2", "temperature 0", lambda *a: generate_tokens(*a, position=0)),
    (
        "1.2",
        r"should have shape \(3, 5\), got \(3, 4\)",
        lambda m, idx, n, t: generate_tokens(m, idx, n, t)[:, 1:],
    ),
    ("1.2", "at temperature 0.5", lambda m, idx, n, t: generate_tokens(m, idx, n, t and 1.0)),
    # 1.3: the most confident positions, one mask too many
    ("1.3", "LOWEST confidence", lambda *a: remask(*a, largest=True)),
    ("1.3", "exactly n_mask=0 masked", lambda t, c, n, m: remask(t, c, n + 1, m)),
    # 1.4: no min(1, ·), an unnormalised residual, a single value
    (
        "1.4",
        "accept is not the acceptance probability.*largest error",
        lambda p, q: (p / q, speculative_parts(p, q)[1]),
    ),
    ("1.4", "residual is not", lambda p, q: (speculative_parts(p, q)[0], (p - q).clamp(min=0))),
    (
        "1.4",
        r"return the 2 values \(accept, residual\), got Tensor\.",
        lambda p, q: speculative_parts(p, q)[0],
    ),
    # 2.1: pairs counted without overlaps, a list instead of a dict
    ("2.1", r"for ids \[1, 2, 3, 1, 2\] expected", lambda ids: Counter(zip(ids[::2], ids[1::2]))),
    ("2.1", "return a dict", lambda ids: list(zip(ids, ids[1:]))),
    # 2.2: merges that overlap, a merge done in place with nothing returned
    (
        "2.2",
        r"merging \(1, 2\) in \[1, 2, 3, 1, 2\] should give \[99, 3, 99\]",
        lambda *a: merge_pair(*a, skip=1),
    ),
    ("2.2", "got NoneType", lambda ids, pair, new_id: None),
    # 2.3: one_hot without V and dtype, the rows of the previous id, a transposed result
    ("2.3", "raised RuntimeError.*\nHint: .*V = weight.shape", lambda ids, w: F.one_hot(ids) @ w),
    (
        "2.3",
        r"must equal the rows weight\[ids\] \(largest error [\d.]+ at \(\d+, \d\)",
        lambda ids, w: one_hot_lookup(ids, w.roll(1, 0)),
    ),
    (
        "2.3",
        r"ids of shape \(5,\) should have shape \(5, 4\), got \(4, 5\)",
        lambda ids, w: one_hot_lookup(ids, w).T,
    ),
    # 2.4: a copy, no tying at all
    (
        "2.4",
        "very same Parameter",
        lambda e, h: setattr(h, "weight", nn.Parameter(e.weight.clone())),
    ),
    ("2.4", "not a copy", lambda e, h: None),
    # 3.1: sin and cos swapped, 10000^(-i/d)
    (
        "3.1",
        r"differs from sin/cos.*\(largest error [\d.]+ at \(\d+, \d+\)",
        lambda T, d: sinusoidal_table(T, d, swap=True),
    ),
    ("3.1", "differs from sin/cos", lambda T, d: sinusoidal_table(T, 2 * d)[:, :d]),
    # 3.2: rotating the wrong way, the positions ignored, half the features
    ("3.2", "starting at 0", lambda x, p: rope(x, p, sign=-1.0)),
    ("3.2", "starting at 20", lambda x, p: rope(x, torch.arange(len(p)))),
    (
        "3.2",
        r"rotated x should have shape \(2, 3, 7, 8\), got \(2, 3, 7, 4\)",
        lambda x, p: rope(x, p)[..., :4],
    ),
    # 3.3: the rotation the wrong way (transposed), the identity, half the rows
    (
        "3.3",
        r"for k = 1, PE\(p\) @ M is not PE\(p \+ k\)",
        lambda k, d: rotation_for_offset(k, d).T,
    ),
    ("3.3", "for k = 1", lambda k, d: torch.eye(d)),
    (
        "3.3",
        r"should have shape \(12, 12\), got \(6, 12\)",
        lambda k, d: rotation_for_offset(k, d)[:6],
    ),
    # 3.4: a tensor, a row too many, a detached copy, no limit, the wrong error, a vague error
    ("3.4", "return an nn.Module", lambda n, d: torch.zeros(n, d)),
    ("3.4", "yours has 36", lambda n, d: PositionTable(n, d, extra=1)),
    ("3.4", "does not depend on the parameters", lambda n, d: PositionTable(n, d, detach=True)),
    ("3.4", "must raise a ValueError", lambda n, d: PositionTable(n, d, error=None)),
    ("3.4", "raised IndexError", lambda n, d: PositionTable(n, d, error=IndexError)),
    (
        "3.4",
        "say what the limit is: your message was 'too long'",
        lambda n, d: PositionTable(n, d, message="too long"),
    ),
    # 4.1: the upper triangle, the diagonal left out, integers instead of booleans
    ("4.1", "for T = 4 the mask is wrong", lambda T: causal(T).T),
    (
        "4.1",
        r"for T = 1 .*first at \(0, 0\): got False, expected True",
        lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1),
    ),
    ("4.1", "return a boolean mask", lambda T: causal(T).int()),
    # 4.2: no scaling, the mask ignored, the softmax over the queries
    ("4.2", "not scaled", lambda q, k, v, m: attend(q, k, v, m, scale=False)),
    ("4.2", "with the causal mask", lambda q, k, v, m: attend(q, k, v)),
    (
        "4.2",
        r"differs from softmax\(q kᵀ / √d\) v \(largest error",
        lambda q, k, v, m: attend(q, k, v, m, dim=0),
    ),
    # 4.3: a view without the transpose, a merge without it, the head axis after time
    ("4.3", "head h must hold", lambda x, h: x.view(x.shape[0], h, x.shape[1], -1), merge_heads),
    ("4.3", "must give x back", split_heads, lambda x: x.reshape(x.shape[0], x.shape[2], -1)),
    (
        "4.3",
        r"should have shape \(2, 3, 5, 4\), got \(2, 5, 3, 4\)",
        lambda x, h: x.view(*x.shape[:2], h, -1),
        merge_heads,
    ),
    # 4.4: width + 1 positions, not causal
    ("4.4", "for T = 6, width = 1", lambda T, w: banded(T, w + 1)),
    (
        "4.4",
        "for T = 8, width = 3",
        lambda T, w: (torch.arange(T)[:, None] - torch.arange(T)).abs() < w,
    ),
    # 5.1: the LayerNorms in the wrong places, the residuals forgotten
    ("5.1", "differs from LN2", lambda x, b: x + b.mlp(b.ln2(x + b.attn(b.ln1(x))))),
    ("5.1", "LN2.*largest", lambda x, b: b.ln2(b.mlp(b.ln1(b.attn(x))))),
    # 5.2: the warmup off by one, no floor, a list
    (
        "5.2",
        r"at step 0 \(.*\) expected 0.1, got 0\.",
        lambda s, n, w, lr, r: lr * s / w if s < w else schedule(s, n, w, lr, r),
    ),
    (
        "5.2",
        "at step 55 .* expected 0.55, got 0.5",
        lambda s, n, w, lr, r: schedule(s, n, w, lr, 0.0),
    ),
    ("5.2", "should return one number", lambda *a: [schedule(*a)]),
    # 5.3: the head not tied, the position table forgotten, a fraction
    ("5.3", r"off by \+5,376", lambda V, T, L, d: count_parameters(V, T, L, d) + V * d),
    ("5.3", "off by -4,096", lambda V, T, L, d: count_parameters(V, T, L, d) - T * d),
    ("5.3", "whole number", lambda *a: count_parameters(*a) + 0.5),
    # 5.4: the sum, the positions' losses, the softmax over the wrong axis
    (
        "5.4",
        "not the mean cross-entropy",
        lambda lg, t: F.cross_entropy(lg.view(-1, 11), t.view(-1), reduction="sum"),
    ),
    (
        "5.4",
        r"got shape \(3, 5\)",
        lambda lg, t: F.cross_entropy(lg.transpose(1, 2), t, reduction="none"),
    ),
    (
        "5.4",
        "not the mean cross-entropy",
        lambda lg, t: -torch.log_softmax(lg, 1).gather(-1, t[..., None]).mean(),
    ),
    # 6.1: no truncation, the hypothesis cut instead, the delim forgotten, a tensor
    (
        "6.1",
        r"max_len=6 expected .*Hint: keep the special tokens",
        lambda p, h, s, n: [s.start, *p, s.delim, *h, s.extract],
    ),
    (
        "6.1",
        r"max_len=6 expected .*Hint: keep the special tokens",
        lambda p, h, s, n: [s.start, *p, s.delim, *h][: n - 1] + [s.extract],
    ),
    ("6.1", "Hint: start, the premise, delim", lambda p, h, s, n: [s.start, *p, *h, s.extract]),
    ("6.1", "return a list of token ids", lambda *a: torch.tensor(entailment_input(*a))),
    # 6.2: the task loss alone, the LM loss unweighted, the masked targets counted
    ("6.2", "task loss alone", lambda t, y, lg, lt: F.cross_entropy(t, y)),
    (
        "6.2",
        "expected L_task",
        lambda t, y, lg, lt: (
            F.cross_entropy(t, y)
            + F.cross_entropy(lg.flatten(0, 1), lt.flatten(), ignore_index=-100)
        ),
    ),
    (
        "6.2",
        "expected L_task",
        lambda t, y, lg, lt: (
            F.cross_entropy(t, y)
            + 0.5 * F.cross_entropy(lg.flatten(0, 1), lt.flatten().clamp(min=0))
        ),
    ),
    # 6.3: one softmax over everything, questions taken column-wise, the raw scores
    ("6.3", "shape", lambda s, n: s.softmax(0)),
    ("6.3", "softmax over its own answers", lambda s, n: s.view(n, -1).T.softmax(-1)),
    ("6.3", "softmax over its own answers", lambda s, n: s.view(-1, n)),
    # 6.4: the last position, the position after the extract, all positions
    ("6.4", "a pad in a right-padded batch", lambda h, n: h[:, -1]),
    ("6.4", "last real token", lambda h, n: h[torch.arange(len(h)), n.clamp(max=6)]),
    ("6.4", "shape", lambda h, n: h),
    # 7.1: GPT-1's block, no residual, the LayerNorm on the sum after the sub-layer
    (
        "7.1",
        "GPT-1's post-LN block",
        lambda x, b: b.ln2(b.ln1(x + b.attn(x)) + b.mlp(b.ln1(x + b.attn(x)))),
    ),
    ("7.1", "differs from h", lambda x, b: b.mlp(b.ln2(b.attn(b.ln1(x))))),
    ("7.1", "differs from h", lambda x, b: x + b.attn(b.ln1(x)) + b.mlp(b.ln2(x))),
    # 7.2: forward only, no attention, the position table counted, no final LayerNorm
    ("7.2", "forward pass only", lambda V, B, L, d, T: training_flops(V, B, L, d, T) // 3),
    (
        "7.2",
        "attention's scores",
        lambda V, B, L, d, T: training_flops(V, B, L, d, T) - 6 * L * T * d,
    ),
    ("7.2", "position table", lambda V, B, L, d, T: training_flops(V, B, L, d, T) + 6 * B * d),
    ("7.2", "final LayerNorm", lambda V, B, L, d, T: training_flops(V, B, L, d, T) - 12 * d),
    ("7.2", "count the weights first", lambda V, B, L, d, T: 6 * V * d),
    # 7.3: nothing transposed, everything transposed, a name left as it was, one value
    ("7.3", "transpose it", lambda n, w: (convert(n, w)[0], w)),
    ("7.3", "do not transpose it", lambda n, w: (convert(n, w)[0], w.t() if w.ndim == 2 else w)),
    ("7.3", "wpe.table.weight", lambda n, w: (n.replace("h.", "blocks."), convert(n, w)[1])),
    ("7.3", "return \\(book_name, tensor\\)", lambda n, w: convert(n, w)[1]),
    # 7.4: the same position, the prompt counted too, the mean
    (
        "7.4",
        "use log_probs\\[t - 1\\]",
        lambda lp, ids, n: lp[torch.arange(n, len(ids)), ids[n:]].sum(),
    ),
    (
        "7.4",
        "position t - 1 predicts",
        lambda lp, ids, n: lp[torch.arange(len(ids) - 1), ids[1:]].sum(),
    ),
    (
        "7.4",
        "mean per token",
        lambda lp, ids, n: option_log_likelihood(lp, ids, n) / (len(ids) - n),
    ),
    # 8.1: no blank line, the answers left out, the question first
    ("8.1", "blank line", lambda e, p: "\n".join([q + a for q, a in e] + [p])),
    ("8.1", "with its answer", lambda e, p: "\n\n".join([q for q, _ in e] + [p])),
    ("8.1", "then the question, last", lambda e, p: "\n\n".join([p] + [q + a for q, a in e])),
    # 8.2: the exponent's sign, a fit in linear space, the log of the scale
    ("8.2", "the slope b is negative", lambda x, y: (fit_law(x, y)[0], -fit_law(x, y)[1])),
    ("8.2", "expected the exponent", lambda x, y: (1.0, (y[0] - y[-1]) / (x[-1] - x[0]))),
    ("8.2", "expected the scale", lambda x, y: (math.log(fit_law(x, y)[0]), fit_law(x, y)[1])),
    # 8.3: all banded, banded first, the upper triangle, one mask
    ("8.3", "layer 0's mask is wrong", lambda n, T, w: [layer_masks(2, T, w)[1]] * n),
    ("8.3", "layer 0's mask is wrong", lambda n, T, w: layer_masks(n + 1, T, w)[1:]),
    ("8.3", "keep the lower triangle", lambda n, T, w: [m.T for m in layer_masks(n, T, w)]),
    ("8.3", "one mask per layer", lambda n, T, w: layer_masks(n, T, w)[0]),
    # 8.4: the maximum, the exact Jaccard, one ordering only
    ("8.4", "expected", lambda a, b, p: minhash_similarity(a, b, -p)),
    ("8.4", "exact Jaccard", lambda a, b, p: jaccard_of(a, b)),
    ("8.4", "expected", lambda a, b, p: float(p[0, a].min() == p[0, b].min())),
    # 9.1: the k-th removed too, zeros for -inf, probabilities, the smallest k kept
    ("9.1", "keeps 0 tokens, not 1", lambda lg, k: top_k_filter(lg, k, keep=1)),
    ("9.1", "got the logit 0", lambda lg, k: top_k_filter(lg, k, removed=0.0)),
    ("9.1", "returned probabilities", lambda lg, k: top_k_filter(lg, k).softmax(-1)),
    ("9.1", "the wrong tokens survive", lambda lg, k: smallest_k(lg, k)),
    # 9.2: the crossing token dropped, the unlikeliest kept, nothing removed
    ("9.2", "too few tokens", lambda lg, p: nucleus(lg, p, strict=True)),
    ("9.2", "the wrong tokens survive", lambda lg, p: lg),
    # 9.3: the new token forgotten, no scaling, the caches not grown, one value
    ("9.3", "attend to itself", lambda *a: attend_with_cache(*a, self_too=False)),
    ("9.3", "by √D", lambda *a: attend_with_cache(*a, scale=False)),
    ("9.3", "append the new key", lambda q, k, v, kc, vc: (q, kc, vc)),
    ("9.3", "return the 3 values", lambda *a: attend_with_cache(*a)[0]),
    # 9.4: testing on after a rejection, p instead of the residual, one value
    ("9.4", "never tested", lambda *a: speculative_step(*a, stop=False)),
    ("9.4", r"residual max\(p - q, 0\)", lambda *a: speculative_step(*a, residual=False)),
    ("9.4", r"return \(n, dist\)", lambda *a: speculative_step(*a)[0]),
    # 10.1: LayerNorm, the sum of squares, no gain, the batch's mean, no eps
    ("10.1", "that is LayerNorm", lambda x, w, e: rms_norm(x, w, e, centre=True)),
    (
        "10.1",
        "mean of the squares",
        lambda x, w, e: x / (x.pow(2).sum(-1, keepdim=True) + e).sqrt() * w,
    ),
    ("10.1", "multiply by weight", lambda x, w, e: rms_norm(x, 1.0, e)),
    ("10.1", r"over the features \(dim=-1\)", lambda x, w, e: rms_norm(x, w, e, over=0)),
    ("10.1", "NaN or inf", lambda x, w, e: rms_norm(x, w, 0.0)),
    # 10.2: the gate on the wrong side, GLU's sigmoid, GELU, no up projection
    ("10.2", "not the up projection", lambda *a: swiglu(*a, swap=True)),
    ("10.2", "that is GLU", lambda *a: swiglu(*a, act=torch.sigmoid)),
    ("10.2", "GEGLU", lambda *a: swiglu(*a, act=F.gelu)),
    ("10.2", "multiply by the up", lambda x, g, u, d: F.silu(x @ g.T) @ d.T),
    # 10.3: not renormalised, raw scores, the worst experts, one value
    ("10.3", "renormalise over the k chosen", lambda s, k: route(s, k, renormalise=False)),
    ("10.3", "raw scores", lambda s, k: s.topk(k, dim=-1)),
    ("10.3", "not each token's k best", lambda s, k: route(-s, k)),
    ("10.3", r"return \(weights, experts\)", lambda s, k: route(s, k)[1]),
    # 10.4: tiled instead of interleaved, the wrong dimension
    ("10.4", "repeat_interleave", lambda kv, n: kv.repeat(1, n, 1, 1)),
    ("10.4", "along the heads", lambda kv, n: kv.repeat_interleave(n, dim=2)),
    # 11.1: no shift, every token, the sum
    ("11.1", "shift by one", lambda lg, i, m: sft_loss(lg, i, m, shift=False)),
    ("11.1", "loss on every token", lambda lg, i, m: sft_loss(lg, i, torch.ones_like(m))),
    ("11.1", "not their sum", lambda lg, i, m: sft_loss(lg, i, m, reduction="sum")),
    # 11.2: the sign, no log, the sum
    ("11.2", "the chosen reply should win", lambda c, r: bradley_terry(r, c)),
    ("11.2", "take the log", lambda c, r: -torch.sigmoid(c - r).mean()),
    ("11.2", "not the sum", lambda c, r: -F.logsigmoid(c - r).sum()),
    # 11.3: no reference, no beta, chosen and rejected swapped
    ("11.3", "subtract the reference", lambda *a: dpo(*a, reference=False)),
    ("11.3", "multiply the margin by beta", lambda pc, pr, rc, rr, b: dpo(pc, pr, rc, rr, 1.0)),
    ("11.3", "chosen reply's term comes first", lambda pc, pr, rc, rr, b: dpo(pr, pc, rr, rc, b)),
    # 11.4: the sign, no mask, the mean, one number
    ("11.4", "policy's log-probability first", lambda p, q, m: kl_penalty(q, p, m)),
    ("11.4", "multiply by the mask", lambda p, q, m: (p - q).sum(-1)),
    ("11.4", "not the mean", lambda p, q, m: kl_penalty(p, q, m) / m.sum(-1)),
    ("11.4", r"shape \(4,\)", lambda p, q, m: kl_penalty(p, q, m).sum()),
]


def smallest_k(logits, k):
    kth = logits.topk(k, dim=-1, largest=False).values[..., -1:]
    return logits.masked_fill(logits > kth, float("-inf"))


def jaccard_of(a, b):
    a, b = set(a.tolist()), set(b.tolist())
    return len(a & b) / len(a | b)


# 0.2's answer is a value, built when the test runs: counts off by one, another split, ...
WRONG_TOP_CHARS = [
    ("list of 5", lambda: top_chars()[:4]),
    ("training split", lambda: Counter(data.text("val")).most_common(6)[1:]),
    (r"some counts are not: ' ' has [\d,]+, not", lambda: [(c, n + 1) for c, n in top_chars()]),
    (r"\(character, count\) pairs", lambda: [c for c, _ in top_chars()]),
]


def assert_explained(number: str, args: tuple, says: str) -> None:
    """The grader of ``number`` refuses ``args`` with a message that names it, says ``says``
    and gives a hint."""
    with pytest.raises(ExerciseFailed) as failed:
        grader(number)(*args)
    message = str(failed.value)
    assert message.startswith(f"Exercise {number}: "), message
    assert re.search(r"\nHint: \S", message), f"no hint in: {message}"
    assert re.search(says, message, re.S), f"{says!r} not in: {message}"


def test_every_grader_has_wrong_answers():
    assert {case[0] for case in WRONG} | {"0.2"} == set(RIGHT)


@pytest.mark.parametrize("case", WRONG, ids=[f"{c[0]}-{i}" for i, c in enumerate(WRONG)])
def test_wrong_answer_is_explained(case, capsys):
    number, says, *args = case
    assert_explained(number, tuple(args), says)
    assert "passed" not in capsys.readouterr().out


@pytest.mark.parametrize(("says", "answer"), WRONG_TOP_CHARS)
def test_wrong_top_chars_are_explained(says, answer):
    assert_explained("0.2", (answer(),), says)


# --- The notebooks' own solution cells pass, printing the lines their outputs show.


def _exercise_cells(path):
    cells = json.loads(path.read_text())["cells"]
    for cell in cells:
        nbgrader = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] == "code" and (nbgrader.get("solution") or nbgrader.get("grade")):
            yield "".join(cell["source"]), nbgrader.get("grade", False), cell.get("outputs", [])


@pytest.mark.parametrize("chapter", range(12))
def test_notebook_solutions_pass(root, chapter):
    (path,) = (root / "book").glob(f"{chapter:02d}_*.ipynb")
    namespace = {"torch": torch, "F": torch.nn.functional, "data": data, "math": math}
    namespace["exercises"] = exercises
    graded = 0
    for source, is_grade, outputs in _exercise_cells(path):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(source, f"{path.name}", "exec"), namespace)
        if is_grade:
            graded += 1
            committed = "".join(
                "".join(o.get("text", "")) for o in outputs if o.get("name") == "stdout"
            )
            assert printed.getvalue().startswith("✓ Exercise"), printed.getvalue()
            if committed:  # the committed output shows the same success line
                assert printed.getvalue() == committed
    assert graded >= 3


# --- The helper every grader uses.


def test_helper_refuses_a_non_callable():
    with pytest.raises(ExerciseFailed, match=r"^Exercise 9\.9: expected a function, got int\.\n"):
        Exercise("9.9").call(42)
    with pytest.raises(ExerciseFailed, match=r"Hint: pass the function itself"):
        Exercise("9.9").call(torch.zeros(3))


def test_helper_reports_the_readers_exception():
    def answer(items):
        return items[5]

    with pytest.raises(ExerciseFailed) as failed:
        Exercise("9.9").call(answer, [1, 2])
    message = str(failed.value)
    assert message.startswith(
        "Exercise 9.9: answer(...) raised IndexError: list index out of range"
    )
    assert "\nHint: " in message
    assert isinstance(failed.value.__cause__, IndexError)  # the reader's traceback is kept
    with pytest.raises(ExerciseFailed, match=r"raised KeyError.*\nHint: my hint"):
        Exercise("9.9").call(lambda: {}["x"], hint="my hint")
    assert Exercise("9.9").call(lambda a, b: a + b, 2, 3) == 5


def test_helper_tensor_and_number():
    ex = Exercise("9.9")
    got = ex.tensor(lambda: [[1, 2], [3, 4]], dtype=torch.float64)
    assert got.dtype == torch.float64 and got.shape == (2, 2)
    with pytest.raises(ExerciseFailed, match=r"what <lambda> returned should be a tensor, got str"):
        ex.tensor(lambda: "abc")
    with pytest.raises(ExerciseFailed, match=r"should be a tensor, got NoneType.*\nHint: return"):
        ex.tensor(lambda: None)
    x, y = ex.tensors(lambda: ([1], torch.ones(2)), names=("X", "Y"))
    assert x.tolist() == [1] and y.tolist() == [1.0, 1.0]
    with pytest.raises(
        ExerciseFailed, match=r"return the 2 values \(X, Y\), got tuple of length 3"
    ):
        ex.tensors(lambda: (1, 2, 3), names=("X", "Y"))
    with pytest.raises(ExerciseFailed, match=r"Y should be a tensor, got str"):
        ex.tensors(lambda: (1, "y"), names=("X", "Y"))
    assert ex.scalar(lambda: torch.tensor([2.5])) == 2.5
    with pytest.raises(ExerciseFailed, match=r"<lambda> should return one number, got list"):
        ex.scalar(lambda: [1, 2])


def test_helper_shape_mismatch():
    ex = Exercise("9.9")
    ex.expect_shape(torch.zeros(2, 3), (2, 3))
    with pytest.raises(
        ExerciseFailed, match=r"^Exercise 9\.9: the mask should have shape \(2, 3\), got \(3, 2\)\."
    ):
        ex.expect_shape(torch.zeros(3, 2), (2, 3), "the mask")
    with pytest.raises(ExerciseFailed, match=r"got a list with no shape\.\nHint: "):
        ex.expect_shape([1, 2], (2,))
    with pytest.raises(ExerciseFailed, match=r"\nHint: one row per token$"):
        ex.expect_shape(torch.zeros(1), (2,), hint="one row per token")
    # expect_close and expect_equal check the shape before the values
    with pytest.raises(ExerciseFailed, match=r"should have shape \(2,\), got \(3,\)"):
        ex.expect_close(torch.zeros(3), torch.zeros(2), "values differ")
    with pytest.raises(ExerciseFailed, match=r"x should have shape \(2,\), got \(3,\)"):
        ex.expect_equal(torch.zeros(3), torch.zeros(2), "values differ", what="x")


def test_helper_closeness_gives_the_largest_error():
    ex = Exercise("9.9")
    want = torch.zeros(2, 3)
    ex.expect_close(want + 1e-8, want, "never shown")
    got = want.clone()
    got[1, 2], got[0, 0] = 0.5, 0.1
    with pytest.raises(ExerciseFailed) as failed:
        ex.expect_close(got, want, "the table is off.", hint="check the sign")
    assert str(failed.value) == (
        "Exercise 9.9: the table is off (largest error 0.5 at (1, 2): got 0.5, expected 0)."
        "\nHint: check the sign"
    )
    ex.expect_close(got, want, "within atol", atol=0.6)
    with pytest.raises(ExerciseFailed, match=r"largest error inf at \(1,\): got nan"):
        ex.expect_close(torch.tensor([0.0, math.nan]), torch.zeros(2), "NaN")
    with pytest.raises(ExerciseFailed, match=r"a scalar \(largest error 1: got 3, expected 2\)\."):
        ex.expect_close(torch.tensor(3.0), torch.tensor(2.0), "a scalar")


def test_helper_equality_says_where():
    ex = Exercise("9.9")
    want = torch.arange(6).view(2, 3)
    ex.expect_equal(want.clone(), want, "never shown")
    got = want.clone()
    got[0, 1] = 5
    with pytest.raises(ExerciseFailed) as failed:
        ex.expect_equal(got, want, "wrong ids.", "shift by one")
    assert str(failed.value) == (
        "Exercise 9.9: wrong ids (1 of 6 entries differ; first at (0, 1): got 5, expected 1)."
        "\nHint: shift by one"
    )


def test_helper_expect_and_passed(capsys):
    ex = Exercise("9.9")
    ex.expect(True, "never shown")
    with pytest.raises(ExerciseFailed, match=r"^Exercise 9\.9: wrong\.$"):
        ex.expect(False, "wrong.")
    with pytest.raises(ExerciseFailed, match=r"^Exercise 9\.9: wrong\.\nHint: fix it$"):
        ex.fail("wrong.", "fix it")
    ex.passed("all good")
    ex.passed()
    assert capsys.readouterr().out == "✓ Exercise 9.9 passed: all good\n✓ Exercise 9.9 passed.\n"
    assert isinstance(ExerciseFailed("x"), AssertionError)
