"""Graders for chapter 8, *GPT-3: in-context learning, scaling laws, sparse attention, data*."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..attention import banded_mask, causal_mask
from ..prompting import k_shot_prompt
from ..scaling import PowerLaw, fit_power_law
from ._grading import Exercise

EXAMPLES = [("Q: 2+2?\nA:", " 4"), ("Q: 3+5?\nA:", " 8"), ("Q: 9-1?\nA:", " 8")]


def check_08_1(few_shot_prompt: Callable) -> None:
    """8.1 — ``few_shot_prompt(examples, prompt)``: GPT-3's prompt: each (prompt, answer)
    example written out, then the question's prompt, separated by a blank line ("\\n\\n")."""
    ex = Exercise("8.1")
    for k in (3, 1, 0):
        want = k_shot_prompt(EXAMPLES[:k], "Q: 7+7?\nA:")
        got = ex.call(few_shot_prompt, list(EXAMPLES[:k]), "Q: 7+7?\nA:")
        ex.expect(isinstance(got, str), f"return a string, got {type(got).__name__}.", "join.")
        hint = "each example is its prompt followed by its answer; then the question, last."
        if got.replace("\n\n", "") == want.replace("\n\n", "") or "\n\n" not in got and k:
            hint = 'separate the examples and the question by a blank line: "\\n\\n".join(...).'
        elif k and EXAMPLES[0][1] not in got:
            hint = "write each example with its answer: prompt + answer."
        ex.expect(got == want, f"with {k} examples expected {want!r}, got {got!r}.", hint)
    ex.passed("k solved examples, then the question")


def check_08_2(fit_law: Callable) -> None:
    """8.2 — ``fit_law(x, y)``: the power law y = (scale / x) ** exponent through the points, fitted
    by least squares in log space; return ``(scale, exponent)``."""
    ex = Exercise("8.2")
    x = [1e3, 3e3, 1e4, 3e4, 1e5, 3e5]
    for law in (PowerLaw(8.8e13, 0.076), PowerLaw(2e4, 0.5)):
        noise = torch.randn(len(x), generator=ex.random, dtype=torch.float64) * 0.01
        y = [law(v) * float(n.exp()) for v, n in zip(x, noise)]
        want = fit_power_law(x, y)
        got = ex.call(fit_law, list(x), list(y))
        ex.expect(
            isinstance(got, tuple | list) and len(got) == 2,
            f"return (scale, exponent), got {type(got).__name__}.",
            "end with: return scale, exponent",
        )
        scale, exponent = (float(v) for v in got)
        hint = "fit log y = a + b·log x by least squares; exponent = -b, scale = exp(-a / b)."
        if abs(exponent + want.exponent) < 1e-3:
            hint = "the loss falls as x grows: the slope b is negative and exponent = -b."
        ex.expect(
            abs(exponent - want.exponent) < 1e-6 * max(1.0, want.exponent),
            f"expected the exponent {want.exponent:.6f}, got {exponent:.6f}.",
            hint,
        )
        ex.expect(
            abs(scale / want.scale - 1) < 1e-4,
            f"expected the scale {want.scale:.6g}, got {scale:.6g}.",
            "y = (scale / x)^α is log y = α·log scale - α·log x: the intercept is α·log scale.",
        )
    ex.passed("a line in log-log space, its slope the exponent")


def check_08_3(layer_masks: Callable) -> None:
    """8.3 — ``layer_masks(n_layer, T, window)``: GPT-3's attention pattern, one boolean (T, T)
    mask per layer: causal in the even layers (0, 2, …), causal and banded — the last
    ``window`` positions — in the odd ones."""
    ex = Exercise("8.3")
    for n_layer, T, window in [(4, 8, 3), (3, 6, 2)]:
        got = ex.call(layer_masks, n_layer, T, window)
        ex.expect(
            isinstance(got, list | tuple) and len(got) == n_layer,
            f"return one mask per layer ({n_layer}), got {type(got).__name__}"
            + (f" of length {len(got)}." if isinstance(got, list | tuple) else "."),
            "build a list: [mask for each layer].",
        )
        for layer, mask in enumerate(got):
            want = banded_mask(T, window) if layer % 2 else causal_mask(T)
            mask = ex.as_tensor(mask, f"the mask of layer {layer}")
            hint = (
                "odd layers see only the last `window` positions: distance 0 … window - 1."
                if layer % 2
                else "even layers are dense: every earlier position and itself (tril)."
            )
            if torch.equal(mask.bool(), want.T):
                hint = "row t is the query: it may see keys j ≤ t, so keep the lower triangle."
            ex.expect_equal(mask.bool(), want, f"layer {layer}'s mask is wrong", hint)
    ex.passed("dense, banded, dense, banded, …")


def check_08_4(minhash_similarity: Callable) -> None:
    """8.4 — ``minhash_similarity(a, b, perms)``: ``a`` and ``b`` are 1-D tensors of distinct
    shingle ids, ``perms`` (k, V) holds k random orderings of the V ids; return the share of the
    k orderings in which a's first id (the smallest perms value) equals b's."""
    ex = Exercise("8.4")
    V, k = 50, 200
    perms = torch.stack([torch.randperm(V, generator=ex.random) for _ in range(k)])  # (k, V)
    for a, b in [(range(0, 20), range(10, 30)), (range(0, 30), range(0, 30)), ((1, 2), (3, 4))]:
        a, b = torch.tensor(list(a)), torch.tensor(list(b))
        want = (perms[:, a].min(1).values == perms[:, b].min(1).values).double().mean().item()
        got = ex.scalar(minhash_similarity, a, b, perms)
        exact = len(set(a.tolist()) & set(b.tolist())) / len(set(a.tolist()) | set(b.tolist()))
        hint = "per ordering: the smallest perms value over the set, perms[:, a].min(dim=1)."
        if abs(got - exact) < 1e-6 and abs(want - exact) > 1e-6:
            hint = "that is the exact Jaccard similarity; estimate it from the k orderings."
        ex.expect(
            abs(got - want) < 1e-6,  # a share of k: steps of 1/k
            f"for a={a.tolist()[:4]}…, b={b.tolist()[:4]}… expected {want:.3f}, got {got:.3f}.",
            hint,
        )
    ex.passed("the share of orderings whose minimum agrees estimates the Jaccard similarity")
