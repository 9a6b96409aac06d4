"""Fine-tuning GPT-1 on tasks: task-aware inputs, a linear head, and the auxiliary LM loss.

Introduced in chapter 6. GPT-1 (Radford et al., 2018, Figure 1, right) fine-tunes one
pretrained model on very different tasks by changing only its *input*: every example
becomes one or more token sequences framed by three new tokens, and a linear head reads the
final hidden state at the last one, ``extract``:

- classification:   ``[start] text [extract]``
- entailment:       ``[start] premise [delim] hypothesis [extract]``
- similarity:       both orders, ``[start] a [delim] b [extract]`` and ``[start] b [delim] a
  [extract]``; the two extract states are added before the head
- multiple choice:  ``[start] context [delim] answer_i [extract]`` for every answer, one score
  each, a softmax over the answers

The loss is the task's plus λ = 0.5 times the language-modelling loss on the same inputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import book
from .checks import whole
from .embeddings import tie_weights
from .lm import IGNORE_INDEX, cross_entropy, pad
from .model import GPT
from .train import TrainConfig, Trainer

#: The four input formats of GPT-1's Figure 1, and the fields each example must have.
TASKS = {
    "classification": ("text",),
    "entailment": ("premise", "hypothesis"),
    "similarity": ("a", "b"),
    "multiple_choice": ("context", "choices"),
}
#: GPT-1's weight of the auxiliary language-modelling loss.
LM_WEIGHT = 0.5
#: GPT-1 fine-tunes for 3 epochs (most tasks).
PAPER_EPOCHS = 3


@dataclass(frozen=True)
class SpecialTokens:
    """The ids of the three tokens that frame a task's input."""

    start: int
    delim: int
    extract: int

    @property
    def ids(self) -> tuple[int, int, int]:
        """The three ids, in the order (start, delim, extract)."""
        return (self.start, self.delim, self.extract)


def grow_vocab(model: GPT, n: int) -> list[int]:
    """Append ``n`` tokens to ``model``'s vocabulary, in place, and return their ids.

    The new rows of the token table are initialised like the others, N(0, 0.02); the pretrained
    rows are copied unchanged. A tied output layer stays tied to the (larger) table; an untied
    one (chapter 10) grows too, its new rows initialised the same way. Chapter 6 adds GPT-1's
    three task tokens with it, chapter 11 the tokens of a chat.
    """
    whole("n", n)
    config, old = model.config, model.wte.weight.data
    V = config.vocab_size
    model.config = dataclasses.replace(config, vocab_size=V + n)
    table = nn.Embedding(model.config.padded_vocab_size, config.n_embd).to(old.device, old.dtype)
    nn.init.normal_(table.weight, std=0.02)
    with torch.no_grad():
        table.weight[:V] = old[:V]  # the pretrained rows, untouched
    old_head, model.wte = model.lm_head.weight.data, table
    model.lm_head = nn.Linear(config.n_embd, model.config.padded_vocab_size, bias=False)
    if config.tie_embeddings:
        tie_weights(model.wte, model.lm_head)  # tied, as before
    else:
        model.lm_head.to(old.device, old.dtype)
        nn.init.normal_(model.lm_head.weight, std=0.02)
        with torch.no_grad():
            model.lm_head.weight[:V] = old_head[:V]
    return list(range(V, V + n))


def add_special_tokens(model: GPT) -> SpecialTokens:
    """Append ``start``, ``delim`` and ``extract`` to ``model``'s vocabulary, in place
    (:func:`grow_vocab`)."""
    return SpecialTokens(*grow_vocab(model, 3))


def build_inputs(
    task: str,
    example: dict,
    encode: Callable[[str], list[int]],
    special: SpecialTokens,
    max_len: int,
) -> list[list[int]]:
    """The token sequences of one ``example`` of ``task``: one per forward pass (1 for
    classification and entailment, 2 for similarity, one per answer for multiple choice).

    Each starts with ``special.start`` and ends with ``special.extract``. A sequence longer than
    ``max_len`` loses tokens from the left of its first text (the end of a premise is nearest
    the hypothesis); if that is not enough, it is refused with a message naming the limit.
    """
    if task not in TASKS:
        raise ValueError(f"task={task!r}: use one of {', '.join(TASKS)}")
    missing = [field for field in TASKS[task] if field not in example]
    if missing:
        raise ValueError(f"a {task} example needs the fields {TASKS[task]}; {missing} missing")
    whole("max_len", max_len, least=3)
    s, d, e = special.start, special.delim, special.extract
    if task == "classification":
        return [_fit([s], encode(example["text"]), [], [e], max_len)]
    if task == "entailment":
        premise, hypothesis = encode(example["premise"]), encode(example["hypothesis"])
        return [_fit([s], premise, [d, *hypothesis], [e], max_len)]
    if task == "similarity":
        a, b = encode(example["a"]), encode(example["b"])
        return [_fit([s], a, [d, *b], [e], max_len), _fit([s], b, [d, *a], [e], max_len)]
    choices = example["choices"]
    if not isinstance(choices, Sequence) or isinstance(choices, str) or len(choices) < 2:
        raise ValueError(
            f"a multiple-choice example needs a list of at least two choices (in order: the label "
            f"indexes it, and a set has no order), got {choices!r}"
        )
    context = encode(example["context"])
    return [_fit([s], context, [d, *encode(c)], [e], max_len) for c in choices]


def _fit(head: list[int], text: list[int], rest: list[int], tail: list[int], max_len: int):
    """head + text + rest + tail, with ``text`` cut from the left to fit in ``max_len``."""
    room = max_len - len(head) - len(rest) - len(tail)
    if room < 0:
        raise ValueError(
            f"the input needs {len(head) + len(rest) + len(tail)} tokens besides its first text, "
            f"more than max_len={max_len}: shorten the second text (or the answers)"
        )
    return [*head, *text[max(0, len(text) - room) :], *rest, *tail]


def collate(
    examples: Sequence[Sequence[Sequence[int]]], pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of examples (each a list of ``k`` sequences, as :func:`build_inputs` gives) as
    right-padded ids (B·k, T) and the position of each sequence's ``extract`` token (B·k,).

    Padding on the right never changes what the real tokens see (attention is causal).
    """
    counts = {len(seqs) for seqs in examples}
    if len(counts) != 1:
        raise ValueError(f"every example must have the same number of sequences, got {counts}")
    flat = [list(seq) for seqs in examples for seq in seqs]
    if not flat or not all(flat):
        raise ValueError("every sequence needs at least one token: its last is the extract token")
    ids = pad(flat, pad_id)  # (B·k, T)
    extract = torch.tensor([len(seq) - 1 for seq in flat])
    return ids, extract


class TaskModel(nn.Module):
    """A GPT with a linear head on the final hidden state at each sequence's ``extract`` token.

    ``model(ids, extract, labels=None) -> (task_logits, loss)``: logits (B, n_classes); for
    multiple choice ``n_classes`` is the number of answers a question has, each scored by the
    head from its own sequence. ``n_classes=1`` makes the head a regression (STS-B's similarity
    scores). The loss, with labels, is the task's cross-entropy (the squared error for a
    regression) plus ``lm_weight`` times the LM loss on the inputs (pads and predictions of
    special tokens left out).
    """

    def __init__(
        self,
        gpt: GPT,
        task: str,
        special: SpecialTokens,
        n_classes: int = 2,
        lm_weight: float = LM_WEIGHT,
        dropout: float = 0.1,
    ):
        super().__init__()
        if task not in TASKS:
            raise ValueError(f"task={task!r}: use one of {', '.join(TASKS)}")
        if gpt.config.vocab_size <= max(special.ids):
            raise ValueError("the model has no rows for the special tokens: add_special_tokens")
        self.gpt, self.task, self.special, self.lm_weight = gpt, task, special, lm_weight
        self.block_size = gpt.config.block_size
        self.drop = nn.Dropout(dropout)
        self.n_classes = whole("n_classes", n_classes, least=2 if task == "multiple_choice" else 1)
        outputs = 1 if task == "multiple_choice" else n_classes  # one score an answer
        self.head = nn.Linear(gpt.config.n_embd, outputs)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    @property
    def per_example(self) -> int:
        """Sequences per example: 1, 2 for similarity, one an answer for multiple choice."""
        return {"similarity": 2, "multiple_choice": self.n_classes}.get(self.task, 1)

    def forward(self, ids: torch.Tensor, extract: torch.Tensor, labels: torch.Tensor | None = None):
        if len(ids) % self.per_example:
            raise ValueError(
                f"{len(ids)} sequences do not make whole {self.task} examples of "
                f"{self.per_example} sequences each"
            )
        h = self.gpt.features(ids)  # (B·k, T, C)
        rows = torch.arange(len(ids), device=ids.device)
        last = self.drop(h[rows, extract])  # (B·k, C): the extract token's state
        if self.task == "similarity":
            logits = self.head(last.view(-1, 2, last.shape[-1]).sum(1))  # (B, n_classes)
        elif self.task == "multiple_choice":
            logits = self.head(last).view(-1, self.n_classes)  # (B, n_choices)
        else:
            logits = self.head(last)  # (B, n_classes)
        if labels is None:
            return logits, None
        if self.n_classes == 1:  # a regression: one score an example
            loss = F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype))
        else:
            loss = F.cross_entropy(logits, labels)
        if self.lm_weight:  # (the LM head is the costliest product: skipped when unused)
            loss = loss + self.lm_weight * self.lm_loss(h, ids, extract)
        return logits, loss

    def lm_loss(self, h: torch.Tensor, ids: torch.Tensor, extract: torch.Tensor) -> torch.Tensor:
        """Next-token loss on the inputs' text: pads and special tokens are not targets."""
        logits = self.gpt.lm_head(h[:, :-1])[..., : self.gpt.config.vocab_size]  # (N, T-1, V)
        targets = ids[:, 1:].clone()
        positions = torch.arange(1, ids.shape[1], device=ids.device)
        targets[positions[None, :] > extract[:, None]] = IGNORE_INDEX  # pads
        targets[torch.isin(targets, torch.tensor(self.special.ids, device=ids.device))] = (
            IGNORE_INDEX
        )
        if (targets == IGNORE_INDEX).all():
            return h.sum() * 0.0
        return cross_entropy(logits, targets)


# ---------------------------------------------------------------------- fine-tuning: gptbook.train
def encode_examples(
    task: str, examples, encode: Callable[[str], list[int]], special: SpecialTokens, max_len: int
) -> list[list[list[int]]]:
    """:func:`build_inputs` of every example (a ``datasets.Dataset`` or a list of dicts)."""
    return [build_inputs(task, example, encode, special, max_len) for example in examples]


def task_batches(
    encoded: Sequence[Sequence[Sequence[int]]],
    labels: Sequence[int],
    batch_size: int,
    seed: int = 0,
):
    """The Trainer's ``batches`` for a task: epochs of the examples, each in a new random order
    decided by ``seed`` and the epoch alone (so a resumed run sees the same batches).
    A step's batch is ``(ids, extract, labels)``, what :class:`TaskModel` takes."""
    if len(encoded) != len(labels):
        raise ValueError(f"{len(encoded)} examples but {len(labels)} labels")
    if whole("batch_size", batch_size) > len(encoded):
        raise ValueError(f"batch_size={batch_size} is more than the {len(encoded)} examples")
    per_epoch = len(encoded) // batch_size  # the last partial batch of an epoch is left out

    def batches(step: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        epoch, i = divmod(step, per_epoch)
        order = torch.randperm(len(encoded), generator=torch.Generator().manual_seed(seed + epoch))
        chosen = order[i * batch_size : (i + 1) * batch_size].tolist()
        ids, extract = collate([encoded[j] for j in chosen])
        return ids, extract, torch.tensor([labels[j] for j in chosen])

    return batches


#: Examples a forward pass measures at once.
EVAL_BATCH_SIZE = 64


@torch.no_grad()
def predict(
    model: TaskModel, encoded: Sequence[Sequence[Sequence[int]]], batch_size: int = EVAL_BATCH_SIZE
) -> torch.Tensor:
    """The task logits of every example, (N, n_classes), on the CPU; the model in eval mode."""
    device, outputs = next(model.parameters()).device, []
    for i in range(0, len(encoded), batch_size):
        ids, extract = collate(encoded[i : i + batch_size])
        outputs.append(model(ids.to(device), extract.to(device))[0].float().cpu())
    return torch.cat(outputs)


def task_metrics(encoded: Sequence[Sequence[Sequence[int]]], labels: Sequence[int]):
    """The Trainer's ``metrics`` for a task: the task loss on these examples (``val``) and the
    accuracy; for similarity also Spearman's correlation of p(class 1) with the label, and for a
    regression (``n_classes=1``) the squared error with Pearson's and Spearman's correlations."""
    y_all = torch.tensor(labels)

    def metrics(model: TaskModel) -> dict[str, float]:
        n = book.cap(len(encoded), per=EVAL_BATCH_SIZE)  # a fast dev run measures a few batches
        logits, y = predict(model, encoded[:n]), y_all[:n]
        if model.n_classes == 1:
            score = logits.squeeze(-1)
            mse = F.mse_loss(score, y.to(score.dtype)).item()
            return {"val": mse, "pearson": pearson(score, y), "spearman": spearman(score, y)}
        measured = {"val": F.cross_entropy(logits, y).item(), "accuracy": accuracy(logits, y)}
        if model.task == "similarity":
            measured["spearman"] = spearman(logits.softmax(-1)[:, 1], y)
        return measured

    return metrics


def fine_tune(
    model: TaskModel,
    train,
    test,
    cfg: TrainConfig,
    progress: bool = True,
    out_dir: str | Path | None = None,
    resume: bool = False,
) -> Trainer:
    """Fine-tune ``model`` on ``train`` and measure it on ``test`` at every evaluation, with
    :class:`gptbook.train.Trainer` (AdamW, schedule, clipping, precision, progress bar, and
    checkpoints in ``out_dir`` that ``resume=True`` continues from).

    ``train`` and ``test`` are ``(encoded, labels)`` pairs (:func:`encode_examples`). Returns
    the Trainer: its ``history`` holds the training loss and the test ``val`` loss and
    ``accuracy`` at each of ``history["eval_step"]``.
    """
    trainer = Trainer(
        model,
        cfg,
        out_dir,
        resume=resume,
        batches=task_batches(*train, cfg.batch_size, seed=cfg.seed),
        metrics=task_metrics(*test),
    )
    trainer.train(progress=progress)
    return trainer


def paper_config(n_examples: int, **overrides) -> TrainConfig:
    """GPT-1's fine-tuning recipe for ``n_examples`` training examples: lr 6.25e-5, batch 32,
    3 epochs, linear warmup over 0.2% of training then linear decay, as a TrainConfig;
    ``overrides`` change any setting (``epochs=`` included, or ``max_steps=`` for a run of a
    fixed number of steps, whatever the number of examples)."""
    epochs = overrides.pop("epochs", PAPER_EPOCHS)
    batch_size = overrides.pop("batch_size", 32)
    steps = overrides.pop("max_steps", None) or epochs * (n_examples // batch_size)
    settings = dict(lr=6.25e-5, warmup_steps=max(1, round(0.002 * steps)), schedule="linear")
    settings.update(min_lr_ratio=0.0, eval_interval=steps, weight_decay=0.01)
    return TrainConfig(max_steps=steps, batch_size=batch_size, **{**settings, **overrides})


# ---------------------------------------------------------------------- does pretraining help?
def label_budget(n_examples: int, budget: int | None, seed: int) -> list[int]:
    """The indices of ``budget`` examples out of ``n_examples``, drawn at random by ``seed``
    (``None``: all of them, shuffled): the labelled subset of one run of a label-budget curve.
    A smaller budget of the same seed is the start of a larger one, so the curve's points add
    labels rather than swap them."""
    whole("n_examples", n_examples)
    budget = n_examples if budget is None else whole("budget", budget)
    if budget > n_examples:
        raise ValueError(
            f"budget={budget} is more than the {n_examples} labelled examples: lower it, or "
            "pass budget=None for all of them"
        )
    order = torch.randperm(n_examples, generator=torch.Generator().manual_seed(seed))
    return order[:budget].tolist()


def take(pair: tuple[Sequence, Sequence[int]], indices: Sequence[int]) -> tuple[list, list[int]]:
    """The examples ``indices`` of an ``(encoded, labels)`` pair, as a new pair."""
    encoded, labels = pair
    return [encoded[i] for i in indices], [labels[i] for i in indices]


def fine_tune_budget(
    model: TaskModel, train, budget: int | None, seed: int, cfg: TrainConfig
) -> Trainer:
    """Fine-tune ``model`` on ``budget`` labelled examples of ``train`` (an ``(encoded,
    labels)`` pair) drawn by ``seed`` (:func:`label_budget`), which also orders the batches:
    one run of a label-budget curve. Its evaluations measure the labelled examples themselves
    (at most :data:`EVAL_BATCH_SIZE` of them: the training accuracy); measure held-out ones
    afterwards with :func:`hits`. The batch is cut to the budget if it is larger."""
    labelled = take(train, label_budget(len(train[0]), budget, seed))
    seen = take(labelled, range(min(len(labelled[1]), EVAL_BATCH_SIZE)))
    cfg = dataclasses.replace(cfg, seed=seed, batch_size=min(cfg.batch_size, len(labelled[1])))
    return fine_tune(model, labelled, seen, cfg, progress=False)


def hits(model: TaskModel, encoded: Sequence[Sequence[Sequence[int]]], labels: Sequence[int]):
    """Whether ``model`` gets each example right: a bool tensor (N,), the outcomes that a
    paired comparison of two models on the same examples needs."""
    return predict(model, encoded).argmax(-1) == torch.tensor(labels)


#: Two-sided 95% quantiles of Student's t, by degrees of freedom (values - 1).
T_95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}
#: The normal quantile used beyond the table (more than nine values).
Z_95 = 1.96


def mean_interval(values) -> tuple[float, float, float]:
    """The mean of ``values`` and its 95% interval, ``(mean, low, high)``: mean ± q · sd / √n,
    q from Student's t for a few values (seeds: a wide interval) and 1.96 for many (examples).
    Of paired outcomes, ``hits_a.float() - hits_b.float()`` on the same examples, it is the
    paired interval of a difference of accuracies."""
    x = torch.as_tensor(values, dtype=torch.float64).flatten()
    if len(x) < 2:
        raise ValueError(f"an interval needs at least 2 values, got {len(x)}")
    half = T_95.get(len(x) - 1, Z_95) * (x.std() / len(x) ** 0.5).item()
    mean = x.mean().item()
    return mean, mean - half, mean + half


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of examples whose highest logit is the label."""
    return (logits.argmax(-1) == labels).float().mean().item()


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson's correlation of two 1-D tensors."""
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    return (x @ y / (x.norm() * y.norm())).item()


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman's rank correlation: Pearson's of the ranks (ties share their mean rank)."""
    return pearson(_ranks(x), _ranks(y))


def _ranks(x: torch.Tensor) -> torch.Tensor:
    values, inverse = torch.unique(x, return_inverse=True)
    order = torch.argsort(x, stable=True)
    ranks = torch.empty(len(x), dtype=torch.float64)
    ranks[order] = torch.arange(len(x), dtype=torch.float64)
    mean = torch.zeros(len(values), dtype=torch.float64).index_add_(0, inverse, ranks)
    return (mean / torch.bincount(inverse, minlength=len(values)))[inverse]
