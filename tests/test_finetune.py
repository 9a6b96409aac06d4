"""gptbook.finetune: GPT-1's task inputs, the head at the extract token, the auxiliary loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gptbook import finetune
from gptbook.finetune import SpecialTokens, TaskModel, build_inputs, collate
from gptbook.model import GPT, GPTConfig
from gptbook.train import Trainer

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


def test_an_input_that_fits_keeps_every_token():
    # room for 6 tokens of the first text: 4 must stay whole (a negative slice start
    # would cut it)
    s, d, e = SPECIAL.ids
    pair = {"a": "abcd", "b": "efg"}
    assert build_inputs("similarity", pair, encode, SPECIAL, 12) == [
        [s, 0, 1, 2, 3, d, 4, 5, 6, e],
        [s, 4, 5, 6, d, 0, 1, 2, 3, e],
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


def test_grow_vocab_grows_an_untied_output_layer_too():
    """A Llama-style model (chapter 10) has its own output matrix: its old rows are kept, its
    new rows are initialised like the table's, and it stays a separate matrix."""
    torch.manual_seed(0)
    gpt = GPT(GPTConfig.preset("llama-tiny", vocab_size=30, pad_vocab_to=1))
    table, head = gpt.wte.weight.detach().clone(), gpt.lm_head.weight.detach().clone()
    assert finetune.grow_vocab(gpt, 4) == [30, 31, 32, 33]
    assert gpt.config.vocab_size == 34 and gpt.lm_head.weight is not gpt.wte.weight
    assert torch.equal(gpt.wte.weight[:30], table) and torch.equal(gpt.lm_head.weight[:30], head)
    assert 0.01 < gpt.lm_head.weight[30:].std() < 0.03
    logits, _ = gpt(torch.tensor([[33, 1, 2]]))
    assert logits.shape == (1, 3, 34)
    with pytest.raises(ValueError, match="n must be"):
        finetune.grow_vocab(gpt, 0)


def test_special_tokens_use_the_spare_rows_of_a_padded_table():
    """A table padded to a multiple of 64 (chapter 5's BPE model) has room for the three: the
    token rows stay as they were, the special tokens take spare rows, the table stays 64 rows."""
    torch.manual_seed(0)
    gpt = GPT(
        GPTConfig(vocab_size=60, block_size=8, n_layer=1, n_head=2, n_embd=16, pad_vocab_to=64)
    )
    before = gpt.wte.weight.detach().clone()
    special = finetune.add_special_tokens(gpt)
    assert special == SpecialTokens(60, 61, 62) and gpt.wte.weight.shape == (64, 16)
    assert torch.equal(gpt.wte.weight[:60], before[:60])
    assert gpt(torch.tensor([[60, 1, 62]]))[0].shape == (1, 3, 63), "the padding is never scored"


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


# ------------------------------------------------------------- fine-tuning with the Trainer
def _last_letter_task(n: int, seed: int = 0):
    """A task a small model learns in a few steps: is the last letter an 'a' (class 1)?"""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        letters = torch.randint(1, 10, (6,), generator=g).tolist()
        letters[-1] = 0 if i % 2 else letters[-1]
        rows.append({"text": "".join(chr(ord("a") + c) for c in letters), "label": i % 2})
    return rows


def _encoded(rows, special):
    enc = finetune.encode_examples("classification", rows, encode, special, 16)
    return enc, [r["label"] for r in rows]


def test_task_batches_go_through_every_example_once_an_epoch_the_same_way_each_time():
    encoded = [[[i]] for i in range(10)]
    batches = finetune.task_batches(encoded, list(range(10)), batch_size=3, seed=1)
    g = torch.Generator()
    epoch = [batches(step, g) for step in range(3)]  # 10 // 3 = 3 batches an epoch
    seen = torch.cat([labels for _, _, labels in epoch]).tolist()
    assert len(set(seen)) == 9, "nine different examples; the tenth waits for a later epoch"
    for ids, extract, labels in epoch:
        assert ids[:, 0].tolist() == labels.tolist() and extract.tolist() == [0, 0, 0]
    again = batches(1, torch.Generator().manual_seed(99))
    assert torch.equal(again[2], epoch[1][2]), "a step's batch depends on the step alone"
    assert not torch.equal(batches(3, g)[2], epoch[0][2]), "each epoch in a new order"
    with pytest.raises(ValueError, match="more than the 10 examples"):
        finetune.task_batches(encoded, list(range(10)), batch_size=11)
    with pytest.raises(ValueError, match="10 examples but 9 labels"):
        finetune.task_batches(encoded, list(range(9)), batch_size=2)


def _last_letter_model(gpt):
    """A classification TaskModel on ``gpt``, with 256 training and 64 test examples of the
    last-letter task."""
    special = finetune.add_special_tokens(gpt)
    model = TaskModel(gpt, "classification", special, dropout=0.0)
    train = _encoded(_last_letter_task(256), special)
    return model, train, _encoded(_last_letter_task(64, seed=1), special)


def test_fine_tune_learns_a_task_through_the_trainer(gpt):
    model, train, test = _last_letter_model(gpt)
    cfg = finetune.paper_config(256, lr=1e-2, epochs=6, eval_interval=16)
    trainer = finetune.fine_tune(model, train, test, cfg, progress=False)
    history = trainer.history
    assert trainer.step == 6 * (256 // 32) == len(history["train"])
    assert len(history["accuracy"]) == len(history["val"]) == len(history["eval_step"]) == 3
    assert history["accuracy"][0] < 0.9 and history["accuracy"][-1] > 0.95
    assert history["val"][-1] < history["val"][0]
    assert model.training, "the Trainer leaves the model in training mode"
    logits = finetune.predict(model.eval(), test[0])
    assert logits.shape == (64, 2)
    assert finetune.accuracy(logits, torch.tensor(test[1])) == history["accuracy"][-1]


def test_a_frozen_body_trains_only_the_head(gpt):
    special = finetune.add_special_tokens(gpt)
    model = TaskModel(gpt, "classification", special)
    for p in model.gpt.parameters():
        p.requires_grad_(False)
    body = {k: v.clone() for k, v in model.gpt.state_dict().items()}
    head = model.head.weight.detach().clone()
    train = _encoded(_last_letter_task(64), special)
    finetune.fine_tune(model, train, train, finetune.paper_config(64, lr=1e-2), progress=False)
    assert all(torch.equal(v, model.gpt.state_dict()[k]) for k, v in body.items())
    assert not torch.equal(head, model.head.weight)


def test_similarity_metrics_include_spearman(gpt):
    special = finetune.add_special_tokens(gpt)
    model = TaskModel(gpt, "similarity", special).eval()
    rows = [{"a": "ab", "b": "cd", "label": i % 2} for i in range(8)]
    enc = finetune.encode_examples("similarity", rows, encode, special, 16)
    measured = finetune.task_metrics(enc, [r["label"] for r in rows])(model)
    assert set(measured) == {"val", "accuracy", "spearman"}


def test_a_fast_dev_run_measures_a_few_batches_of_the_test_set(gpt, monkeypatch):
    special = finetune.add_special_tokens(gpt)
    model = TaskModel(gpt, "classification", special).eval()
    rows = [{"text": "ab" * (1 + i % 3), "label": i % 2} for i in range(300)]
    enc = finetune.encode_examples("classification", rows, encode, special, 16)
    seen = []
    real = finetune.predict
    monkeypatch.setattr(finetune, "predict", lambda m, e: seen.append(len(e)) or real(m, e))
    metrics = finetune.task_metrics(enc, [r["label"] for r in rows])
    monkeypatch.setenv("GPTBOOK_FAST_DEV_RUN", "2")
    assert metrics(model)["accuracy"] == finetune.accuracy(
        real(model, enc[:128]), torch.tensor([r["label"] for r in rows[:128]])
    )
    monkeypatch.delenv("GPTBOOK_FAST_DEV_RUN")
    metrics(model)
    assert seen == [2 * finetune.EVAL_BATCH_SIZE, 300]


def test_paper_config_is_gpt1s_recipe():
    cfg = finetune.paper_config(3_200)
    assert (cfg.lr, cfg.batch_size, cfg.max_steps) == (6.25e-5, 32, 3 * 100)
    assert cfg.warmup_steps == 1 and cfg.schedule == "linear" and cfg.min_lr_ratio == 0
    longer = finetune.paper_config(3_200, epochs=5, batch_size=16, lr=1e-3)
    assert (longer.max_steps, longer.warmup_steps, longer.lr) == (1_000, 2, 1e-3)


def test_a_resumed_fine_tuning_run_matches_an_uninterrupted_one(tmp_path):
    def run(steps=None, resume=False):
        torch.manual_seed(0)
        gpt = GPT(GPTConfig(vocab_size=30, block_size=16, n_layer=1, n_head=2, n_embd=16))
        special = finetune.add_special_tokens(gpt)
        model = TaskModel(gpt, "classification", special)  # dropout on: the RNG state counts
        train = _encoded(_last_letter_task(64), special)
        cfg = finetune.paper_config(64, lr=1e-2, epochs=4, eval_interval=2)
        trainer = Trainer(
            model,
            cfg,
            tmp_path if steps or resume else None,
            resume=resume,
            batches=finetune.task_batches(*train, cfg.batch_size),
            metrics=finetune.task_metrics(*train),
        )
        trainer.train(steps=steps, progress=False)
        return trainer.history

    straight = run()
    run(steps=4)  # "killed" after two evaluations
    resumed = run(resume=True)
    assert resumed["train"] == straight["train"] and resumed["accuracy"] == straight["accuracy"]


def test_a_one_output_head_is_a_regression_measured_by_correlation(gpt):
    special = finetune.add_special_tokens(gpt)
    model = TaskModel(gpt, "similarity", special, n_classes=1, lm_weight=0.0, dropout=0.0)
    rows = [{"a": "ab"[: 1 + i % 2], "b": "cd", "label": 2.5 * (i % 2)} for i in range(8)]
    enc = finetune.encode_examples("similarity", rows, encode, special, 16)
    labels = torch.tensor([r["label"] for r in rows])
    logits, loss = model(*collate(enc), labels)
    assert logits.shape == (8, 1)
    torch.testing.assert_close(loss, F.mse_loss(logits.squeeze(-1), labels))
    measured = finetune.task_metrics(enc, labels.tolist())(model.eval())
    assert set(measured) == {"val", "pearson", "spearman"}
    with pytest.raises(ValueError, match="n_classes must be a whole number ≥ 2"):
        TaskModel(gpt, "multiple_choice", special, n_classes=1)


# ------------------------------------------------------------- label budgets and intervals
def test_label_budget_draws_a_seeded_subset_that_grows_with_the_budget():
    small, large = finetune.label_budget(100, 8, seed=3), finetune.label_budget(100, 32, seed=3)
    assert len(small) == len(set(small)) == 8 and all(0 <= i < 100 for i in small)
    assert large[:8] == small, "a larger budget of the same seed adds labels"
    assert finetune.label_budget(100, 8, seed=3) == small, "the seed decides"
    assert finetune.label_budget(100, 8, seed=4) != small
    assert sorted(finetune.label_budget(10, None, seed=0)) == list(range(10))
    with pytest.raises(ValueError, match="budget=11 is more than the 10 labelled examples"):
        finetune.label_budget(10, 11, seed=0)
    with pytest.raises(ValueError, match="budget must be a whole number"):
        finetune.label_budget(10, 0, seed=0)


def test_take_picks_examples_with_their_labels():
    pair = ([[[0]], [[1]], [[2]]], [5, 6, 7])
    assert finetune.take(pair, [2, 0]) == ([[[2]], [[0]]], [7, 5])


def test_mean_interval_uses_students_t_for_few_values_and_the_normal_for_many():
    mean, low, high = finetune.mean_interval([1.0, 2.0, 3.0])  # sd 1, 3 values: t = 4.303
    assert mean == pytest.approx(2.0)
    assert (high - mean) == pytest.approx(4.303 / 3**0.5) and (mean - low) == pytest.approx(
        4.303 / 3**0.5
    )
    diffs = torch.tensor([1.0, -1.0] * 50)  # paired differences, many: 1.96 standard errors
    mean, low, high = finetune.mean_interval(diffs)
    assert mean == 0.0 and high == pytest.approx(1.96 * diffs.std().item() / 10)
    with pytest.raises(ValueError, match="at least 2 values"):
        finetune.mean_interval([0.5])


def test_fine_tune_budget_trains_on_the_drawn_labels_and_hits_are_per_example(gpt):
    model, train, test = _last_letter_model(gpt)
    cfg = finetune.paper_config(256, max_steps=48, lr=1e-2)
    assert cfg.max_steps == 48, "max_steps fixes the length of a run"
    trainer = finetune.fine_tune_budget(model, train, 192, seed=0, cfg=cfg)
    assert trainer.step == 48 and trainer.cfg.seed == 0
    hit = finetune.hits(model.eval(), *test)
    assert hit.dtype == torch.bool and hit.shape == (64,) and hit.float().mean() > 0.9
    tiny = TaskModel(gpt, "classification", model.special)
    assert finetune.fine_tune_budget(tiny, train, 8, seed=1, cfg=cfg).cfg.batch_size == 8, (
        "the batch is cut to a budget smaller than it"
    )
