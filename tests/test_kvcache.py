"""The KV cache (attention.KVCache, sampling.Decoder) and the cached paths of generate and
beam_search: the cache must change the speed, never the tokens."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from gptbook import sampling, sizes
from gptbook.attention import KVCache
from gptbook.model import GPT, GPTConfig
from gptbook.sampling import Decoder

CONFIGS = {
    "post-LN": GPTConfig(vocab_size=11, block_size=24, n_layer=2, n_head=2, n_embd=16, dropout=0),
    "pre-LN": GPTConfig(
        vocab_size=11, block_size=24, n_layer=3, n_head=4, n_embd=16, dropout=0, norm="pre"
    ),
    "banded": GPTConfig(
        vocab_size=11, block_size=24, n_layer=2, n_head=2, n_embd=16, dropout=0, local_window=5
    ),
    "llama (RoPE, GQA)": GPTConfig(
        vocab_size=11,
        block_size=24,
        n_layer=2,
        n_head=4,
        n_kv_head=2,
        n_embd=16,
        dropout=0,
        norm="pre",
        norm_type="rmsnorm",
        mlp="swiglu",
        positions="rope",
        bias=False,
        tie_embeddings=False,
    ),
    "padded vocab": GPTConfig(
        vocab_size=11, block_size=24, n_layer=1, n_head=2, n_embd=16, dropout=0, pad_vocab_to=8
    ),
}


def model(name: str, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(CONFIGS[name]).eval()


@pytest.mark.parametrize("name", CONFIGS)
def test_cached_logits_equal_the_full_forward(name):
    net, g = model(name), torch.Generator().manual_seed(1)
    idx = torch.randint(0, 11, (3, 20), generator=g)
    full, _ = net(idx)  # (3, 20, V)
    cache, pieces = net.new_cache(), []
    for a, b in [(0, 7), (7, 8), (8, 13), (13, 20)]:  # a prompt, one token, then chunks
        pieces.append(net(idx[:, a:b], cache=cache)[0])
    assert cache.length == 20
    assert torch.allclose(torch.cat(pieces, 1), full, atol=1e-5)


@pytest.mark.parametrize("name", CONFIGS)
def test_cached_greedy_generation_equals_uncached_token_for_token(name):
    net, prompt = model(name), torch.tensor([[1, 2, 3], [4, 5, 6]])
    # 40 new tokens: past block_size=24, where the window slides and the cache steps aside
    cached = sampling.generate(net, prompt, 40, temperature=0)
    uncached = sampling.generate(net, prompt, 40, temperature=0, use_cache=False)
    assert cached.shape == (2, 43) and torch.equal(cached, uncached)


def test_cached_sampling_equals_uncached_with_every_processor():
    net, prompt = model("pre-LN"), torch.tensor([[1, 2, 3]])
    settings = dict(temperature=0.8, top_k=6, top_p=0.9, min_p=0.05, repetition_penalty=1.3)
    a, b = (
        sampling.generate(
            net, prompt, 20, **settings, use_cache=c, generator=torch.Generator().manual_seed(2)
        )
        for c in (True, False)
    )
    assert torch.equal(a, b)


def test_the_cache_computes_each_token_once():
    net, seen = model("post-LN"), []
    net.blocks[0].register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    sampling.generate(net, torch.tensor([[1, 2, 3, 4]]), 5, temperature=0)
    assert seen == [4, 1, 1, 1, 1]
    seen.clear()
    sampling.generate(net, torch.tensor([[1, 2, 3, 4]]), 5, temperature=0, use_cache=False)
    assert seen == [4, 5, 6, 7, 8]


def test_kv_cache_memory_is_two_layers_tokens_width():
    config = CONFIGS["pre-LN"]
    net, cache = model("pre-LN"), KVCache(config.n_layer, 24)
    net(torch.zeros(2, 5, dtype=torch.long), cache=cache)
    want = sizes.kv_cache_bytes(config, T=24, batch_size=2, bytes_per_element=4)
    assert cache.nbytes == want == 2 * config.n_layer * 24 * config.n_embd * 2 * 4
    gpt2 = GPTConfig.preset("gpt2")  # 2 · 12 layers · 1,024 tokens · 768 · 2 bytes = 36 MiB
    assert sizes.kv_cache_bytes(gpt2) == 36 * 2**20


def test_cache_crop_and_bad_use():
    net, cache = model("pre-LN"), KVCache(3, 10)
    idx = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    net(idx, cache=cache)
    cache.crop(2)
    again, _ = net(idx[:, 2:], cache=cache)  # the cropped tokens, computed again: the same
    assert torch.allclose(again, net(idx)[0][:, 2:], atol=1e-5)
    with pytest.raises(ValueError, match="can keep 0..4"):
        cache.crop(5)
    with pytest.raises(ValueError, match="max_len large enough"):
        net(torch.zeros(2, 7, dtype=torch.long), cache=cache)  # 4 cached + 7 > 10
    assert cache.length == 4  # nothing counted from the refused call
    long = KVCache(3, 40)
    net(torch.zeros(1, 20, dtype=torch.long), cache=long)
    with pytest.raises(ValueError, match="25 tokens but the context is block_size=24"):
        net(torch.zeros(1, 5, dtype=torch.long), cache=long)


def test_reorder_follows_the_chosen_rows():
    net = model("pre-LN")
    idx = torch.tensor([[1, 2, 3], [7, 8, 9]])
    step = Decoder(net)
    step(idx)
    step.reorder(torch.tensor([1, 1]))  # both rows now continue the second sequence
    grown = torch.cat([idx[[1, 1]], torch.tensor([[4], [5]])], 1)
    assert torch.allclose(step(grown), net(grown)[0][:, -1:], atol=1e-5)


def test_prompts_longer_than_the_context_are_cropped_with_a_warning():
    net = model("pre-LN")
    long = torch.randint(0, 11, (1, 30), generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match="the prompt has 30 tokens and the model reads 24"):
        out = sampling.generate(net, long, 4, temperature=0)
    assert out.shape == (1, 34) and torch.equal(out[:, :30], long)  # nothing of it is lost
    assert torch.equal(out[:, 30:], sampling.generate(net, long[:, -24:], 4, temperature=0)[:, 24:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sampling.generate(net, long[:, -24:], 4, temperature=0)  # a prompt that fits: silent


def test_generate_rejects_bad_settings_before_any_work():
    net, prompt = model("pre-LN"), torch.tensor([[1]])
    for bad, match in [
        (dict(temperature=-1), "temperature must be a number ≥ 0"),
        (dict(top_k=0), "top_k must be a whole number ≥ 1"),
        (dict(top_p=0.0), "top_p must be a number in \\(0, 1\\]"),
        (dict(top_p=1.5), "top_p must be a number in \\(0, 1\\]"),
        (dict(min_p=2.0), "min_p must be in \\[0, 1\\]"),
        (dict(repetition_penalty=0), "repetition_penalty must be > 0"),
        (dict(temperature=0, top_k=0), "top_k must be"),  # checked even where greedy ignores it
    ]:
        with pytest.raises(ValueError, match=match):
            sampling.generate(net, prompt, 3, **bad)


# ---------------------------------------------------------------------- beam search
def sequence_logprob(net: GPT, prompt: torch.Tensor, new: list[int]) -> float:
    ids = torch.cat([prompt, torch.tensor([new])], 1)
    logprobs = net(ids)[0][0, :-1].log_softmax(-1)  # (T - 1, V)
    targets = ids[0, 1:]
    return (
        logprobs[prompt.shape[1] - 1 :]
        .gather(-1, targets[prompt.shape[1] - 1 :, None])
        .sum()
        .item()
    )


def test_one_beam_is_greedy_decoding():
    net, prompt = model("pre-LN"), torch.tensor([[3, 1]])
    greedy = sampling.generate(net, prompt, 12, temperature=0)
    assert torch.equal(sampling.beam_search(net, prompt, 12, num_beams=1), greedy)


def test_enough_beams_find_the_likeliest_sequence():
    net, prompt = model("post-LN", seed=3), torch.tensor([[2]])
    V, n = 11, 3
    best = max(
        itertools.product(range(V), repeat=n), key=lambda s: sequence_logprob(net, prompt, list(s))
    )
    found = sampling.beam_search(net, prompt, n, num_beams=V * V)  # every prefix of length 2 kept
    assert found[0, 1:].tolist() == list(best)
    narrow = sampling.beam_search(net, prompt, n, num_beams=2)
    assert sequence_logprob(net, prompt, narrow[0, 1:].tolist()) <= sequence_logprob(
        net, prompt, list(best)
    )


def test_cached_beam_search_equals_uncached():
    net, prompt = model("banded"), torch.tensor([[3, 1, 4]])
    a = sampling.beam_search(net, prompt, 15, num_beams=4, eos_token_id=0)
    b = sampling.beam_search(net, prompt, 15, num_beams=4, eos_token_id=0, use_cache=False)
    assert torch.equal(a, b)


def test_beam_search_bad_input():
    net = model("pre-LN")
    with pytest.raises(ValueError, match="one prompt"):
        sampling.beam_search(net, torch.zeros(2, 1, dtype=torch.long), 3, num_beams=2)
    with pytest.raises(ValueError, match="num_beams must be a whole number ≥ 1"):
        sampling.beam_search(net, torch.zeros(1, 1, dtype=torch.long), 3, num_beams=0)


def test_generated_ids_can_feed_training():
    net = model("pre-LN").train()
    out = sampling.generate(
        net, torch.tensor([[1, 2]]), 6, generator=torch.Generator().manual_seed(0)
    )
    loss = net(out[:, :-1], out[:, 1:])[1]  # the ids are ordinary tensors, not inference ones
    loss.backward()
    assert net.wte.weight.grad is not None
