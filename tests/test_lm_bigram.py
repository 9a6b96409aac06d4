"""gptbook.lm and gptbook.bigram: the loss, the windows, n-gram counting, the neural bigram."""

from __future__ import annotations

import math

import pytest
import torch

from gptbook import bigram, data, lm


def test_uniform_model_scores_ln_v():
    V = 7
    uniform = bigram.NGram(V, n=2)  # no counts: every row is uniform
    ids = torch.randint(V, (500,), generator=torch.Generator().manual_seed(0))
    assert lm.evaluate(uniform, ids, block_size=50) == pytest.approx(math.log(V), abs=1e-5)
    assert lm.uniform_loss(V) == math.log(V)
    with pytest.raises(ValueError):
        lm.uniform_loss(0)


def test_windows_cover_every_target_once():
    ids = torch.arange(23)
    x, y = lm.windows(ids, 5)
    assert x.shape == y.shape == (4, 5)
    assert torch.equal(y.flatten(), torch.arange(1, 21)) and torch.equal(x + 1, y)
    with pytest.raises(ValueError, match="no window"):
        lm.windows(torch.arange(3), 5)


def test_cross_entropy_shape_check():
    with pytest.raises(ValueError, match="targets' shape"):
        lm.cross_entropy(torch.zeros(2, 3, 5), torch.zeros(2, 4, dtype=torch.long))


def test_bigram_counts_and_probabilities():
    ids = torch.tensor([0, 1, 0, 1, 2, 0])
    model = bigram.NGram(3, n=2, smoothing=0).fit(ids)
    assert model.counts.tolist() == [[0, 2, 0], [1, 0, 1], [1, 0, 0]]
    assert torch.allclose(model.probs(), torch.tensor([[0, 1, 0], [0.5, 0, 0.5], [1, 0, 0]]))
    smoothed = bigram.NGram(3, n=2, smoothing=1).fit(ids).probs()
    assert torch.allclose(smoothed[0], torch.tensor([1, 3, 1]) / 5)
    assert torch.allclose(smoothed.sum(1), torch.ones(3))


def test_trigram_contexts_and_padding():
    model = bigram.NGram(4, n=3, smoothing=0, pad_id=0).fit(torch.tensor([1, 2, 3, 1, 2, 0]))
    assert model.counts[1 * 4 + 2].tolist() == [1, 0, 0, 1]  # "1 2" was followed by 3 and by 0
    logits, _ = model(torch.tensor([[1, 2, 2]]))
    # position 0 reads (pad, 1): the text's start, which fit() counted the same way, followed by 2
    assert torch.allclose(logits[0, 0].exp(), torch.tensor([0.0, 0, 1, 0]))
    assert torch.allclose(logits[0, 1].exp(), torch.tensor([0.5, 0, 0, 0.5]))  # (1, 2)
    assert torch.allclose(logits[0, 2].exp(), torch.full((4,), 0.25))  # (2, 2): never seen, uniform


def test_ngram_losses_fall_with_context():
    train, val = data.tokens("train")[:200_000], data.tokens("val")[:50_000]
    V = data.char_tokenizer().vocab_size
    losses = [lm.evaluate(bigram.NGram(V, n).fit(train), val) for n in (1, 2, 3)]
    assert losses[0] > losses[1] > losses[2]
    assert 2.3 < losses[1] < 2.8  # a character bigram: about 2.5 nats


def test_ngram_bad_arguments():
    with pytest.raises(ValueError, match="n must be ≥ 1"):
        bigram.NGram(5, n=0)
    with pytest.raises(ValueError, match="smoothing"):
        bigram.NGram(5, smoothing=-1)
    with pytest.raises(ValueError, match="too large"):
        bigram.NGram(50_257, n=2)


def test_neural_bigram_learns_the_counted_table():
    torch.manual_seed(0)
    V, ids = 5, torch.randint(5, (4000,), generator=torch.Generator().manual_seed(1))
    counted = bigram.NGram(V, n=2, smoothing=0).fit(ids)
    model = bigram.NeuralBigram(V)
    x, y = ids[:-1][None], ids[1:][None]
    _, start = model(x, y)
    assert start.item() == pytest.approx(math.log(V))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(300):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() == pytest.approx(lm.evaluate(counted, ids, block_size=3999), abs=1e-3)
    assert torch.allclose(torch.softmax(model.logits_table.weight, -1), counted.probs(), atol=0.02)


def test_the_baseline_is_the_counted_bigram_of_the_training_plays():
    from gptbook import data

    counted = bigram.NGram(data.char_tokenizer().vocab_size, 2).fit(data.tokens("train"))
    assert bigram.baseline_loss() == lm.evaluate(counted, data.tokens("val"))
    assert bigram.baseline_loss("train") < bigram.baseline_loss("val") < bigram.baseline_loss(n=1)


def test_pad_right_pads_rows_to_the_longest():
    assert lm.pad([[1, 2, 3], [4]]).tolist() == [[1, 2, 3], [4, 0, 0]]
    assert lm.pad([[1], [2, 3]], value=9).dtype == torch.long
    assert lm.pad([[1], [2, 3]], value=9).tolist() == [[1, 9], [2, 3]]


def test_a_fast_dev_run_stops_fit_and_evaluate_after_a_few_batches(monkeypatch):
    V, calls = 7, []
    model = bigram.NeuralBigram(V)
    real_forward = model.forward
    monkeypatch.setattr(model, "forward", lambda *a: calls.append(len(a[0])) or real_forward(*a))
    ids = torch.randint(V, (10_001,), generator=torch.Generator().manual_seed(0))
    batches = lambda: lm.windows(ids, 10)  # noqa: E731 (every window: 1000 of them)
    monkeypatch.setenv("GPTBOOK_FAST_DEV_RUN", "2")
    assert len(lm.fit(model, batches, steps=500)) == 2
    calls.clear()
    lm.evaluate(model, ids, block_size=10, batch_size=64)
    assert calls == [64, 64]  # two batches of 64 windows, not all 16
    monkeypatch.delenv("GPTBOOK_FAST_DEV_RUN")
    calls.clear()
    lm.evaluate(model, ids, block_size=10, batch_size=64)
    assert len(calls) == 16 and sum(calls) == 1000
