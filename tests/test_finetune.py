"""gptbook.finetune: GPT-1's task inputs, the head at the extract token, the auxiliary loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gptbook import finetune
from gptbook.finetune import SpecialTokens, TaskModel, build_inputs, collate
from gptbook.model import GPT, GPTConfig

SPECIAL = SpecialTokens(start=100, delim=101, extract=102)


def encode(text: str) -> list[int]:
    return [ord(c) - ord("a") for c in text]  # "abc" -> [0, 1, 2]


def test_the_four_transforms_give_exact_sequences():
    s, d, e = SPECIAL.ids
    assert build_inputs("classification", {"text": "ab"}, encode, SPECIAL, 16) == [[s, 0, 1, e]]
    pair = {"premise": "ab", "hypothesis": "c"}
    assert build_inputs("entailment", pair, encode, SPECIAL, 16) == [[s, 0, 1, d, 2, e]]
    both = build_inputs("similarity", {"a": "a", "b": "bc"}, encode, SPECIAL, 16)
    assert both == [[s, 0, d, 1, 2, e], [s, 1, 2, d, 0, e]]
    question = {"context": "ab", "choices": ["c", "dd", "e"]}
    assert build_inputs("multiple_choice", question, encode, SPECIAL, 16) == [
        [s, 0, 1, d, 2, e],
        [s, 0, 1, d, 3, 3, e],
        [s, 0, 1, d, 4, e],
    ]


def test_long_inputs_lose_the_left_of_their_first_text_never_a_special_token():
    s, d, e = SPECIAL.ids
    assert build_inputs("classification", {"text": "abcdef"}, encode, SPECIAL, 5) == [
        [s, 3, 4, 5, e]
    ]
    pair = {"premise": "abcdef", "hypothesis": "xy"}
    assert build_inputs("entailment", pair, encode, SPECIAL, 6) == [[s, 5, d, 23, 24, e]]
    with pytest.raises(
        ValueError, match="needs 5 tokens besides its first text, more than max_len=4"
    ):
        build_inputs("entailment", pair, encode, SPECIAL, 4)


@pytest.mark.parametrize(
    "task, example, message",
    [
        ("summarise", {"text": "a"}, "task='summarise': use one of classification, entailment"),
        ("entailment", {"premise": "a"}, r"needs the fields \('premise', 'hypothesis'\); \['hyp"),
        ("multiple_choice", {"context": "a", "choices": ["b"]}, "at least two choices"),
        ("multiple_choice", {"context": "a", "choices": "bc"}, "at least two choices"),
    ],
)
def test_bad_examples_are_refused_clearly(task, example, message):
    with pytest.raises(ValueError, match=message):
        build_inputs(task, example, encode, SPECIAL, 16)


def test_collate_pads_on_the_right_and_finds_the_extract_tokens():
    ids, extract = collate([[[1, 2, 3]], [[4, 5, 6, 7, 8]]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]] and extract.tolist() == [2, 4]
    with pytest.raises(ValueError, match="same number of sequences"):
        collate([[[1]], [[1], [2]]])


@pytest.fixture
def gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=30, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0))


def test_special_tokens_grow_the_table_and_keep_it_tied(gpt):
    before = gpt.wte.weight.detach().clone()
    special = finetune.add_special_tokens(gpt)
    assert special == SpecialTokens(30, 31, 32) and gpt.config.vocab_size == 33
    assert torch.equal(gpt.wte.weight[:30], before[:30]), "the pretrained rows are untouched"
    assert gpt.lm_head.weight is gpt.wte.weight
    assert 0.01 < gpt.wte.weight[30:33].std() < 0.03  # initialised like the others
    logits, _ = gpt(torch.tensor([[30, 1, 2, 32]]))
    assert logits.shape == (1, 4, 33)


@pytest.mark.parametrize("task", list(finetune.TASKS))
def test_padding_changes_no_task_logit(gpt, task):
    special = finetune.add_special_tokens(gpt)
    model = TaskModel(gpt, task, special, n_classes=3).eval()
    examples = {
        "classification": [{"text": "ab"}, {"text": "abcdefgh"}],
        "entailment": [
            {"premise": "ab", "hypothesis": "c"},
            {"premise": "abcde", "hypothesis": "fgh"},
        ],
        "similarity": [{"a": "a", "b": "b"}, {"a": "abcd", "b": "efg"}],
        "multiple_choice": [
            {"context": "a", "choices": ["b", "c", "d"]},
            {"context": "abcd", "choices": ["efg", "h", "ij"]},
        ],
    }[task]
    seqs = [
        build_inputs(task, ex, lambda t: [ord(c) % 30 for c in t], special, 16) for ex in examples
    ]
    with torch.no_grad():
        alone = [model(*collate([one]))[0] for one in seqs]
        batch, _ = model(*collate(seqs, pad_id=7))  # right-padded, with a real token as pad
    assert batch.shape == (2, 3)
    for i, logits in enumerate(alone):
        torch.testing.assert_close(batch[i], logits[0])


def test_the_head_reads_the_extract_position_not_a_pad(gpt):
    special = finetune.add_special_tokens(gpt)
    model = TaskModel(gpt, "classification", special).eval()
    ids, extract = collate([[[special.start, 1, special.extract]], [[special.start, 1, 2, 3, 4]]])
    with torch.no_grad():
        h = gpt.features(ids)
        logits, _ = model(ids, extract)
    torch.testing.assert_close(logits[0], model.head(h[0, 2]))
    assert not torch.allclose(logits[0], model.head(h[0, -1]))


def test_the_loss_adds_half_the_lm_loss_and_trains_every_part(gpt):
    special = finetune.add_special_tokens(gpt)
    model = TaskModel(gpt, "classification", special, dropout=0.0)
    s, e = special.start, special.extract
    ids, extract = collate([[[s, 1, 2, 3, e]], [[s, 4, e]]])
    labels = torch.tensor([0, 1])
    logits, loss = model(ids, extract, labels)
    lm = model.lm_loss(gpt.features(ids), ids, extract)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels) + finetune.LM_WEIGHT * lm)
    # the LM targets are the text tokens: 1, 2, 3 and 4 (not extract, not the pads)
    lm_logits = gpt(ids)[0]
    want = F.cross_entropy(
        torch.cat([lm_logits[0, :3], lm_logits[1, :1]]), torch.tensor([1, 2, 3, 4])
    )
    torch.testing.assert_close(lm, want)
    loss.backward()
    assert model.head.weight.grad.abs().sum() > 0 and gpt.wte.weight.grad.abs().sum() > 0


def test_task_model_refuses_a_model_without_special_tokens(gpt):
    with pytest.raises(ValueError, match="no rows for the special tokens: add_special_tokens"):
        TaskModel(gpt, "classification", SPECIAL)


def test_metrics():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert finetune.accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0])
    y = torch.tensor([2.0, 4.0, 5.0, 4.0, 20.0])
    assert finetune.pearson(x, y) == pytest.approx(float(torch.corrcoef(torch.stack([x, y]))[0, 1]))
    # ranks 1..5 and 1, 3.5, 5, 3.5... by hand: y ranks [0, 1.5, 3, 1.5, 4]
    ranks_y = torch.tensor([0.0, 1.5, 3.0, 1.5, 4.0])
    expected = float(torch.corrcoef(torch.stack([torch.arange(5.0), ranks_y]))[0, 1])
    assert finetune.spearman(x, y) == pytest.approx(expected)
    assert finetune.spearman(x, x**3) == pytest.approx(1.0)
