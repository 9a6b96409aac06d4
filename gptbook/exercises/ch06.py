"""Graders for chapter 6, *GPT-1: fine-tuning with task-aware inputs*."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..finetune import LM_WEIGHT, SpecialTokens, build_inputs
from ..lm import IGNORE_INDEX
from ._grading import Exercise

#: The special tokens the graders use: three ids past a vocabulary of 50.
SPECIAL = SpecialTokens(start=50, delim=51, extract=52)


def check_06_1(entailment_input: Callable) -> None:
    """6.1 — ``entailment_input(premise, hypothesis, special, max_len)``: GPT-1's entailment
    sequence ``[start] premise [delim] hypothesis [extract]`` from two lists of token ids,
    the premise cut from the left when the whole is longer than ``max_len``."""
    ex = Exercise("6.1")
    cases = [([1, 2, 3], [4, 5], 16), ([7], [8, 9, 10], 6), ([1, 2, 3, 4, 5, 6], [7, 8], 7)]
    for premise, hypothesis, max_len in cases:
        example = {"premise": premise, "hypothesis": hypothesis}
        (want,) = build_inputs("entailment", example, list, SPECIAL, max_len)
        got = ex.call(entailment_input, list(premise), list(hypothesis), SPECIAL, max_len)
        ex.expect(
            isinstance(got, list | tuple) and all(isinstance(i, int) for i in got),
            f"return a list of token ids, got {type(got).__name__}.",
            "build one Python list: [special.start, *premise, ...].",
        )
        got = list(got)
        hint = (
            "keep the special tokens and the whole hypothesis; drop tokens from the start of "
            "the premise: premise[len(premise) - room:]."
            if len(want) == max_len and len(premise) + len(hypothesis) + 3 > max_len
            else "start, the premise, delim, the hypothesis, extract, in that order."
        )
        ex.expect(
            got == want,
            f"for premise={premise}, hypothesis={hypothesis}, max_len={max_len} expected "
            f"{want}, got {got}.",
            hint,
        )
    ex.passed("[start] premise [delim] hypothesis [extract], cut from the left")


def check_06_2(combined_loss: Callable) -> None:
    """6.2 — ``combined_loss(task_logits, labels, lm_logits, lm_targets)``: GPT-1's fine-tuning
    objective L_task + 0.5·L_LM, where targets equal to -100 are not predicted."""
    ex = Exercise("6.2")
    g = ex.random
    task_logits, labels = torch.randn(4, 3, generator=g), torch.tensor([0, 2, 1, 2])
    lm_logits = torch.randn(4, 6, 11, generator=g)
    lm_targets = torch.randint(11, (4, 6), generator=g)
    lm_targets[:, 4:] = IGNORE_INDEX  # pads and special tokens are not predicted
    want = F.cross_entropy(task_logits, labels) + LM_WEIGHT * F.cross_entropy(
        lm_logits.view(-1, 11), lm_targets.view(-1), ignore_index=IGNORE_INDEX
    )
    got = ex.scalar(combined_loss, task_logits, labels, lm_logits, lm_targets)
    task_only = F.cross_entropy(task_logits, labels).item()
    ex.expect(
        abs(got - task_only) > 1e-4,
        f"got the task loss alone ({got:.4f}).",
        "add half the language-modelling loss: the cross-entropy of lm_logits and lm_targets.",
    )
    ex.expect(
        abs(got - want.item()) < 1e-5,
        f"expected L_task + 0.5·L_LM = {want.item():.4f}, got {got:.4f}.",
        "flatten lm_logits to (B·T, V) and lm_targets to (B·T,), pass ignore_index=-100 so "
        "the masked targets are not counted, and weight the LM loss by 0.5.",
    )
    ex.passed("L = L_task + 0.5·L_LM")


def check_06_3(choice_probabilities: Callable) -> None:
    """6.3 — ``choice_probabilities(scores, n_choices)``: the head scores one sequence per
    answer, (B·N,) in question order; return each question's probabilities over its N
    answers, (B, N)."""
    ex = Exercise("6.3")
    scores = torch.randn(12, generator=ex.random)
    for n_choices in (4, 3):
        want = scores.view(-1, n_choices).softmax(-1)
        got = ex.tensor(choice_probabilities, scores, n_choices, dtype=torch.float64)
        ex.expect_shape(
            got,
            want.shape,
            f"the probabilities for {n_choices} answers",
            "one row per question: scores.view(-1, n_choices).",
        )
        ex.expect_close(
            got,
            want,
            "each question's probabilities differ from a softmax over its own answers",
            "the N sequences of a question are next to each other: view(-1, n_choices), then a "
            "softmax along the last dimension.",
            atol=1e-6,
        )
    ex.passed("one softmax per question over its answers")


def check_06_4(extract_states: Callable) -> None:
    """6.4 — ``extract_states(hidden, lengths)``: in a right-padded batch, hidden (B, T, C) and
    the number of real tokens of each sequence (B,), return the state of each sequence's last
    real token — its ``extract`` token — (B, C)."""
    ex = Exercise("6.4")
    hidden = torch.randn(4, 7, 5, generator=ex.random)
    lengths = torch.tensor([3, 7, 1, 5])
    want = hidden[torch.arange(4), lengths - 1]
    got = ex.tensor(extract_states, hidden, lengths)
    ex.expect_shape(got, want.shape, "the extract states", "one C-vector per sequence.")
    if torch.allclose(got.double(), hidden[:, -1].double()):
        ex.fail(
            "you took the last position of every row, which is a pad in a right-padded batch.",
            "the extract token is at position length - 1 of its row.",
        )
    ex.expect_close(
        got,
        want,
        "the states are not those at each sequence's last real token",
        "index rows and positions together: hidden[torch.arange(B), lengths - 1].",
    )
    ex.passed("the head reads each sequence's extract token, never a pad")
