"""gptbook.incontext: sequences of fresh mappings, and what a model learns from them."""

from __future__ import annotations

import pytest
import torch

from gptbook import incontext
from gptbook.lm import IGNORE_INDEX
from gptbook.model import GPT, GPTConfig
from gptbook.train import TrainConfig, Trainer

S, K = 6, 10


@pytest.mark.parametrize("tagged", [True, False])
def test_each_sequence_shows_one_mapping_and_targets_only_its_answers(tagged):
    inputs, targets = incontext.task_batch(50, K, S, torch.Generator().manual_seed(0), tagged)
    assert inputs.shape == targets.shape == (50, 2 * K - 1)
    assert inputs.max() < incontext.vocab_size(S, tagged)
    x, answers = inputs[:, 0::2], inputs[:, 1::2]  # (B, K), (B, K - 1)
    assert (targets[:, 1::2] == IGNORE_INDEX).all(), "the next question is not a target"
    assert torch.equal(targets[:, 0::2][:, :-1], answers), "each question's target: its answer"
    assert (x < S).all() and (answers >= S).all()
    y = (answers - S) % S if tagged else answers - S
    if tagged:
        assert torch.equal((answers - S) // S, x[:, :-1]), "a tagged answer names its question"
    mappings = set()
    for row in range(50):
        f = {}
        for question, answer in zip(x[row].tolist(), y[row].tolist()):
            assert f.setdefault(question, answer) == answer, "one answer per question"
        assert len(set(f.values())) == len(f), "one-to-one"
        mappings.add(tuple(sorted(f.items())))
    assert len(mappings) > 45, "a fresh mapping in every sequence"


def test_seen_before_marks_questions_asked_earlier():
    inputs = torch.tensor([[0, 9, 1, 9, 0, 9, 2, 9, 1]])  # questions 0 1 0 2 1
    assert incontext.seen_before(inputs).tolist() == [[False, False, True, False, True]]


def test_lookup_attention_measures_weight_on_the_earlier_answers_to_the_same_question():
    inputs = torch.tensor([[0, 9, 1, 9, 0, 9, 1]])  # questions 0 1 0 1; answers at 1, 3, 5
    T = inputs.shape[1]
    looks_up = torch.zeros(1, 2, T, T)
    looks_up[0, 0, 4, 1] = looks_up[0, 0, 6, 3] = 1.0  # head 0: question → its earlier answer
    looks_up[0, 1, 4, 4] = looks_up[0, 1, 6, 6] = 1.0  # head 1: each question to itself
    assert incontext.lookup_attention(looks_up, inputs).tolist() == [1.0, 0.0]


def test_a_small_gpt_learns_to_look_answers_up_in_context():
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=incontext.vocab_size(S),
        block_size=2 * K - 1,
        n_layer=1,
        n_head=2,
        n_embd=32,
        dropout=0.0,
        norm="pre",
    )
    model = GPT(config)
    cfg = TrainConfig(max_steps=300, batch_size=32, lr=3e-3, warmup_steps=10, weight_decay=0.0)
    probe = incontext.task_batch(64, K, S, torch.Generator().manual_seed(2))
    trainer = Trainer(
        model,
        cfg,
        batches=lambda step, g: incontext.task_batch(32, K, S, g),
        metrics=lambda m: {"val": m(*probe)[1].item()},
    )
    trainer.train(progress=False)
    model.eval()
    inputs, targets = incontext.task_batch(400, K, S, torch.Generator().manual_seed(1))
    right, seen = incontext.answer_accuracy(model, inputs, targets), incontext.seen_before(inputs)
    assert right[seen].float().mean() > 0.9, "answers shown earlier are found"
    assert right[~seen].float().mean() < 0.4, "unseen ones cannot be known"
    lookup = incontext.lookup_attention(model.attention_weights(inputs)[0], inputs)
    assert lookup.max() > 0.8, "a head attends to the earlier answer to the same question"


def test_task_batch_refuses_a_task_too_small():
    with pytest.raises(ValueError, match="n_symbols ≥ 2"):
        incontext.task_batch(4, K, 1)
