"""gptbook.nar and gptbook.speculative: parallel decoding, and exact draft-then-verify."""

from __future__ import annotations

import pytest
import torch

from gptbook import bigram, nar, sampling, speculative
from gptbook.model import GPT, GPTConfig


def test_words_and_encoding():
    assert nar.words("The Brother, brothers; another brother's", 7) == [
        "brother",
        "another",
        "brother",
    ]
    ids = nar.encode(["abc", "zzz"])
    assert ids.tolist() == [[0, 1, 2], [25, 25, 25]] and nar.decode(ids) == ["abc", "zzz"]
    with pytest.raises(ValueError, match="one length"):
        nar.encode(["ab", "abc"])
    with pytest.raises(ValueError, match="a-z"):
        nar.encode(["ab1"])


def test_model_is_bidirectional_and_checks_length():
    model = nar.MaskedWordModel(5)
    x = torch.randint(26, (1, 5))
    y = x.clone()
    y[0, 4] = (y[0, 4] + 1) % 26
    assert not torch.allclose(model(x)[0, 0], model(y)[0, 0])  # a later letter changes position 0
    with pytest.raises(ValueError, match="words of 5 letters"):
        model(torch.zeros(1, 4, dtype=torch.long))


def test_random_masks_mix_suffixes_and_subsets():
    masks = nar.random_masks(4000, 6, torch.Generator().manual_seed(0))
    counts = masks.sum(1)
    assert counts.min() >= 1 and counts.max() == 6
    suffix = torch.stack([m == (torch.arange(6) >= 6 - int(m.sum())) for m in masks]).all(1)
    assert 0.45 < suffix.float().mean() < 0.75  # half are suffixes, plus subsets that happen to be


def test_remask_lowest():
    tokens = torch.tensor([[5, 6, 7, 8]])
    conf = torch.tensor([[0.9, 0.1, 0.5, 0.3]])
    assert nar.remask_lowest(tokens, conf, 2, 26).tolist() == [[5, 26, 7, 26]]
    assert torch.equal(nar.remask_lowest(tokens, conf, 0, 26), tokens)


def test_decoders_learn_a_tiny_language():
    """On a language of two words, AR decoding is consistent and one-shot NAR mixes them."""
    data = nar.encode(["abcd", "dcba"] * 200)
    model = nar.MaskedWordModel(4, d_hidden=64)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    nar.fit(model, data, steps=300, batch_size=64, lr=1e-2, generator=g)
    valid = {"abcd", "dcba"}
    ar = nar.decode(nar.decode_left_to_right(model, 400, generator=g))
    one_shot = nar.decode(nar.decode_mask_predict(model, 400, 1, generator=g))
    refined = nar.decode(nar.decode_mask_predict(model, 400, 4, generator=g))
    share = {
        name: sum(w in valid for w in out) / 400
        for name, out in [("ar", ar), ("one", one_shot), ("ref", refined)]
    }
    assert share["ar"] > 0.95 and share["ref"] > 0.95
    assert share["one"] < 0.5  # independent letters: about 1/8 of words are consistent
    with pytest.raises(ValueError, match="iterations"):
        nar.decode_mask_predict(model, 1, 5)


def test_acceptance_and_residual_make_the_target():
    g = torch.Generator().manual_seed(0)
    p, q = (
        torch.softmax(torch.randn(6, generator=g), -1),
        torch.softmax(torch.randn(6, generator=g), -1),
    )
    accept, resid = speculative.acceptance(p, q), speculative.residual(p, q)
    assert torch.all(accept <= 1) and torch.allclose(resid.sum(), torch.tensor(1.0))
    assert torch.allclose(q * accept + (1 - (q * accept).sum()) * resid, p, atol=1e-6)
    assert torch.allclose(speculative.residual(p, p), p)


def _models():
    V = 4
    draft, target = bigram.NGram(V, 2, smoothing=0), bigram.NGram(V, 3, smoothing=0.5)
    draft.counts.copy_(torch.tensor([[1.0, 3, 1, 1], [2, 1, 1, 4], [1, 1, 1, 1], [5, 1, 1, 1]]))
    draft.log_probs = draft.probs().log()
    target.fit(torch.tensor([0, 1, 3, 0, 1, 2, 2, 3, 0, 0, 1, 3, 3, 0, 2, 1] * 3))
    return draft, target


def test_speculative_samples_exactly_the_target():
    draft, target = _models()
    prompt, g, n = torch.tensor([[0, 1]]), torch.Generator().manual_seed(0), 6000
    pairs = torch.stack(
        [
            speculative.speculative_generate(target, draft, prompt, 2, 3, generator=g)[0][0, -2:]
            for _ in range(n)
        ]
    )
    first = target(prompt)[0][0, -1].exp()  # (V,)
    ext = torch.cat([prompt.expand(4, -1), torch.arange(4)[:, None]], 1)
    exact = first[:, None] * target(ext)[0][:, -1].exp()  # (V, V)
    freq = torch.bincount(pairs[:, 0] * 4 + pairs[:, 1], minlength=16).view(4, 4) / n
    assert 0.5 * (freq - exact).abs().sum() < 0.03
    draft_first = draft(prompt)[0][0, -1].exp()
    assert 0.5 * (draft_first - first).abs().sum() > 0.1  # the draft alone would be visibly wrong


def test_speculative_stats_and_greedy_agreement():
    draft, target = _models()
    prompt = torch.tensor([[0, 1]])
    out, stats = speculative.speculative_generate(
        target, draft, prompt, 50, 4, generator=torch.Generator().manual_seed(1)
    )
    assert out.shape == (1, 52) and stats.new_tokens == 50
    assert stats.target_calls < 50 and stats.draft_calls == 4 * stats.target_calls
    assert 0 <= stats.accepted <= stats.proposed
    greedy, _ = speculative.speculative_generate(target, draft, prompt, 20, 3, temperature=0)
    from gptbook import sampling

    assert torch.equal(greedy, sampling.generate(target, prompt, 20, temperature=0))


def test_speculative_bad_input():
    draft, target = _models()
    with pytest.raises(ValueError, match="one sequence"):
        speculative.speculative_generate(target, draft, torch.zeros(2, 1, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="gamma"):
        speculative.speculative_generate(
            target, draft, torch.zeros(1, 1, dtype=torch.long), 3, gamma=0
        )


# ------------------------------------------------------------ with Transformers (chapter 9)
def _gpts():
    config = GPTConfig(vocab_size=5, block_size=16, n_layer=1, n_head=2, n_embd=8, dropout=0)
    torch.manual_seed(0)
    target, draft = GPT(config).eval(), GPT(config).eval()
    with torch.no_grad():  # distributions far from uniform, and far from each other
        target.wte.weight.mul_(60)
        draft.wte.weight.mul_(30)
    return target, draft


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_speculative_gpt_samples_the_target_distribution_chi_square(temperature):
    target, draft = _gpts()
    prompt, g, n = torch.tensor([[1, 3]]), torch.Generator().manual_seed(0), 1500
    pairs = torch.stack(
        [
            speculative.speculative_generate(
                target, draft, prompt, 2, gamma=2, temperature=temperature, generator=g
            )[0][0, -2:]
            for _ in range(n)
        ]
    )
    counts = torch.bincount(pairs[:, 0] * 5 + pairs[:, 1], minlength=25).double()

    def joint(model):  # (25,): p(x1) p(x2 | x1) after the prompt
        with torch.no_grad():
            first = (model(prompt)[0][0, -1] / temperature).softmax(-1)
            ext = torch.cat([prompt.expand(5, -1), torch.arange(5)[:, None]], 1)
            second = (model(ext)[0][:, -1] / temperature).softmax(-1)
        return (first[:, None] * second).flatten().double()

    assert speculative.chi_square(counts, joint(target))[2] > 1e-3
    assert (
        speculative.chi_square(counts, joint(draft))[2] < 1e-6
    )  # the test can tell the draft from the target


def test_speculative_gpt_greedy_is_the_target_greedy_and_the_caches_agree():
    target, draft = _gpts()
    prompt = torch.tensor([[1, 3, 2]])
    greedy = sampling.generate(target, prompt, 10, temperature=0)
    for use_cache in (True, False):
        out, stats = speculative.speculative_generate(
            target, draft, prompt, 10, gamma=3, temperature=0, use_cache=use_cache
        )
        assert torch.equal(out, greedy)
        assert stats.rejected <= stats.target_calls and 0 <= stats.alpha <= 1
    a = speculative.speculative_generate(
        target, draft, prompt, 10, 3, generator=torch.Generator().manual_seed(4)
    )
    b = speculative.speculative_generate(
        target, draft, prompt, 10, 3, generator=torch.Generator().manual_seed(4), use_cache=False
    )
    assert torch.equal(a[0], b[0])


def test_speculative_gpt_needs_room_for_the_drafts():
    target, draft = _gpts()
    with pytest.raises(ValueError, match="the target reads 16 tokens.*crop the prompt"):
        speculative.speculative_generate(
            target, draft, torch.zeros(1, 10, dtype=torch.long), 5, gamma=3
        )


def test_expected_tokens_and_speedup():
    assert speculative.expected_tokens(0.0, 4) == 1
    assert speculative.expected_tokens(1.0, 4) == 5
    assert speculative.expected_tokens(0.5, 2) == pytest.approx((1 - 0.5**3) / 0.5)
    assert speculative.expected_speedup(0.5, 2, cost=0.0) == pytest.approx(1.75)
    assert speculative.expected_speedup(0.8, 4, cost=0.1) == pytest.approx((1 - 0.8**5) / 0.2 / 1.4)


def test_chi_square_equals_scipy_and_pools_rare_outcomes():
    stats = pytest.importorskip("scipy.stats")
    counts = torch.tensor([30.0, 52, 18, 0, 100])
    probs = torch.tensor([0.15, 0.25, 0.1, 0.0, 0.5])
    statistic, dof, p = speculative.chi_square(counts, probs)
    want = stats.chisquare([30, 52, 18, 100], [30, 50, 20, 100])  # the impossible cell left out
    assert (
        dof == 3 and statistic == pytest.approx(want.statistic) and p == pytest.approx(want.pvalue)
    )
    # two outcomes expected 2 and 3 times (of 200) are pooled into one expected 5 times
    counts = torch.tensor([95.0, 100, 1, 4])
    statistic, dof, p = speculative.chi_square(counts, torch.tensor([0.475, 0.5, 0.01, 0.015]))
    want = stats.chisquare([95, 100, 5], [95, 100, 5])
    assert dof == 2 and p == pytest.approx(want.pvalue)
    assert speculative.chi_square(torch.tensor([5.0, 5, 1]), torch.tensor([0.5, 0.5, 0]))[2] == 0
    with pytest.raises(ValueError, match="one entry per outcome"):
        speculative.chi_square(torch.ones(3), torch.ones(4))


def test_verify_accepts_up_to_the_first_rejection():
    p = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.8, 0.0], [0.1, 0.1, 0.8]])  # (γ + 1, V)
    q = torch.tensor([[0.25, 0.75, 0.0], [0.5, 0.5, 0.0]])  # (γ, V)
    drafted = torch.tensor([1, 0])  # accepted with chance 2/3, then 2/5
    n, after = speculative.verify(p, q, drafted, torch.tensor([0.6, 0.3]))
    assert n == 2 and torch.equal(after, p[2])  # both pass: the bonus token from p's last row
    n, after = speculative.verify(p, q, drafted, torch.tensor([0.6, 0.5]))
    assert n == 1 and torch.allclose(after, torch.tensor([0.0, 1.0, 0.0]))  # norm(max(p - q, 0))
    n, after = speculative.verify(p, q, drafted, torch.tensor([0.7, 0.0]))
    assert n == 0 and torch.allclose(after, torch.tensor([1.0, 0.0, 0.0]))


def test_a_fast_dev_run_stops_nar_fit_early(monkeypatch):
    monkeypatch.setenv("GPTBOOK_FAST_DEV_RUN", "3")
    data = nar.encode(["abcd", "dcba"] * 20)
    assert len(nar.fit(nar.MaskedWordModel(4, d_hidden=8), data, steps=300, batch_size=8)) == 3
