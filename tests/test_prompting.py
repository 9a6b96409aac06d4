"""gptbook.prompting: options scored by likelihood in one pass; zero-shot accuracy, interval."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gptbook import prompting
from gptbook.model import GPT, GPTConfig
from gptbook.tokenizers import CharTokenizer

TOKENIZER = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz :?\n")


@pytest.fixture
def model():
    torch.manual_seed(0)
    vocab = TOKENIZER.vocab_size
    return GPT(GPTConfig(vocab_size=vocab, block_size=24, n_layer=2, n_head=2, n_embd=32))


def one_by_one(model, prompt: str, option: str) -> float:
    """The option's log-likelihood, one token at a time, each from its own forward pass."""
    model.eval()
    context, total = TOKENIZER.encode(prompt), 0.0
    with torch.no_grad():
        for token in TOKENIZER.encode(option):
            logits, _ = model(torch.tensor([context]))
            total += F.log_softmax(logits[0, -1], dim=-1)[token].item()
            context.append(token)
    return total


def test_score_options_equals_a_token_by_token_computation(model):
    options = [" yes", " no", " maybe so"]  # different lengths: padded side by side
    scores = prompting.score_options(model, TOKENIZER, "q: is it?\na:", options)
    expected = [one_by_one(model, "q: is it?\na:", o) for o in options]
    assert scores == pytest.approx(expected, abs=1e-4)
    normalized = prompting.score_options(model, TOKENIZER, "q: is it?\na:", options, True)
    lengths = [len(TOKENIZER.encode(o)) for o in options]
    assert normalized == pytest.approx([s / n for s, n in zip(expected, lengths)], abs=1e-4)


def test_score_options_leaves_the_model_in_its_mode(model):
    model.train()
    first = prompting.score_options(model, TOKENIZER, "ab", ["c", "d"])
    assert model.training, "the model is put back in training mode"
    assert prompting.score_options(model, TOKENIZER, "ab", ["c", "d"]) == first, "no dropout"


def test_a_prompt_longer_than_the_context_is_refused_or_cut_from_the_left(model):
    long_prompt = "abcdefghij" * 3  # 30 tokens; the context is 24
    with pytest.raises(ValueError, match="more than the context of 24.*truncate=True"):
        prompting.score_options(model, TOKENIZER, long_prompt, [" x"])
    cut = prompting.score_options(model, TOKENIZER, long_prompt, [" x", " yz"], truncate=True)
    kept = [long_prompt[-22:], long_prompt[-21:]]  # each keeps what fits beside its option
    assert cut == pytest.approx(
        [one_by_one(model, kept[0], " x"), one_by_one(model, kept[1], " yz")], abs=1e-4
    )


def test_score_options_refuses_what_it_cannot_score(model):
    with pytest.raises(ValueError, match="at least one option"):
        prompting.score_options(model, TOKENIZER, "a", [])
    with pytest.raises(ValueError, match="encodes to no tokens"):
        prompting.score_options(model, TOKENIZER, "a", [""])
    with pytest.raises(ValueError, match="shorten the option"):
        prompting.score_options(model, TOKENIZER, "a", ["b" * 24], truncate=True)
    with pytest.raises(ValueError, match="the prompt encodes to no tokens"):
        prompting.score_options(model, TOKENIZER, "", ["b"])


def test_wilson_interval_matches_the_textbook_values():
    low, high = prompting.wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    low, high = prompting.wilson_interval(0, 10)
    assert low == 0.0 and round(high, 3) == 0.278
    with pytest.raises(ValueError, match="0 ≤ correct ≤ n"):
        prompting.wilson_interval(11, 10)


def test_zero_shot_accuracy_counts_the_highest_scoring_option(model):
    prompts = ["ab", "q:", "hello", "xyz"]
    options = [" a", " bc", " d"]
    best = []
    for p in prompts:
        scores = [one_by_one(model, p, o) for o in options]
        best.append(max(range(3), key=scores.__getitem__))
    right = [dict(prompt=p, options=options, label=b) for p, b in zip(prompts, best)]
    wrong = [dict(prompt=p, options=options, label=(b + 1) % 3) for p, b in zip(prompts, best)]
    result = prompting.zero_shot_accuracy(model, TOKENIZER, right + wrong)
    assert (result.value, result.n) == (0.5, 8)
    assert result.low < 0.5 < result.high
    assert str(result).startswith("50.0% (95% CI")
    with pytest.raises(ValueError, match="at least one question"):
        prompting.zero_shot_accuracy(model, TOKENIZER, [])
    with pytest.raises(ValueError, match="use one of sum, mean, pmi"):
        prompting.zero_shot_accuracy(model, TOKENIZER, right, scoring="max")


def test_pmi_is_how_much_the_prompt_raises_each_option(model):
    options = [" a", " bc", " d"]
    pmi = prompting.pmi_scores(model, TOKENIZER, "hello", options, neutral="\n")
    expected = [one_by_one(model, "hello", o) - one_by_one(model, "\n", o) for o in options]
    assert pmi == pytest.approx(expected, abs=1e-4)
    best = max(range(3), key=pmi.__getitem__)
    question = dict(prompt="hello", options=options, label=best)
    assert prompting.zero_shot_accuracy(model, TOKENIZER, [question], scoring="pmi").value == 1.0


def test_prompt_fills_a_template_and_names_a_missing_field():
    assert prompting.prompt("question", question="who?") == "Q: who?\nA:"
    assert prompting.prompt("{a} and {b}", a="x", b="y") == "x and y"
    with pytest.raises(ValueError, match="needs the field 'text'"):
        prompting.prompt("summarize")


def test_accuracy_takes_any_scorer():
    def longest(prompt, options):
        return [len(o) for o in options]

    questions = [
        dict(prompt="", options=["a", "bbb", "cc"], label=1),
        dict(prompt="", options=["aaaa", "b"], label=0),
        dict(prompt="", options=["a", "bb"], label=0),
    ]
    result = prompting.accuracy(longest, questions)
    assert (result.value, result.n) == (pytest.approx(2 / 3), 3)
    assert (result.low, result.high) == pytest.approx(prompting.wilson_interval(2, 3))
    with pytest.raises(ValueError, match="at least one question"):
        prompting.accuracy(longest, iter([]))


def test_a_fast_dev_run_scores_the_first_few_questions(monkeypatch):
    questions = [dict(prompt="", options=["a", "bb"], label=i % 2) for i in range(10)]
    monkeypatch.setenv("GPTBOOK_FAST_DEV_RUN", "2")
    result = prompting.accuracy(lambda prompt, options: [len(o) for o in options], iter(questions))
    assert (result.n, result.right) == (2, (False, True))


def test_difference_pairs_the_outcomes_of_the_same_questions():
    a = prompting.Accuracy.of([True, True, False, True, False, True])
    b = prompting.Accuracy.of([True, False, False, True, False, False])
    mean, low, high = prompting.difference(a, b)
    d = torch.tensor([0.0, 1, 0, 0, 0, 1])
    assert mean == pytest.approx(2 / 6)
    assert high - mean == pytest.approx(prompting.Z_95 * d.std().item() / 6**0.5)
    assert mean - low == pytest.approx(high - mean)
    assert prompting.difference(a, a) == (0.0, 0.0, 0.0), "the same outcomes: no difference"
    with pytest.raises(ValueError, match="same questions"):
        prompting.difference(a, prompting.Accuracy.of([True]))
    with pytest.raises(ValueError, match="at least one question"):
        prompting.Accuracy.of([])


def test_complete_is_the_greedy_continuation(model):
    prompt, steps = "q: is it?\na:", 5
    context = TOKENIZER.encode(prompt)
    model.eval()
    with torch.no_grad():
        for _ in range(steps):
            logits, _ = model(torch.tensor([context[-24:]]))
            context.append(int(logits[0, -1].argmax()))
    model.train()
    assert prompting.complete(model, TOKENIZER, prompt, steps) == TOKENIZER.decode(context[-5:])
    assert model.training, "the model is put back in training mode"
    long = "abcdefghij" * 3  # longer than the context of 24: its end is kept
    assert prompting.complete(model, TOKENIZER, long, 3) == prompting.complete(
        model, TOKENIZER, long[-24:], 3
    )


def test_k_shot_prompt_puts_solved_examples_before_the_question():
    examples = [("Q: 2+2?\nA:", " 4"), ("Q: 3+3?\nA:", " 6")]
    assert prompting.k_shot_prompt(examples, "Q: 1+1?\nA:") == (
        "Q: 2+2?\nA: 4\n\nQ: 3+3?\nA: 6\n\nQ: 1+1?\nA:"
    )
    assert prompting.k_shot_prompt([], "Q: 1+1?\nA:") == "Q: 1+1?\nA:", "zero-shot"
    assert prompting.k_shot_prompt(examples[:1], "x", delimiter="\n") == "Q: 2+2?\nA: 4\nx"


def test_k_shot_draws_distinct_examples_from_the_pool_with_their_right_answers():
    pool = [dict(prompt=f"p{i}=", options=[f"a{i}", f"b{i}"], label=i % 2) for i in range(10)]
    questions = [dict(prompt="q=", options=["x", "y"], label=1)] * 3
    shots = prompting.k_shot(questions, pool, k=4, seed=1)
    for shot in shots:
        assert (shot["options"], shot["label"]) == (["x", "y"], 1), "the question is unchanged"
        *examples, last = shot["prompt"].split(prompting.DELIMITER)
        assert last == "q=" and len(examples) == len(set(examples)) == 4
        for example in examples:
            i = int(example[1 : example.index("=")])
            assert example == f"p{i}=" + ("a", "b")[i % 2] + str(i), "each with its right option"
    assert prompting.k_shot(questions, pool, k=4, seed=1) == shots, "the same draws for a seed"
    assert prompting.k_shot(questions, pool, k=0) == questions
    with pytest.raises(ValueError, match="0 ≤ k ≤ 10"):
        prompting.k_shot(questions, pool, k=11)


def test_k_shot_refuses_prompts_that_do_not_fit_the_context():
    pool = [dict(prompt="abc:", options=[" d", " e"], label=0) for _ in range(8)]
    questions = [dict(prompt="xyz:", options=[" a", " b"], label=1)]
    fits = prompting.k_shot(questions, pool, k=2, tokenizer=TOKENIZER, block_size=24)
    assert len(TOKENIZER.encode(fits[0]["prompt"])) + 2 <= 24
    with pytest.raises(ValueError, match="1 of 1 4-shot prompts do not fit a context of 24"):
        prompting.k_shot(questions, pool, k=4, tokenizer=TOKENIZER, block_size=24)
    with pytest.raises(ValueError, match="both tokenizer and block_size"):
        prompting.k_shot(questions, pool, k=1, tokenizer=TOKENIZER)


def test_accuracy_counts_the_prompts_it_cut(model):
    short = dict(prompt="ab:", options=[" a", " b"], label=0)
    long = dict(prompt="ab " * 10, options=[" a", " b"], label=0)  # 30 tokens > 24
    assert prompting.too_long(TOKENIZER, [short, long, long], 24) == [1, 2]
    with pytest.raises(ValueError, match="more than the context of 24"):
        prompting.zero_shot_accuracy(model, TOKENIZER, [short, long])
    result = prompting.zero_shot_accuracy(model, TOKENIZER, [short, long, long], truncate=True)
    assert result.truncated == 2 and "2 prompts cut to fit the context" in str(result)
    fitting = prompting.zero_shot_accuracy(model, TOKENIZER, [short], truncate=True)
    assert fitting.truncated == 0 and "cut" not in str(fitting)
