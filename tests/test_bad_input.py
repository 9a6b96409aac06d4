"""Every bad argument gets a clear error, early: the message names the problem and the fix.

One row a probe: what is called, and a pattern its ValueError must match.
"""

from __future__ import annotations

import math

import pytest
import torch

from gptbook import (
    attention,
    checks,
    cleaning,
    data,
    finetune,
    incontext,
    induction,
    lm,
    measure,
    nar,
    positional,
    pretrained,
    prompting,
    sampling,
    scaling,
    speculative,
    student,
    tasks,
    tinylm,
)
from gptbook.bpe import ByteBPE
from gptbook.model import GPT, GPTConfig
from gptbook.tokenizers import CharTokenizer
from gptbook.train import TrainConfig, Trainer

TINY = GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8)
BYTES = ByteBPE({bytes([b]): b for b in range(256)})

PROBES = {
    "GPTConfig float size": (lambda: GPTConfig(n_embd=64.0), r"n_embd must be a whole number"),
    "GPTConfig zero layers": (lambda: GPTConfig(n_layer=0), r"n_layer must be a whole number ≥ 1"),
    "GPTConfig odd width": (
        lambda: GPTConfig(n_embd=96, n_head=5),
        r"not divisible by n_head=5.*try n_head in \[1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48\]",
    ),
    "attention sizes": (
        lambda: attention.MultiHeadAttention(32.5, 4),
        r"n_embd must be a whole number",
    ),
    "attention heads": (lambda: attention.MultiHeadAttention(32, 0), r"n_head must be a whole"),
    "TinyLM layers": (lambda: tinylm.TinyLM(10, n_layer=0), r"n_layer must be a whole number"),
    "TinyLM context": (lambda: tinylm.TinyLM(10, block_size=0), r"block_size must be a whole"),
    "lag beyond the sequence": (lambda: tinylm.lag_batch(2, 5, 4, 5), r"lag=5 leaves no target"),
    "lag of zero": (lambda: tinylm.lag_batch(2, 5, 4, 0), r"lag must be a whole number ≥ 1"),
    "windows block": (lambda: lm.windows(torch.arange(10), 0), r"block_size must be a whole"),
    "evaluate batch": (
        lambda: lm.evaluate(GPT(TINY), torch.arange(10) % 10, 4, batch_size=0),
        r"batch_size must be a whole number",
    ),
    "forward 1-D ids": (
        lambda: GPT(TINY)(torch.arange(5)),
        r"shape \(B, T\) and an integer dtype.*ids\[None\]",
    ),
    "forward float ids": (
        lambda: GPT(TINY)(torch.zeros(1, 5)),
        r"integer dtype \(torch.long\), got Tensor of shape \(1, 5\) and dtype torch.float32",
    ),
    "forward ids out of range": (
        lambda: GPT(TINY)(torch.tensor([[3, 10]])),
        r"token ids must lie in 0..9, got 3..10",
    ),
    "generate block_size too large": (
        lambda: sampling.generate(GPT(TINY), torch.zeros(1, 1, dtype=torch.long), 2, block_size=9),
        r"block_size=9 is more than the model's context, 8",
    ),
    "generate NaN temperature": (
        lambda: sampling.generate(GPT(TINY), torch.zeros(1, 1, dtype=torch.long), 2, math.nan),
        r"temperature must be a number ≥ 0",
    ),
    "char decode float": (lambda: CharTokenizer("ab").decode([0, 1.5]), r"whole numbers, got 1.5"),
    "char decode negative": (
        lambda: CharTokenizer("ab").decode([-1]),
        r"token id -1 is not in the vocabulary 0..1",
    ),
    "char decode float tensor": (
        lambda: CharTokenizer("ab").decode(torch.tensor([0.0, 1.0])),
        r"must be integers, got a tensor of torch.float32",
    ),
    "bpe decode negative": (lambda: BYTES.decode([-3]), r"token id -3 is not in the vocabulary"),
    "bpe decode float": (lambda: BYTES.decode([65.0]), r"whole numbers, got 65.0"),
    "pretrained scale": (
        lambda: pretrained.path("char", "huge"),
        r"scale='huge': use one of quick, full",
    ),
    "Trainer steps": (
        lambda: Trainer(GPT(TINY), TrainConfig(max_steps=2, warmup_steps=0)).train(steps=0),
        r"steps \(None: up to max_steps\) must be a whole number ≥ 1",
    ),
    "Trainer fractional steps": (
        lambda: Trainer(GPT(TINY), TrainConfig(max_steps=2, warmup_steps=0)).train(steps=2.5),
        r"steps \(None: up to max_steps\) must be a whole number ≥ 1, got 2.5",
    ),
    "TrainConfig NaN lr": (lambda: TrainConfig(lr=math.nan), r"lr must be a finite number"),
    "TrainConfig fractional warmup": (
        lambda: TrainConfig(warmup_steps=0.5),
        r"warmup_steps must be a whole number ≥ 0, got 0.5",
    ),
    "TrainConfig boolean steps": (
        lambda: TrainConfig(max_steps=True),
        r"max_steps must be a whole number ≥ 1, got True",
    ),
    "TrainConfig infinite eps": (lambda: TrainConfig(eps=math.inf), r"eps must be a finite number"),
    "TrainConfig zero eps": (lambda: TrainConfig(eps=0.0), r"eps must be > 0"),
    "TrainConfig infinite decay": (
        lambda: TrainConfig(weight_decay=math.inf),
        r"weight_decay must be a finite number",
    ),
    "TrainConfig fractional keep": (
        lambda: TrainConfig(keep_checkpoints=1.5),
        r"keep_checkpoints must be a whole number ≥ 1, got 1.5",
    ),
    "forward empty batch": (
        lambda: GPT(TINY)(torch.zeros(0, 4, dtype=torch.long)),
        r"idx is empty, of shape \(0, 4\)",
    ),
    "forward no tokens": (
        lambda: GPT(TINY)(torch.zeros(2, 0, dtype=torch.long)),
        r"idx is empty, of shape \(2, 0\)",
    ),
    "fit_power_law constant": (
        lambda: scaling.fit_power_law([1, 2, 4], [3.0, 3.0, 3.0]),
        r"y is the same at every x",
    ),
    "fit_power_law NaN": (
        lambda: scaling.fit_power_law([1, 2, math.nan], [3.0, 2.0, 1.0]),
        r"must be finite numbers",
    ),
    "fit_power_law inf": (
        lambda: scaling.fit_power_law([1, 2, 4], [3.0, 2.0, math.inf]),
        r"must be finite numbers",
    ),
    "training_compute negative": (
        lambda: scaling.training_compute(-1, 1e9),
        r"n_params must be a positive, finite number",
    ),
    "chinchilla_optimal inf": (
        lambda: scaling.chinchilla_optimal(math.inf),
        r"compute must be a positive, finite number",
    ),
    "beam_search NaN penalty": (
        lambda: sampling.beam_search(
            GPT(TINY), torch.zeros(1, 1, dtype=torch.long), 2, 2, length_penalty=math.nan
        ),
        r"length_penalty must be a finite number",
    ),
    "beam_search no tokens": (
        lambda: sampling.beam_search(GPT(TINY), torch.zeros(1, 1, dtype=torch.long), 0, 2),
        r"max_new_tokens must be a whole number ≥ 1",
    ),
    "expected_tokens chance above 1": (
        lambda: speculative.expected_tokens(1.5, 4),
        r"alpha is a chance of acceptance, in \[0, 1\]",
    ),
    "chi_square negative probability": (
        lambda: speculative.chi_square(torch.tensor([5, 5]), torch.tensor([1.5, -0.5])),
        r"probs must be finite and ≥ 0",
    ),
    "keep_pareto NaN alpha": (
        lambda: cleaning.QualityFilter.keep_pareto(None, ["a b"], alpha=math.nan),
        r"alpha must be a finite number > 0",
    ),
    "mixture_epochs NaN weight": (
        lambda: cleaning.mixture_epochs({"a": 10, "b": 10}, {"a": math.nan, "b": 1.0}, 100),
        r"weights must be finite and ≥ 0",
    ),
    "minhash empty": (lambda: cleaning.minhash(""), r"minhash of an empty text"),
    "ByteBPE fractional vocab": (
        lambda: ByteBPE.train("some text to learn", 300.5),
        r"vocab_size must be a whole number ≥ 1, got 300.5",
    ),
    "ntk with head size 2": (
        lambda: GPTConfig(
            n_embd=8, n_head=4, positions="rope", rope_scaling="ntk", rope_factor=2.0
        ),
        r"needs a head size D > 2",
    ),
    "multiple choice as a set": (
        lambda: finetune.build_inputs(
            "multiple_choice",
            {"context": "a b", "choices": {"c", "d"}, "label": 0},
            lambda text: [1],
            finetune.SpecialTokens(2, 3, 4),
            16,
        ),
        r"a list of at least two choices \(in order",
    ),
    "collate an empty sequence": (
        lambda: finetune.collate([[[]]]),
        r"every sequence needs at least one token",
    ),
    "generate top_p as text": (
        lambda: sampling.generate(GPT(TINY), torch.zeros(1, 1, dtype=torch.long), 2, top_p="0.5"),
        r"top_p must be a number in \(0, 1\], got '0.5'",
    ),
    "generate temperature as text": (
        lambda: sampling.generate(GPT(TINY), torch.zeros(1, 1, dtype=torch.long), 2, "1"),
        r"temperature must be a number ≥ 0",
    ),
    "get_batch fractional batch": (
        lambda: data.get_batch(torch.arange(20), 2.5, 4),
        r"batch_size must be a whole number ≥ 1, got 2.5",
    ),
    "get_batch block as text": (
        lambda: data.get_batch(torch.arange(20), 2, "4"),
        r"block_size must be a whole number ≥ 1, got '4'",
    ),
    "speculative length as text": (
        lambda: speculative.speculative_generate(
            GPT(TINY), GPT(TINY), torch.zeros(1, 1, dtype=torch.long), "2"
        ),
        r"max_new_tokens must be a whole number ≥ 0, got '2'",
    ),
    "sinusoidal fractional length": (
        lambda: positional.sinusoidal(8.5, 8),
        r"T must be a whole number ≥ 1, got 8.5",
    ),
    "attention dropout as text": (
        lambda: attention.MultiHeadAttention(8, 2, dropout="0.1"),
        r"dropout must be a finite number, got '0.1'",
    ),
    "task_batch fractional batch": (
        lambda: incontext.task_batch(2.5, 4, 4),
        r"batch_size must be a whole number ≥ 1, got 2.5",
    ),
    "char encode a number": (
        lambda: CharTokenizer("ab").encode(5),
        r"encode takes a string, got int 5",
    ),
    "GPTConfig bias as text": (lambda: GPTConfig(bias="False"), r"bias must be True or False"),
    "GPTConfig tie as text": (
        lambda: GPTConfig(tie_embeddings="no"),
        r"tie_embeddings must be True or False, got 'no'",
    ),
    "GPTConfig zero rope_base": (
        lambda: GPTConfig(positions="rope", rope_base=0.0),
        r"rope_base must be > 0",
    ),
    "GPTConfig NaN rope_base": (
        lambda: GPTConfig(positions="rope", rope_base=math.nan),
        r"rope_base must be a finite number",
    ),
    "GPTConfig infinite rope_factor": (
        lambda: GPTConfig(positions="rope", rope_scaling="linear", rope_factor=math.inf),
        r"rope_factor must be a finite number",
    ),
    "GPTConfig infinite norm_eps": (
        lambda: GPTConfig(norm_eps=math.inf),
        r"norm_eps must be a finite number",
    ),
    "GPTConfig NaN aux weight": (
        lambda: GPTConfig(n_expert=4, aux_loss_weight=math.nan),
        r"aux_loss_weight must be a finite number",
    ),
    "GPTConfig negative aux weight": (
        lambda: GPTConfig(n_expert=4, aux_loss_weight=-0.1),
        r"aux_loss_weight must be ≥ 0",
    ),
    "TrainConfig clip": (lambda: TrainConfig(grad_clip=-1.0), r"grad_clip must be ≥ 0"),
    # a float or a string where a count belongs: refused where it is passed, not deep inside
    "uniform_loss string": (lambda: lm.uniform_loss("3"), r"vocab_size must be a whole number"),
    "uniform_loss float": (lambda: lm.uniform_loss(2.5), r"vocab_size must be a whole number"),
    "pad float value": (
        lambda: lm.pad([[1], [2, 3]], 2.5),
        r"value must be a token id, IGNORE_INDEX or False",
    ),
    "causal_mask float": (lambda: attention.causal_mask(2.5), r"T must be a whole number"),
    "banded_mask float": (lambda: attention.banded_mask(4, 2.5), r"width must be a whole number"),
    "strided_mask float": (lambda: attention.strided_mask(4, 2.5), r"stride must be a whole"),
    "wilson_interval string": (
        lambda: prompting.wilson_interval(1, "4"),
        r"n must be a whole number ≥ 1, got '4'",
    ),
    "wilson_interval float": (
        lambda: prompting.wilson_interval(2.5, 4),
        r"correct must be a whole number ≥ 0, got 2.5",
    ),
    "nar words float": (lambda: nar.words("a b c", 2.5), r"length must be a whole number"),
    "nar masks float": (lambda: nar.random_masks(2.5, 4), r"batch must be a whole number"),
    "shingles float": (lambda: cleaning.shingles("a b c", 2.5), r"words per shingle\) must be"),
    "minhash float perms": (
        lambda: cleaning.minhash("a b c d e f", num_perm=2.5),
        r"num_perm must be a whole number",
    ),
    "best_time float": (lambda: measure.best_time(lambda: 1, 2.5), r"repeats must be a whole"),
    "clip float": (lambda: tasks.clip("abc", 2.5), r"max_chars must be a whole number"),
    "incontext vocab float": (
        lambda: incontext.vocab_size(2.5),
        r"n_symbols must be a whole number",
    ),
    "induction name float": (lambda: induction.model_name(2.5), r"n_layer must be a whole number"),
    "ablate_head float": (
        lambda: induction.ablate_head(GPT(TINY), 0.5, 0).__enter__(),
        r"layer must be a whole number ≥ 0",
    ),
}


@pytest.mark.parametrize("name", PROBES)
def test_bad_input_gets_a_clear_error(name):
    call, message = PROBES[name]
    with pytest.raises(ValueError, match=message):
        call()


def test_good_input_still_passes_the_checks():
    assert checks.token_ids(torch.tensor([1, 2]), 3) == [1, 2]
    assert checks.token_ids([0, 2], 3) == [0, 2] and checks.whole("n", 3) == 3
    checks.id_batch(torch.zeros(2, 3, dtype=torch.int32))
    assert GPT(TINY)(torch.zeros(1, 3, dtype=torch.int32))[0].shape == (1, 3, 10)


def test_a_bpe_vocabulary_the_text_cannot_fill_is_said():
    with pytest.warns(UserWarning, match=r"only 0 merges to learn, not the 44"):
        assert ByteBPE.train("", 300).n_vocab == 256


def test_a_cache_path_with_spaces_around_it_is_refused(monkeypatch):
    from gptbook import assets

    monkeypatch.setenv("GPTBOOK_CACHE", " /tmp/gptbook-cache ")
    with pytest.raises(ValueError, match=r"starts or ends with a space.*'/tmp/gptbook-cache'"):
        assets.cache_dir()


def test_student_refuses_a_folder_without_notebooks(tmp_path, capsys):
    with pytest.raises(SystemExit):
        student.main([str(tmp_path / "missing"), str(tmp_path / "out")])
    assert "has no notebooks (*.ipynb)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_cli_checks_its_out_folder_first(tmp_path, capsys):
    from gptbook.train import main

    (tmp_path / "a-file").write_text("")
    for out in ["", str(tmp_path / "a-file")]:
        with pytest.raises(SystemExit):
            main(["--preset", "book-tiny", "--out", out, "--max-steps", "2", "--device", "cpu"])
        assert "must name a folder" in capsys.readouterr().err
