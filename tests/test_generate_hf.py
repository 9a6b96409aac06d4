"""gptbook's generate and beam_search against transformers' generate, on the same weights
(written by to_hf): the same tokens."""

from __future__ import annotations

import pytest
import torch
import transformers

from gptbook import sampling
from gptbook.model import GPT, GPTConfig

CONFIG = GPTConfig(
    vocab_size=13, block_size=32, n_layer=2, n_head=2, n_embd=16, dropout=0, norm="pre"
)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    torch.manual_seed(0)
    ours = GPT(CONFIG).eval()
    with torch.no_grad():  # sharper than an initialisation: beams that differ, endings that come
        ours.wte.weight.mul_(40)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(
        ours.to_hf(tmp_path_factory.mktemp("hf") / "m")
    ).eval()
    return ours, theirs


def hf_generate(theirs, prompt, **settings):
    with torch.no_grad():
        return theirs.generate(
            prompt, attention_mask=torch.ones_like(prompt), pad_token_id=0, **settings
        )


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_equals_transformers(pair, use_cache):
    ours, theirs = pair
    prompt = torch.tensor([[1, 5, 2], [7, 7, 3]])
    want = hf_generate(theirs, prompt, max_new_tokens=20, do_sample=False)
    assert torch.equal(
        sampling.generate(ours, prompt, 20, temperature=0, use_cache=use_cache), want
    )


@pytest.mark.parametrize(
    "num_beams, length_penalty, eos",
    [(2, 1.0, None), (4, 1.0, 3), (4, 0.0, 3), (3, 2.0, 3), (5, -1.0, 4)],
)
def test_beam_search_equals_transformers(pair, num_beams, length_penalty, eos):
    ours, theirs = pair
    for prompt in ([[1, 5, 2]], [[9]], [[4, 4, 8, 0]]):
        prompt = torch.tensor(prompt)
        want = hf_generate(
            theirs,
            prompt,
            max_new_tokens=12,
            num_beams=num_beams,
            do_sample=False,
            length_penalty=length_penalty,
            eos_token_id=eos,
        )
        got = sampling.beam_search(ours, prompt, 12, num_beams, length_penalty, eos_token_id=eos)
        assert got.tolist() == want.tolist(), (prompt, got, want)


@pytest.mark.parametrize(
    "settings",
    [
        dict(temperature=0.7),
        dict(temperature=1.3, top_k=4),
        dict(temperature=0.9, top_p=0.8),
        dict(temperature=1.0, min_p=0.2),
        dict(temperature=0.8, top_k=6, top_p=0.9, min_p=0.05, repetition_penalty=1.3),
    ],
)
def test_sampling_with_the_processors_equals_transformers(pair, settings):
    """The same processed distribution, drawn from with the same random numbers: the same tokens.
    Any difference in a processor, or in their order, changes some draw."""
    ours, theirs = pair
    prompt = torch.tensor([[1, 5, 2], [7, 7, 3]])
    torch.manual_seed(11)  # transformers draws from torch's global generator, as generate does
    hf_settings = {"top_k": 0, **settings}  # top_k=0: no default top-k of 50 behind our back
    want = hf_generate(theirs, prompt, max_new_tokens=30, do_sample=True, **hf_settings)
    torch.manual_seed(11)
    got = sampling.generate(ours, prompt, 30, **settings)
    assert torch.equal(got, want)
