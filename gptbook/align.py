"""From a language model to an assistant: a chat template, supervised fine-tuning, a reward
model, reinforcement learning against it, and direct preference optimisation.

Introduced in chapter 11. InstructGPT's pipeline (Ouyang et al., 2022) at the book's scale:

1. a chat template, role tokens around each turn (:func:`chat_ids`), and instructions made from
   the corpus, whose answers a rule derives (:func:`instructions`);
2. supervised fine-tuning (SFT), the loss on the answers only (:func:`sft_targets`);
3. a reward model, a GPT with a scalar head, trained on ranked pairs with the Bradley–Terry loss
   (:class:`RewardModel`);
4. a policy-gradient loop against it, with a KL penalty to the SFT model (:class:`RLHF`);
5. DPO (Rafailov et al., 2023): the same pairs, no reward model, no sampling (:class:`DPO`).

The rankings come from a rule anyone can read (:func:`verse_score`); it stands in for the human
raters of the papers.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import sampling, tasks
from .checks import number, whole
from .finetune import grow_vocab
from .lm import IGNORE_INDEX, cross_entropy, model_device, pad, target_logprobs
from .model import GPT

# ---------------------------------------------------------------------- the chat template
#: Who speaks in a chat: the user asks, the assistant answers.
ROLES = ("user", "assistant")
#: A turn of a chat: (role, text).
Message = tuple[str, str]


@dataclass(frozen=True)
class ChatTokens:
    """The ids of the three tokens of the chat template: a turn is ``<user> text <end>`` or
    ``<assistant> text <end>``."""

    user: int
    assistant: int
    end: int

    def name(self, token: int) -> str | None:
        """``"<user>"``, ``"<assistant>"`` or ``"<end>"`` for a chat token, else None."""
        names = {self.user: "<user>", self.assistant: "<assistant>", self.end: "<end>"}
        return names.get(token)


def add_chat_tokens(model: GPT) -> ChatTokens:
    """Append the chat template's three tokens to ``model``'s vocabulary, in place."""
    return ChatTokens(*grow_vocab(model, 3))


def chat_ids(
    messages: Sequence[Message],
    encode: Callable[[str], list[int]],
    tokens: ChatTokens,
    reply: bool = False,
) -> tuple[list[int], list[bool]]:
    """The token ids of a chat and a mask of what the assistant says (its text and the ``<end>``
    that closes it): the tokens SFT learns to produce. ``reply=True`` appends ``<assistant>``,
    so that a model continues with the assistant's answer."""
    ids: list[int] = []
    mask: list[bool] = []
    for role, text in messages:
        if role not in ROLES:
            raise ValueError(f"role={role!r}: a chat turn is ('user', text) or ('assistant', text)")
        said = [*encode(text), tokens.end]
        ids += [tokens.user if role == "user" else tokens.assistant, *said]
        mask += [False] + [role == "assistant"] * len(said)
    if reply:
        ids.append(tokens.assistant)
        mask.append(False)
    return ids, mask


def parse_chat(
    ids: Sequence[int], decode: Callable[[list[int]], str], tokens: ChatTokens
) -> list[Message]:
    """The turns of a chat's token ids (what :func:`chat_ids` made, read back); a last turn
    without its ``<end>`` is kept as far as it goes."""
    turns: list[Message] = []
    role, text = None, []
    for token in ids:
        if token in (tokens.user, tokens.assistant):
            if role is not None:
                raise ValueError(f"a {role} turn is not closed by <end> before the next one")
            role, text = ("user" if token == tokens.user else "assistant"), []
        elif token == tokens.end:
            if role is None:
                raise ValueError("<end> closes no turn: each turn starts with a role token")
            turns.append((role, decode(text)))
            role = None
        elif role is None:
            raise ValueError(f"token {token} is outside any turn: a chat is only turns")
        else:
            text.append(token)
    if role is not None and text:
        turns.append((role, decode(text)))
    return turns


# ---------------------------------------------------------------------- instructions
#: The instructions chapter 11 teaches, each answered by a rule from a line of a play: its first
#: word; whether it is a question; a line that uses a given word.
KINDS = ("first word", "question", "verse")
#: The words "A line with <word>" asks for: frequent in the plays, so that lines have them.
TOPICS = (
    "king", "lord", "heart", "love", "death", "night", "heaven", "blood",
    "eyes", "father", "honour", "life", "soul", "sweet", "world", "time",
)  # fmt: skip
_WORD = re.compile(r"[A-Za-z']+")


def words(text: str) -> list[str]:
    """The words of ``text``: runs of letters and apostrophes."""
    return _WORD.findall(text)


def _pools(split: str) -> dict[str, list[str]]:
    """The lines of the plays of ``split`` that each instruction draws from."""
    lines = [line for play in tasks.plays(split).values() for s in play for line in s["lines"]]
    lines = [line for line in lines if len(words(line)) >= 2]
    pools = {
        "first word": lines,
        "question": [line for line in lines if line.endswith("?")],
        "statement": [line for line in lines if not line.endswith("?")],
    }
    for topic in TOPICS:
        pools[topic] = [line for line in lines if topic in (w.lower() for w in words(line))]
    return pools


def instructions(
    split: str, n: int, block_size: int, kinds: Sequence[str] = KINDS, seed: int = 0
) -> list[dict[str, str]]:
    """``n`` instructions made from lines of the plays of ``split`` ("train", or "test": the
    held-out plays), the kinds in turn, as dicts with ``kind``, ``prompt`` and ``answer``. Each
    fits in ``block_size`` tokens as a chat (its characters and the four chat tokens). Half the
    questions' answers are "Yes"."""
    whole("n", n)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise ValueError(f"kinds {sorted(unknown)} unknown: use some of {', '.join(KINDS)}")
    rng, pools = random.Random(f"instructions/{split}/{seed}"), _pools(split)
    made: list[dict[str, str]] = []
    for _ in range(100 * n):
        if len(made) == n:
            break
        kind = kinds[len(made) % len(kinds)]
        if kind == "first word":
            line = rng.choice(pools[kind])
            prompt, answer = f"First word: {line}", words(line)[0]
        elif kind == "question":
            yes = len(made) // len(kinds) % 2 == 0
            line = rng.choice(pools["question" if yes else "statement"])
            prompt, answer = f"Question? {line}", "Yes" if yes else "No"
        else:
            topic = rng.choice(TOPICS)
            prompt, answer = f"A line with {topic}", rng.choice(pools[topic])
        if len(prompt) + len(answer) + 4 <= block_size:
            made.append({"kind": kind, "prompt": prompt, "answer": answer})
    if len(made) < n:
        raise ValueError(f"block_size={block_size} is too short for most {kinds} instructions")
    return made


# ---------------------------------------------------------------------- the rule that ranks
#: A line of blank verse has ten syllables (five iambs).
PENTAMETER = 10
_VOWELS = re.compile(r"[aeiouy]+")


def syllables(word: str) -> int:
    """A rough count of a word's syllables: its groups of vowels, a silent final e left out."""
    w = word.lower()
    count = len(_VOWELS.findall(w))
    if w.endswith("e") and not w.endswith(("le", "ee")) and count > 1:
        count -= 1
    return max(1, count)


def topic(prompt: str) -> str:
    """The word that "A line with <word>" asks for."""
    return prompt.split()[-1].lower()


def verse_score(prompt: str, line: str) -> float:
    """How well ``line`` answers "A line with <word>", by a rule that stands in for human raters
    (chapter 11): 2 points for using the word, half a point off for each syllable away from
    ten, a point off for each word said again, and a point off if it does not start with a
    capital letter. Higher is better."""
    said = [w.lower() for w in words(line)]
    meter = abs(sum(syllables(w) for w in said) - PENTAMETER)
    repeats = len(said) - len(set(said))
    capital = line[:1].isupper()
    return 2.0 * (topic(prompt) in said) - 0.5 * meter - repeats - (not capital)


# ---------------------------------------------------------------------- batches of chats
def sft_targets(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The SFT targets of chats ``ids`` (B, T): position t predicts token t + 1, which counts
    only where ``mask`` (B, T) marks an answer token; elsewhere IGNORE_INDEX. (B, T - 1)."""
    return ids[:, 1:].masked_fill(~mask[:, 1:], IGNORE_INDEX)


def sft_loss(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean cross-entropy of the answer tokens alone: ``logits`` (B, T, V) of a model run on
    ``ids`` (B, T), ``mask`` (B, T) True on the answer tokens (:func:`chat_ids`)."""
    return cross_entropy(logits[:, :-1], sft_targets(ids, mask))


def _padded(chats: Sequence[tuple[list[int], list[bool]]], prompt_loss: bool = False):
    """Chats (ids, mask) as (B, T) tensors; ``prompt_loss`` marks every token but the padding."""
    ids = pad([c[0] for c in chats])
    mask = pad([[True] * len(c[1]) if prompt_loss else c[1] for c in chats], False).bool()
    return ids, mask


def sft_batches(
    chats: Sequence[tuple[list[int], list[bool]]], batch_size: int, prompt_loss: bool = False
):
    """:class:`~gptbook.train.Trainer` batches for SFT: random chats as (inputs, targets), the
    targets masked to the answers (or, with ``prompt_loss``, every token but the padding)."""
    ids, mask = _padded(chats, prompt_loss)

    def batches(step: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.randint(len(chats), (batch_size,), generator=generator)
        return ids[rows, :-1], sft_targets(ids[rows], mask[rows])

    return batches


def sft_metrics(chats: Sequence[tuple[list[int], list[bool]]]):
    """:class:`~gptbook.train.Trainer` metrics: ``val``, the loss on the answers of held-out
    ``chats``, whichever loss the model trains on."""
    ids, mask = _padded(chats)

    def metrics(model: nn.Module) -> dict[str, float]:
        device = model_device(model)
        _, loss = model(ids[:, :-1].to(device), sft_targets(ids, mask).to(device))
        return {"val": loss.item()}

    return metrics


def reply_logprobs(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log p(reply | prompt) of each chat: the sum of the log-probabilities of the tokens that
    ``mask`` (B, T) marks, under ``model`` run on ``ids`` (B, T). (B,), with gradients."""
    logits, _ = model(ids[:, :-1])  # (B, T - 1, V): position t - 1 predicts token t
    return (target_logprobs(logits, ids[:, 1:]) * mask[:, 1:]).sum(-1)


# ---------------------------------------------------------------------- sampling replies
@dataclass
class Replies:
    """Chats that end in a sampled reply: ``ids`` (N, T) right-padded, ``mask`` (N, T) True on
    the reply's tokens (its ``<end>`` included, if it was reached), ``last`` (N,) the position
    of each chat's last token, and ``text`` the replies decoded."""

    ids: torch.Tensor
    mask: torch.Tensor
    last: torch.Tensor
    text: list[str]


@torch.no_grad()
def sample_replies(
    model: GPT,
    prompts: Sequence[str],
    encode: Callable[[str], list[int]],
    decode: Callable[[list[int]], str],
    tokens: ChatTokens,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Replies:
    """One reply from ``model`` to each prompt (as a user turn), sampled at ``temperature`` (0:
    greedy) until ``<end>`` or the context is full. Prompts of one length are sampled together."""
    device = model_device(model)
    chats = [chat_ids([("user", p)], encode, tokens, reply=True)[0] for p in prompts]
    done: list[list[int]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    for length in sorted({len(c) for c in chats}):
        rows = [i for i, c in enumerate(chats) if len(c) == length]
        room = model.config.block_size - length
        if room < 1:
            raise ValueError(f"a prompt of {length} tokens leaves no room to reply: shorten it")
        start = torch.tensor([chats[i] for i in rows], device=device)
        out = sampling.generate(model, start, room, temperature, generator=generator)
        for i, row in zip(rows, out[:, length:].tolist()):
            done[i] = _reply(row, tokens)
    model.train(was_training)
    full = [c + r for c, r in zip(chats, done)]
    mask = pad([[False] * len(c) + [True] * len(r) for c, r in zip(chats, done)], False).bool()
    last = torch.tensor([len(f) - 1 for f in full])
    text = [decode(r[:-1] if r[-1:] == [tokens.end] else r) for r in done]
    return Replies(pad(full).to(device), mask.to(device), last.to(device), text)


def _reply(row: list[int], tokens: ChatTokens) -> list[int]:
    """A sampled continuation up to its first ``<end>`` (kept); a role token the model samples
    instead ends the reply before it."""
    for i, token in enumerate(row):
        if token == tokens.end:
            return row[: i + 1]
        if token in (tokens.user, tokens.assistant):
            return row[:i]
    return row


# ---------------------------------------------------------------------- the reward model
def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """-log σ(r_chosen - r_rejected), the mean over pairs: the Bradley–Terry model's negative
    log-likelihood that the chosen reply wins, given the two rewards (N,) each."""
    return -F.logsigmoid(chosen - rejected).mean()


class RewardModel(nn.Module):
    """A GPT body with a scalar head on the final hidden state of each chat's last token.

    ``model(chosen, chosen_last, rejected, rejected_last) -> (rewards (N, 2), loss)``: the two
    rewards of each ranked pair and the Bradley–Terry loss. :meth:`rewards` scores chats."""

    def __init__(self, gpt: GPT):
        super().__init__()
        self.gpt = gpt
        self.head = nn.Linear(gpt.config.n_embd, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def rewards(self, ids: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """The reward of each chat ``ids`` (N, T), read at position ``last`` (N,): (N,)."""
        h = self.gpt.features(ids)  # (N, T, C)
        return self.head(h[torch.arange(len(ids), device=ids.device), last]).squeeze(-1)

    def forward(self, chosen, chosen_last, rejected, rejected_last):
        r_chosen, r_rejected = (
            self.rewards(chosen, chosen_last),
            self.rewards(rejected, rejected_last),
        )
        return torch.stack([r_chosen, r_rejected], 1), bradley_terry_loss(r_chosen, r_rejected)


@dataclass
class Pairs:
    """Ranked pairs of replies to the same prompts: the ``chosen`` and ``rejected`` replies."""

    prompts: list[str]
    chosen: Replies
    rejected: Replies

    def __len__(self) -> int:
        return len(self.prompts)


def rank(prompts: Sequence[str], a: Replies, b: Replies, score=verse_score) -> Pairs:
    """Pairs from two replies to each prompt, the one ``score`` prefers chosen; ties dropped."""
    keep, a_wins = [], []
    for i, prompt in enumerate(prompts):
        sa, sb = score(prompt, a.text[i]), score(prompt, b.text[i])
        if sa != sb:
            keep.append(i)
            a_wins.append(sa > sb)
    if not keep:
        raise ValueError("every pair is a tie: sample more replies, or at a higher temperature")
    rows, wins = torch.tensor(keep), torch.tensor(a_wins)

    def pick(first: Replies, second: Replies) -> Replies:
        T = max(first.ids.shape[1], second.ids.shape[1])
        ids = torch.where(
            wins[:, None].to(first.ids.device),
            _width(first.ids[rows], T),
            _width(second.ids[rows], T),
        )
        mask = torch.where(
            wins[:, None].to(first.ids.device),
            _width(first.mask[rows], T),
            _width(second.mask[rows], T),
        )
        last = torch.where(wins.to(first.ids.device), first.last[rows], second.last[rows])
        text = [first.text[i] if w else second.text[i] for i, w in zip(keep, a_wins)]
        return Replies(ids, mask, last, text)

    return Pairs([prompts[i] for i in keep], pick(a, b), pick(b, a))


def _width(t: torch.Tensor, T: int) -> torch.Tensor:
    """``t`` (N, T0) right-padded with zeros (False) to (N, T)."""
    return F.pad(t, (0, T - t.shape[1]))


def _pair_rows(pairs: Pairs, read: str, extra, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    if read not in ("last", "mask"):
        raise ValueError(f"read={read!r}: 'last' (the reward model) or 'mask' (DPO)")
    c, r = pairs.chosen, pairs.rejected
    picked = (c.ids, getattr(c, read), r.ids, getattr(r, read), *extra)
    return tuple(t[rows.to(t.device)].cpu() for t in picked)


def pair_batches(pairs: Pairs, batch_size: int, read: str = "last", extra=()):
    """:class:`~gptbook.train.Trainer` batches of random pairs: (chosen ids, chosen ``read``,
    rejected ids, rejected ``read``) and the same rows of each ``extra`` tensor (N, ...).
    ``read="last"`` gives the reward model's last positions, ``"mask"`` DPO's reply masks."""
    _pair_rows(pairs, read, extra, torch.arange(1))  # refuse a bad ``read`` now, not in training

    def batches(step: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        rows = torch.randint(len(pairs), (batch_size,), generator=generator)
        return _pair_rows(pairs, read, extra, rows)

    return batches


def pair_metrics(pairs: Pairs, read: str = "last", extra=()):
    """:class:`~gptbook.train.Trainer` metrics on held-out pairs, for a model that returns
    ``(rewards (N, 2), loss)`` (:class:`RewardModel`, :class:`DPO`): ``val``, the loss, and
    ``accuracy``, the share of pairs whose chosen reply gets the higher reward."""
    batch = _pair_rows(pairs, read, extra, torch.arange(len(pairs)))

    def metrics(model: nn.Module) -> dict[str, float]:
        device = model_device(model)
        rewards, loss = model(*(t.to(device) for t in batch))
        accuracy = (rewards[:, 0] > rewards[:, 1]).float().mean().item()
        return {"val": loss.item(), "accuracy": accuracy}

    return metrics


# ---------------------------------------------------------------------- RLHF
class PolicyGradient(nn.Module):
    """The policy-gradient loss of sampled replies, ``model(ids, mask, advantages) ->
    (log p of each reply (N,), loss)``: loss = -mean(advantage · log p(reply)). Raising the
    log-probability of a reply in proportion to its advantage is REINFORCE; with one gradient
    step per batch of samples it is also PPO's gradient, whose ratio is then 1 and never
    clipped."""

    def __init__(self, policy: GPT):
        super().__init__()
        self.policy = policy

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor):
        logps = reply_logprobs(self.policy, ids, mask)  # (N,)
        return logps, -(advantages * logps).mean()


@torch.no_grad()
def kl_per_reply(policy: GPT, reference: GPT, replies: Replies) -> torch.Tensor:
    """Σ over a reply's tokens of log π(token) - log π_ref(token), for replies sampled from
    ``policy``: each reply's estimate of KL(π ‖ π_ref), the penalty's measure. (N,)."""
    modes = policy.training, reference.training
    policy.eval(), reference.eval()
    kl = reply_logprobs(policy, replies.ids, replies.mask)
    kl -= reply_logprobs(reference, replies.ids, replies.mask)
    policy.train(modes[0]), reference.train(modes[1])
    return kl


class RLHF:
    """The batches of reinforcement learning from a reward model, for
    :class:`~gptbook.train.Trainer` with a :class:`PolicyGradient` model.

    Each step samples ``samples`` replies to each of ``prompts_per_step`` prompts from the
    policy. A reply's return is the reward model's score minus ``beta`` times its KL to the
    reference (the SFT model), as InstructGPT's; its advantage is the return minus the mean
    return of the other replies to the same prompt (a leave-one-out baseline). Every step's
    mean reward, KL and rule score go to ``history``.
    """

    def __init__(
        self,
        policy: GPT,
        reference: GPT,
        reward_model: RewardModel,
        prompts: Sequence[str],
        encode: Callable[[str], list[int]],
        decode: Callable[[list[int]], str],
        tokens: ChatTokens,
        prompts_per_step: int = 8,
        samples: int = 4,
        beta: float = 0.1,
        score=verse_score,
    ):
        self.policy, self.reference, self.reward_model = policy, reference, reward_model
        self.prompts, self.encode, self.decode, self.tokens = list(prompts), encode, decode, tokens
        self.prompts_per_step = whole("prompts_per_step", prompts_per_step)
        self.samples = whole("samples", samples, least=2)  # the baseline needs another reply
        self.beta, self.score = number("beta", beta, least=0), score
        self.history: dict[str, list[float]] = {"reward": [], "kl": [], "score": []}

    def __call__(self, step: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        picked = torch.randint(len(self.prompts), (self.prompts_per_step,), generator=generator)
        prompts = [self.prompts[i] for i in picked.tolist() for _ in range(self.samples)]
        replies, reward, kl = self.rollout(prompts, generator)
        returns = (reward - self.beta * kl).view(self.prompts_per_step, self.samples)
        others = (returns.sum(1, keepdim=True) - returns) / (self.samples - 1)
        advantages = (returns - others).flatten()  # (N,)
        scores = [self.score(p, t) for p, t in zip(prompts, replies.text)]
        self.history["reward"].append(reward.mean().item())
        self.history["kl"].append(kl.mean().item())
        self.history["score"].append(sum(scores) / len(scores))
        return replies.ids.cpu(), replies.mask.cpu(), advantages.cpu()

    def rollout(self, prompts: Sequence[str], generator: torch.Generator | None = None):
        """A reply from the policy to each prompt, its reward and its KL to the reference."""
        replies = sample_replies(
            self.policy, prompts, self.encode, self.decode, self.tokens, generator=generator
        )
        with torch.no_grad():
            self.reward_model.eval()
            reward = self.reward_model.rewards(replies.ids, replies.last)  # (N,)
        return replies, reward, kl_per_reply(self.policy, self.reference, replies)

    def metrics(self, prompts: Sequence[str], seed: int = 0):
        """:class:`~gptbook.train.Trainer` metrics on held-out ``prompts``, one reply each
        (the same random numbers every time): ``val`` is minus the mean return, reward - β·KL;
        also the mean ``reward``, ``kl`` and rule ``score``."""

        def metrics(model: nn.Module) -> dict[str, float]:
            replies, reward, kl = self.rollout(prompts, torch.Generator().manual_seed(seed))
            scores = [self.score(p, t) for p, t in zip(prompts, replies.text)]
            return {
                "val": -(reward - self.beta * kl).mean().item(),
                "reward": reward.mean().item(),
                "kl": kl.mean().item(),
                "score": sum(scores) / len(scores),
            }

        return metrics


# ---------------------------------------------------------------------- DPO
def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """DPO's loss (Rafailov et al., 2023, eq. 7), the mean over pairs of
    -log σ(β · [(log π(y_w) - log π_ref(y_w)) - (log π(y_l) - log π_ref(y_l))]),
    from the log-probabilities (N,) of the chosen (w) and rejected (l) replies."""
    chosen = policy_chosen_logps - ref_chosen_logps  # how much more likely than before
    rejected = policy_rejected_logps - ref_rejected_logps
    return -F.logsigmoid(beta * (chosen - rejected)).mean()


class DPO(nn.Module):
    """Direct preference optimisation of ``policy``: ``model(chosen, chosen_mask, rejected,
    rejected_mask, ref_chosen, ref_rejected) -> (rewards (N, 2), loss)``. The reference
    model's log-probabilities are computed once beforehand (:func:`reference_logprobs`); the
    rewards are DPO's implicit ones, β · (log π - log π_ref) of the chosen and rejected reply."""

    def __init__(self, policy: GPT, beta: float = 0.1):
        super().__init__()
        self.policy, self.beta = policy, number("beta", beta, least=0)

    def forward(self, chosen, chosen_mask, rejected, rejected_mask, ref_chosen, ref_rejected):
        logp_chosen = reply_logprobs(self.policy, chosen, chosen_mask)
        logp_rejected = reply_logprobs(self.policy, rejected, rejected_mask)
        loss = dpo_loss(logp_chosen, logp_rejected, ref_chosen, ref_rejected, self.beta)
        rewards = torch.stack([logp_chosen - ref_chosen, logp_rejected - ref_rejected], 1)
        return self.beta * rewards.detach(), loss


@torch.no_grad()
def reference_logprobs(reference: GPT, pairs: Pairs) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference model's log p of every chosen and every rejected reply: (N,) each."""
    reference.eval()
    return tuple(reply_logprobs(reference, r.ids, r.mask) for r in (pairs.chosen, pairs.rejected))


# ---------------------------------------------------------------------- measuring
def correct(item: dict[str, str], reply: str) -> bool:
    """Whether ``reply`` answers instruction ``item``: the exact answer, or for "verse" a line
    that uses the word asked for."""
    if item["kind"] == "verse":
        return topic(item["prompt"]) in [w.lower() for w in words(reply)]
    return reply == item["answer"]


def accuracy_by_kind(items: Sequence[dict[str, str]], replies: Sequence[str]) -> dict[str, float]:
    """The share of ``items`` (instructions) that ``replies`` answer (:func:`correct`), by kind."""
    if len(items) != len(replies):
        raise ValueError(f"{len(items)} instructions but {len(replies)} replies: one reply each")
    right: dict[str, list[bool]] = {}
    for item, reply in zip(items, replies):
        right.setdefault(item["kind"], []).append(correct(item, reply))
    return {kind: sum(r) / len(r) for kind, r in right.items()}


def win_rate(scores: Sequence[float], baseline: Sequence[float]) -> float:
    """The share of prompts on which ``scores`` beat ``baseline``'s, ties counted half."""
    if len(scores) != len(baseline) or not scores:
        raise ValueError("compare the scores of the same prompts: two lists of equal length")
    wins = sum((a > b) + 0.5 * (a == b) for a, b in zip(scores, baseline))
    return wins / len(scores)
