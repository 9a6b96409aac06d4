"""Chapter 11: the chat template, SFT's masked loss, the reward model, RLHF and DPO."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from gptbook import align, lm
from gptbook.lm import IGNORE_INDEX
from gptbook.model import GPT, GPTConfig
from gptbook.tokenizers import CharTokenizer
from gptbook.train import TrainConfig, Trainer

CHARS = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ,.!?:'")


@pytest.fixture
def chat_model():
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=CHARS.vocab_size, block_size=48, n_layer=2, n_head=2, n_embd=32, dropout=0.0
    )
    gpt = GPT(config)
    tokens = align.add_chat_tokens(gpt)
    return gpt, tokens


def test_chat_template_round_trip_and_mask(chat_model):
    gpt, tokens = chat_model
    V = CHARS.vocab_size
    assert (tokens.user, tokens.assistant, tokens.end) == (V, V + 1, V + 2)
    assert gpt.config.vocab_size == V + 3
    chat = [("user", "Hi?"), ("assistant", "Yes."), ("user", "ok")]
    ids, mask = align.chat_ids(chat, CHARS.encode, tokens)
    u, a, e = tokens.user, tokens.assistant, tokens.end
    assert ids == [
        u,
        *CHARS.encode("Hi?"),
        e,
        a,
        *CHARS.encode("Yes."),
        e,
        u,
        *CHARS.encode("ok"),
        e,
    ]
    # the mask marks the assistant's text and its <end>, nothing else
    assert [i for i, m in zip(ids, mask) if m] == [*CHARS.encode("Yes."), e]
    assert align.parse_chat(ids, CHARS.decode, tokens) == chat
    prompt, _ = align.chat_ids(chat[:1], CHARS.encode, tokens, reply=True)
    assert prompt[-1] == a and align.parse_chat(prompt, CHARS.decode, tokens) == chat[:1]
    unfinished = [*prompt, *CHARS.encode("Ye")]
    assert align.parse_chat(unfinished, CHARS.decode, tokens)[-1] == ("assistant", "Ye")
    assert tokens.name(e) == "<end>" and tokens.name(3) is None


def test_chat_template_refusals(chat_model):
    _, tokens = chat_model
    with pytest.raises(ValueError, match="role='system'"):
        align.chat_ids([("system", "x")], CHARS.encode, tokens)
    with pytest.raises(ValueError, match="not closed by <end>"):
        align.parse_chat([tokens.user, 3, tokens.assistant], CHARS.decode, tokens)
    with pytest.raises(ValueError, match="outside any turn"):
        align.parse_chat([3, tokens.end], CHARS.decode, tokens)


def test_sft_loss_ignores_the_prompt_tokens_exactly(chat_model):
    gpt, tokens = chat_model
    ids, mask = align.chat_ids(
        [("user", "First word: So be it"), ("assistant", "So")], CHARS.encode, tokens
    )
    ids, mask = torch.tensor([ids]), torch.tensor([mask])
    logits, _ = gpt(ids)
    loss = align.sft_loss(logits, ids, mask)
    # by hand: position t predicts token t + 1; only answer tokens count
    answer = [t for t in range(1, ids.shape[1]) if mask[0, t]]
    by_hand = -torch.stack([F.log_softmax(logits[0, t - 1], -1)[ids[0, t]] for t in answer]).mean()
    assert torch.allclose(loss, by_hand, atol=1e-6)
    # changing what the model predicts at prompt positions does not change the loss
    changed = logits.clone()
    prompt_positions = [t - 1 for t in range(1, ids.shape[1]) if not mask[0, t]]
    changed[0, prompt_positions] = torch.randn(len(prompt_positions), logits.shape[-1]) * 10
    assert torch.equal(align.sft_loss(changed, ids, mask), loss)
    # the model's own loss on the masked targets is the same number: one way to train SFT
    targets = align.sft_targets(ids, mask)
    assert (targets == IGNORE_INDEX).sum() == len(prompt_positions)
    assert torch.allclose(gpt(ids[:, :-1], targets)[1], loss, atol=1e-6)


def test_sft_batches_mask_the_prompt_or_only_the_padding(chat_model):
    _, tokens = chat_model
    chats = [
        align.chat_ids([("user", p), ("assistant", a)], CHARS.encode, tokens)
        for p, a in (("Question? Is it", "No"), ("First word: Go now", "Go"))
    ]
    g = torch.Generator().manual_seed(0)
    x, y = align.sft_batches(chats, 4)(0, g)
    assert x.shape == y.shape == (4, max(len(c[0]) for c in chats) - 1)
    kept = y[y != IGNORE_INDEX]
    assert set(kept.tolist()) <= set(CHARS.encode("NoGo")) | {tokens.end}
    _, y_all = align.sft_batches(chats, 4, prompt_loss=True)(0, torch.Generator().manual_seed(0))
    assert (y_all != IGNORE_INDEX).sum() > (y != IGNORE_INDEX).sum()
    assert tokens.user not in y_all.tolist()[0]  # the first token is never a target


def test_instructions_follow_their_rules():
    items = align.instructions("train", 60, block_size=64)
    assert [x["kind"] for x in items[:3]] == list(align.KINDS)
    for x in items:
        assert len(x["prompt"]) + len(x["answer"]) + 4 <= 64
        line = x["prompt"].split(" ", 2)[-1]
        if x["kind"] == "first word":
            assert x["answer"] == align.words(x["prompt"].removeprefix("First word: "))[0]
        elif x["kind"] == "question":
            assert x["answer"] == ("Yes" if line.endswith("?") else "No")
        else:
            assert align.topic(x["prompt"]) in align.TOPICS
            assert align.correct(x, x["answer"]), "the reference line uses the word"
    answers = [x["answer"] for x in items if x["kind"] == "question"]
    assert answers.count("Yes") == answers.count("No")
    assert align.instructions("test", 6, 64) != align.instructions("train", 6, 64)
    with pytest.raises(ValueError, match="too short"):
        align.instructions("train", 5, block_size=20)
    with pytest.raises(ValueError, match="unknown"):
        align.instructions("train", 5, 64, kinds=("poem",))


def test_verse_score_by_hand():
    assert align.syllables("heaven") == 2 and align.syllables("time") == 1
    line = "Now is the winter of our discontent"  # 10 syllables by the rule
    assert sum(align.syllables(w) for w in align.words(line)) == 10
    assert align.verse_score("A line with winter", line) == 2.0
    assert align.verse_score("A line with king", line) == 0.0  # the word is missing
    assert align.verse_score("A line with king", line.lower()) == -1.0  # and no capital
    assert align.verse_score("A line with king", "King king king") == 2 - 0.5 * 7 - 2


def test_win_rate_counts_ties_half():
    assert align.win_rate([1, 0, 2], [0, 0, 3]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="equal length"):
        align.win_rate([1], [1, 2])


def test_a_reply_ends_at_its_end_token_or_before_a_role_token(chat_model):
    _, t = chat_model
    assert align._reply([5, 6, t.end, 7], t) == [5, 6, t.end]
    assert align._reply([5, t.user, 6, t.end], t) == [5]
    assert align._reply([5, 6], t) == [5, 6]


def test_sampled_replies_are_masked_and_decoded(chat_model):
    gpt, tokens = chat_model
    prompts = ["Hi?", "Hello there", "Hi?", "A line with king"]
    g = torch.Generator().manual_seed(0)
    replies = align.sample_replies(gpt, prompts, CHARS.encode, CHARS.decode, tokens, generator=g)
    for prompt, row, mask, last, text in zip(
        prompts, replies.ids, replies.mask, replies.last, replies.text
    ):
        start = len(prompt) + 3  # <user> prompt <end> <assistant>
        assert row[start - 1] == tokens.assistant and not mask[:start].any()
        assert mask[start : last + 1].all() and not mask[last + 1 :].any()
        reply = row[start : last + 1].tolist()
        assert tokens.user not in reply and tokens.assistant not in reply
        assert CHARS.decode([i for i in reply if i != tokens.end]) == text
        assert tokens.end not in reply[:-1]
    assert last < gpt.config.block_size


def test_rank_keeps_the_preferred_reply_and_drops_ties(chat_model):
    gpt, tokens = chat_model
    prompts = ["A line with king", "A line with time", "A line with love"]
    a = align.sample_replies(gpt, prompts, CHARS.encode, CHARS.decode, tokens)
    b = align.sample_replies(gpt, prompts, CHARS.encode, CHARS.decode, tokens)
    a.text = ["Now is the winter of our discontent king", "x", "same"]
    b.text = ["no", "The time is out of joint", "same"]
    pairs = align.rank(prompts, a, b)
    assert pairs.prompts == prompts[:2] and len(pairs) == 2
    assert pairs.chosen.text == [a.text[0], b.text[1]]
    assert pairs.rejected.text == [b.text[0], a.text[1]]
    assert torch.equal(pairs.chosen.ids[0, : a.ids.shape[1]], a.ids[0])
    assert torch.equal(pairs.chosen.last, torch.stack([a.last[0], b.last[1]]))


def test_bradley_terry_loss_and_the_reward_model_learns_separable_pairs(chat_model):
    assert align.bradley_terry_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(
        math.log(2)
    )
    gpt, tokens = chat_model
    prompts = [f"A line with {w}" for w in ("king", "time", "love", "night")] * 4
    good = align.Replies(*_chats(prompts, ["Yes sir"] * 16, tokens))
    bad = align.Replies(*_chats(prompts, ["no no no"] * 16, tokens))
    pairs = align.Pairs(prompts, good, bad)
    model = align.RewardModel(gpt)
    trainer = Trainer(
        model,
        TrainConfig(max_steps=30, batch_size=8, lr=3e-3, warmup_steps=0, eval_interval=30),
        batches=align.pair_batches(pairs, 8),
        metrics=align.pair_metrics(pairs),
    )
    trainer.train(progress=False)
    assert trainer.history["train"][-1] < trainer.history["train"][0] / 4
    assert trainer.history["accuracy"] == [1.0]
    with torch.no_grad():
        rewards, _ = model(good.ids, good.last, bad.ids, bad.last)
    assert (rewards[:, 0] > rewards[:, 1]).all()


def _chats(prompts, answers, tokens):
    rows = [
        align.chat_ids([("user", p), ("assistant", a)], CHARS.encode, tokens)
        for p, a in zip(prompts, answers)
    ]
    ids = lm.pad([r[0] for r in rows])
    mask = lm.pad([r[1] for r in rows], False).bool()
    last = torch.tensor([len(r[0]) - 1 for r in rows])
    return ids, mask, last, list(answers)


def test_dpo_loss_by_hand_and_at_zero_margin():
    pc, pr = torch.tensor([-3.0, -5.0]), torch.tensor([-4.0, -2.0])
    rc, rr = torch.tensor([-3.5, -4.0]), torch.tensor([-3.0, -2.5])
    beta = 0.5
    margins = beta * ((pc - rc) - (pr - rr))  # [0.5 * (0.5 + 1), 0.5 * (-1 - 0.5)]
    by_hand = -torch.log(torch.sigmoid(margins)).mean()
    assert torch.allclose(align.dpo_loss(pc, pr, rc, rr, beta), by_hand)
    # the policy equal to the reference: every margin is 0 and the loss is log 2
    assert align.dpo_loss(pc, pr, pc, pr, beta).item() == pytest.approx(math.log(2))
    # a policy that moves towards the chosen reply lowers the loss
    assert align.dpo_loss(pc + 1, pr, pc, pr, beta) < math.log(2)


def test_dpo_raises_the_chosen_reply_against_the_reference(chat_model):
    gpt, tokens = chat_model
    prompts = ["A line with king"] * 8
    pairs = align.Pairs(
        prompts,
        align.Replies(*_chats(prompts, ["Yes"] * 8, tokens)),
        align.Replies(*_chats(prompts, ["No"] * 8, tokens)),
    )
    reference = copy.deepcopy(gpt)
    ref_c, ref_r = align.reference_logprobs(reference, pairs)
    dpo = align.DPO(gpt, beta=0.5)
    trainer = Trainer(
        dpo,
        TrainConfig(max_steps=20, batch_size=8, lr=3e-3, warmup_steps=0, eval_interval=20),
        batches=align.pair_batches(pairs, 8, "mask", (ref_c, ref_r)),
        metrics=align.pair_metrics(pairs, "mask", (ref_c, ref_r)),
    )
    trainer.train(progress=False)
    assert trainer.history["train"][0] == pytest.approx(math.log(2), abs=1e-4)
    assert trainer.history["train"][-1] < 0.3
    gpt.eval()
    with torch.no_grad():
        rewards, _ = dpo(*align._pair_rows(pairs, "mask", (ref_c, ref_r), torch.arange(8)))
    # the implicit rewards, β · (log π - log π_ref): up for the chosen reply, down for the other
    assert (rewards[:, 0] > 0).all() and (rewards[:, 1] < 0).all()
    measured = align.pair_metrics(pairs, "mask", (ref_c, ref_r))(dpo)
    assert measured["accuracy"] == 1.0 and measured["val"] == pytest.approx(
        trainer.history["val"][-1]
    )


def test_rlhf_advantages_use_the_other_replies_and_the_kl_penalty(chat_model):
    gpt, tokens = chat_model
    reference = copy.deepcopy(gpt)
    reward_model = align.RewardModel(copy.deepcopy(gpt))
    prompts = ["A line with king", "A line with time"]
    rl = align.RLHF(
        gpt,
        reference,
        reward_model,
        prompts,
        CHARS.encode,
        CHARS.decode,
        tokens,
        prompts_per_step=2,
        samples=3,
        beta=0.5,
    )
    ids, mask, advantages = rl(0, torch.Generator().manual_seed(0))
    assert ids.shape[0] == mask.shape[0] == advantages.shape[0] == 6
    # leave-one-out: each prompt's advantages add up to zero
    assert torch.allclose(advantages.view(2, 3).sum(1), torch.zeros(2), atol=1e-5)
    assert rl.history["kl"] == [pytest.approx(0.0, abs=1e-5)]  # the policy is the reference
    measured = rl.metrics(prompts)(align.PolicyGradient(gpt))
    assert measured["kl"] == pytest.approx(0.0, abs=1e-5)
    assert measured["val"] == pytest.approx(-measured["reward"], abs=1e-4)
    with pytest.raises(ValueError, match="samples must be"):
        align.RLHF(
            gpt, reference, reward_model, prompts, CHARS.encode, CHARS.decode, tokens, samples=1
        )


def test_policy_gradient_raises_replies_with_positive_advantage(chat_model):
    gpt, tokens = chat_model
    ids, mask, _, _ = _chats(["A line with king"] * 2, ["Yes", "No"], tokens)
    loss_model = align.PolicyGradient(gpt)
    before, loss = loss_model(ids, mask, torch.tensor([1.0, -1.0]))
    loss.backward()
    with torch.no_grad():
        for p in gpt.parameters():
            if p.grad is not None:
                p -= 0.05 * p.grad
    after, _ = loss_model(ids, mask, torch.tensor([1.0, -1.0]))
    assert after[0] > before[0] and after[1] < before[1]


def test_sft_metrics_measure_the_answers_of_held_out_chats(chat_model):
    gpt, tokens = chat_model
    chats = [
        align.chat_ids([("user", "Question? Is it"), ("assistant", a)], CHARS.encode, tokens)
        for a in ("No", "Yes")
    ]
    ids, mask = align._padded(chats)
    logits, _ = gpt(ids)
    want = align.sft_loss(logits, ids, mask).item()
    assert align.sft_metrics(chats)(gpt)["val"] == pytest.approx(want, abs=1e-6)
    with pytest.raises(ValueError, match="read='x'"):
        align.pair_batches(None, 2, read="x")


def test_accuracy_by_kind():
    items = [
        {"kind": "question", "prompt": "Question? Is it?", "answer": "Yes"},
        {"kind": "question", "prompt": "Question? It is.", "answer": "No"},
        {"kind": "verse", "prompt": "A line with king", "answer": "The king is dead"},
    ]
    got = align.accuracy_by_kind(items, ["Yes", "Yes", "Long live the King!"])
    assert got == {"question": 0.5, "verse": 1.0}
    with pytest.raises(ValueError, match="one reply each"):
        align.accuracy_by_kind(items, ["Yes"])
