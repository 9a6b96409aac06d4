"""Chapter 5's from-scratch parts equal PyTorch's: AdamW, clipping, softmax and cross-entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gptbook import lm, optim


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


@pytest.mark.parametrize(
    "settings",
    [
        dict(lr=1e-3),
        dict(lr=3e-2, betas=(0.9, 0.95), eps=1e-6, weight_decay=0.1),  # GPT-3's β₂
        dict(lr=1e-2, betas=(0.8, 0.999), eps=1e-8, weight_decay=0.0),
    ],
)
def test_adamw_equals_pytorch_step_by_step(settings):
    ours, theirs = _model(0), _model(0)
    opt_ours = optim.AdamW(ours.parameters(), **settings)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), **settings, foreach=False)
    g = torch.Generator().manual_seed(1)
    for _ in range(25):
        x = torch.randn(8, 6, generator=g)
        for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
        for p, q in zip(ours.parameters(), theirs.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    # the same state names: a state dict of one loads into the other
    opt_theirs.load_state_dict(opt_ours.state_dict())


def test_adamw_refuses_bad_settings():
    params = _model(0).parameters()
    with pytest.raises(ValueError, match="betas must lie in \\[0, 1\\)"):
        optim.AdamW(params, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="lr must be a positive number"):
        optim.AdamW(params, lr=float("nan"))


@pytest.mark.parametrize("max_norm", [0.01, 0.5, 100.0])
def test_clip_grad_norm_equals_pytorch(max_norm):
    ours, theirs = _model(0), _model(0)
    x = torch.randn(4, 6)
    for model in (ours, theirs):
        (model(x) * 10).sum().backward()
    total = optim.clip_grad_norm(ours.parameters(), max_norm)
    want = torch.nn.utils.clip_grad_norm_(theirs.parameters(), max_norm)
    torch.testing.assert_close(total, want)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in ours.parameters()]))
    assert norm <= max_norm * (1 + 1e-5) or max_norm > total


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_softmax_and_cross_entropy_equal_pytorch_and_stay_finite(scale):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(3, 5, 11, generator=g) * scale).requires_grad_()
    targets = torch.randint(11, (3, 5), generator=g)
    targets[0, :2] = lm.IGNORE_INDEX
    torch.testing.assert_close(lm.softmax(logits), torch.softmax(logits, -1))
    torch.testing.assert_close(lm.log_softmax(logits), torch.log_softmax(logits, -1))
    ours = lm.nll_loss(lm.log_softmax(logits), targets)
    want = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    assert torch.isfinite(ours)
    torch.testing.assert_close(ours, want)
    torch.testing.assert_close(lm.cross_entropy(logits, targets), want)
    (grad,) = torch.autograd.grad(ours, logits)
    (want_grad,) = torch.autograd.grad(want, logits)
    torch.testing.assert_close(grad, want_grad)


def test_the_naive_softmax_overflows_where_the_stable_one_does_not():
    logits = torch.tensor([1e4, 0.0, -1e4])
    naive = logits.exp() / logits.exp().sum()
    assert torch.isnan(naive).any()
    assert torch.equal(lm.softmax(logits), torch.tensor([1.0, 0.0, 0.0]))
