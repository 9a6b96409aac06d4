"""Zero-shot prompting (chapter 7): the task written as text, answers scored by likelihood.

GPT-2 is not fine-tuned for a task; it is asked. The task goes into the prompt ("Q: … A:",
"… TL;DR:") and each candidate answer is scored by how likely the model finds it after the
prompt — no generation, no matching of generated text. :func:`score_options` does it in one
batched forward pass; :func:`pmi_scores` discounts what an option scores without the prompt;
:func:`zero_shot_accuracy` runs a set of questions and says how sure the accuracy is
(:func:`accuracy` does the same for any scorer, a baseline's too; :func:`difference` compares
two on the same questions). :func:`complete` is the other way to ask: generate, then match.
Chapter 8 adds examples to the prompt: :func:`k_shot_prompt`, :func:`k_shot`; a prompt that
does not fit the context is refused or counted (:func:`too_long`), never silently cut.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F

from . import book
from .checks import whole
from .lm import pad

#: Prompt formats in the style of the GPT-2 paper's zero-shot tasks.
TEMPLATES = {
    "summarize": "{text}\nTL;DR:",
    "question": "Q: {question}\nA:",
    "translate": "{source} = ",
    "speaker": "{line}\nSpoken by:",
}
#: The normal quantile of a two-sided 95% interval.
Z_95 = 1.959964


class Tokenizer(Protocol):
    """What prompting needs of a tokenizer: ``encode`` (tiktoken's and the book's have it)."""

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``."""


def prompt(template: str, **fields: str) -> str:
    """A prompt from one of :data:`TEMPLATES` (by name) or a format string of your own."""
    text = TEMPLATES.get(template, template)
    try:
        return text.format(**fields)
    except KeyError as err:
        raise ValueError(f"the template {text!r} needs the field {err.args[0]!r}") from None


def option_inputs(
    prompt_ids: list[int], option_ids: list[int], block_size: int, truncate: bool
) -> list[int]:
    """``prompt_ids + option_ids``, the prompt cut from the left when ``truncate`` and it
    does not fit in ``block_size`` tokens (the first option token needs one token before it)."""
    if not option_ids:
        raise ValueError("an option encodes to no tokens: there is nothing to score")
    room = block_size - len(option_ids)
    if room < 1:
        raise ValueError(
            f"an option of {len(option_ids)} tokens leaves no room for the prompt in a context "
            f"of {block_size}: shorten the option"
        )
    if len(prompt_ids) > room:
        if not truncate:
            raise ValueError(
                f"prompt + option is {len(prompt_ids) + len(option_ids)} tokens, more than the "
                f"context of {block_size}: shorten the prompt, or pass truncate=True to keep "
                "its last tokens"
            )
        prompt_ids = prompt_ids[len(prompt_ids) - room :]
    if not prompt_ids:
        raise ValueError("the prompt encodes to no tokens: the first option token needs a context")
    return prompt_ids + option_ids


@torch.no_grad()
def score_options(
    model,
    tokenizer: Tokenizer,
    prompt: str,
    options: Sequence[str],
    normalize: bool = False,
    truncate: bool = False,
) -> list[float]:
    """The log-likelihood of each option's tokens after ``prompt``: their sum, or with
    ``normalize`` their mean per token (which stops long options from losing just for being
    long). One forward pass over the options, right-padded side by side."""
    if len(options) < 1:
        raise ValueError("score_options needs at least one option")
    block_size = model.config.block_size
    prompt_ids = tokenizer.encode(prompt)
    option_ids = [tokenizer.encode(option) for option in options]
    rows = [option_inputs(prompt_ids, ids, block_size, truncate) for ids in option_ids]
    x = pad(rows).to(next(model.parameters()).device)  # (N, L), pads 0
    was_training = model.training
    model.eval()
    logits, _ = model(x)  # (N, L, V): causal, so the pads change nothing before them
    model.train(was_training)
    logp = F.log_softmax(logits.float(), dim=-1)
    scores = []
    for i, (row, ids) in enumerate(zip(rows, option_ids, strict=True)):
        start = len(row) - len(ids)  # the first option token's position
        predicted = logp[i, start - 1 : len(row) - 1]  # (len(ids), V): each predicts the next
        total = predicted.gather(-1, x[i, start : len(row), None]).sum().item()
        scores.append(total / len(ids) if normalize else total)
    return scores


@dataclass(frozen=True)
class Accuracy:
    """An accuracy with its 95% Wilson score interval over ``n`` questions; ``right`` keeps
    each question's outcome, so that two scorers can be compared on the same questions
    (:func:`difference`); ``truncated`` counts the questions whose prompt was cut from the left
    to fit the model's context (never silently: it is printed)."""

    value: float
    low: float
    high: float
    n: int
    right: tuple[bool, ...] = field(default=(), repr=False, compare=False)
    truncated: int = field(default=0, compare=False)

    @classmethod
    def of(cls, right: Iterable[bool], truncated: int = 0) -> Accuracy:
        """The accuracy of these outcomes, one per question (True: answered right)."""
        right = tuple(bool(r) for r in right)
        if not right:
            raise ValueError("an accuracy needs at least one question")
        correct = sum(right)
        interval = wilson_interval(correct, len(right))
        return cls(correct / len(right), *interval, len(right), right, truncated)

    def __str__(self) -> str:
        cut = f", {self.truncated} prompts cut to fit the context" if self.truncated else ""
        return f"{self.value:.1%} (95% CI {self.low:.1%}–{self.high:.1%}, n={self.n}{cut})"


def difference(a: Accuracy, b: Accuracy, z: float = Z_95) -> tuple[float, float, float]:
    """``a.value - b.value`` on the same questions, with its 95% interval: the mean of the
    paired differences (each +1, 0 or -1) ± z standard errors. Pairing removes what makes some
    questions hard for both, so it is narrower than comparing two separate intervals."""
    if not a.right or len(a.right) != len(b.right):
        raise ValueError(
            f"difference needs both accuracies' outcomes on the same questions, got {len(a.right)}"
            f" and {len(b.right)}: build them with accuracy() or Accuracy.of()"
        )
    d = [int(x) - int(y) for x, y in zip(a.right, b.right, strict=True)]
    mean = sum(d) / len(d)
    spread = math.sqrt(sum((x - mean) ** 2 for x in d) / max(1, len(d) - 1) / len(d))
    return mean, mean - z * spread, mean + z * spread


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``correct / n`` (sound near 0 and 1 too)."""
    n, correct = whole("n", n), whole("correct", correct, least=0)
    if correct > n:
        raise ValueError(f"need 0 ≤ correct ≤ n and n ≥ 1, got correct={correct}, n={n}")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def pmi_scores(
    model,
    tokenizer: Tokenizer,
    prompt: str,
    options: Sequence[str],
    neutral: str = "\n",
    truncate: bool = False,
) -> list[float]:
    """How much the prompt raises each option's log-likelihood: log p(option | prompt) −
    log p(option | ``neutral``), the domain-conditional PMI of Holtzman et al. (2021, "Surface
    form competition"). An option that is likely anywhere — short, or made of frequent words —
    no longer wins on that alone."""
    given = score_options(model, tokenizer, prompt, options, truncate=truncate)
    alone = score_options(model, tokenizer, neutral, options, truncate=truncate)
    return [g - a for g, a in zip(given, alone, strict=True)]


#: How :func:`zero_shot_accuracy` can score an option: its log-likelihood summed over its
#: tokens, their mean, or the PMI of :func:`pmi_scores`.
SCORINGS = ("sum", "mean", "pmi")


#: ``score(prompt, options) -> scores``: anything that scores a question's options, higher better.
Scorer = Callable[[str, Sequence[str]], Sequence[float]]


def accuracy(score: Scorer, questions: Iterable[dict], truncated: int = 0) -> Accuracy:
    """The share of ``questions`` (dicts with ``prompt``, ``options`` and the right option's
    index ``label``) whose right option ``score`` ranks highest, with its 95% interval. Any
    scorer will do: a language model's (:func:`zero_shot_accuracy`) or a baseline's. A fast dev
    run scores the first few questions only. ``truncated``: how many prompts the scorer cut."""
    questions, right = list(questions), []
    for q in questions[: book.cap(len(questions))]:
        scores = score(q["prompt"], q["options"])
        right.append(max(range(len(scores)), key=scores.__getitem__) == q["label"])
    return Accuracy.of(right, truncated)


def zero_shot_accuracy(
    model,
    tokenizer: Tokenizer,
    questions: Iterable[dict],
    scoring: str = "sum",
    truncate: bool = False,
) -> Accuracy:
    """The :func:`accuracy` of ``model`` on ``questions`` when it scores options by ``scoring``
    (one of :data:`SCORINGS`): no training, only the prompt. Without ``truncate`` a question
    that does not fit the context is refused; with it, its prompt loses its start, and the
    result counts those questions (``Accuracy.truncated``)."""
    if scoring not in SCORINGS:
        raise ValueError(f"scoring={scoring!r}: use one of {', '.join(SCORINGS)}")
    questions = list(questions)
    scored = questions[: book.cap(len(questions))]
    cut = len(too_long(tokenizer, scored, model.config.block_size)) if truncate else 0

    def score(prompt: str, options: Sequence[str]) -> list[float]:
        if scoring == "pmi":
            return pmi_scores(model, tokenizer, prompt, options, truncate=truncate)
        return score_options(model, tokenizer, prompt, options, scoring == "mean", truncate)

    return accuracy(score, questions, cut)


def too_long(tokenizer: Tokenizer, questions: Iterable[dict], block_size: int) -> list[int]:
    """The indices of the ``questions`` whose prompt and longest option do not fit in
    ``block_size`` tokens: those a model with that context could not read whole."""
    return [
        i
        for i, q in enumerate(questions)
        if len(tokenizer.encode(q["prompt"])) + max(len(tokenizer.encode(o)) for o in q["options"])
        > block_size
    ]


#: GPT-3 separates its few-shot examples by one or two newlines, depending on the task.
DELIMITER = "\n\n"


def k_shot_prompt(
    examples: Sequence[tuple[str, str]], prompt: str, delimiter: str = DELIMITER
) -> str:
    """A few-shot prompt (chapter 8): each solved example (its prompt and its answer), then the
    question's prompt, joined by ``delimiter``. No examples: the zero-shot prompt."""
    return delimiter.join([*(p + a for p, a in examples), prompt])


def k_shot(
    questions: Sequence[dict],
    pool: Sequence[dict],
    k: int,
    seed: int = 0,
    delimiter: str = DELIMITER,
    tokenizer: Tokenizer | None = None,
    block_size: int | None = None,
) -> list[dict]:
    """``questions`` with ``k`` solved examples in front of each prompt, drawn at random (and
    without repeats) from ``pool`` — questions of the same task, each shown with its right
    option — as GPT-3 drew its examples from the task's training set for every question.
    Given a ``tokenizer`` and the model's ``block_size``, prompts that would not fit are
    refused: a model would read only their end, without the examples."""
    if not 0 <= k <= len(pool):
        raise ValueError(f"k={k}: choose 0 ≤ k ≤ {len(pool)}, the questions in the pool")
    if (tokenizer is None) != (block_size is None):
        raise ValueError("pass both tokenizer and block_size to check the prompts fit, or neither")
    rng = random.Random(seed)
    shots = []
    for q in questions:
        examples = [(e["prompt"], e["options"][e["label"]]) for e in rng.sample(list(pool), k)]
        shots.append({**q, "prompt": k_shot_prompt(examples, q["prompt"], delimiter)})
    if tokenizer is not None:
        cut = too_long(tokenizer, shots, block_size)
        if cut:
            raise ValueError(
                f"{len(cut)} of {len(shots)} {k}-shot prompts do not fit a context of "
                f"{block_size} tokens: use fewer examples, shorter questions, or a model with a "
                "longer context"
            )
    return shots


def complete(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """The model's greedy continuation of ``prompt``, ``max_new_tokens`` tokens of it, as text:
    generating and matching, the other way to ask a model (GPT-2 answers its open questions so).
    ``tokenizer`` needs ``decode`` too; a prompt longer than the context keeps its end."""
    from .sampling import generate

    device = next(model.parameters()).device
    idx = torch.tensor([tokenizer.encode(prompt)], device=device)  # (1, T)
    idx = idx[:, -model.block_size :]  # its end: what the model can read
    was_training = model.training
    model.eval()
    out = generate(model, idx, max_new_tokens, temperature=0)
    model.train(was_training)
    return tokenizer.decode(out[0, idx.shape[1] :].tolist())
