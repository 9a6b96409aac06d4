"""Chapter 10's ablation: its arms, its sweep, and each change's effect over seeds."""

from __future__ import annotations

import pytest

from gptbook import ablation, pretrained, sizes


@pytest.mark.parametrize("scale", ["quick", "full"])
def test_every_arm_matches_the_gpt2_blocks_active_parameters(scale):
    target = sizes.active_params(ablation.base_config(scale))
    for arm in ablation.ARMS:
        config = ablation.arm_config(arm, scale)
        # RoPE drops the position table, untying adds an output layer: a few percent either way
        assert abs(sizes.active_params(config) / target - 1) < 0.05, arm
    assert ablation.arm_config("+ SwiGLU", scale).mlp == "swiglu"
    assert ablation.arm_config("LLaMA + MoE", scale).n_expert == ablation.N_EXPERT


def test_the_sweep_is_registered_and_each_arm_runs_at_its_best_rate(monkeypatch):
    finals = {0: 2.0, 1: 1.8, 2: 1.9}  # the middle rate is the best
    asked = []

    def history(name, scale=None, progress=True):
        asked.append(name)
        seed, rate = int(name.split("-")[-2]), int(name.split("-lr")[-1])
        return {"val": [3.0, finals[rate] + 0.01 * seed]}

    monkeypatch.setattr(pretrained, "history", history)
    assert ablation.chosen_rate("+ RoPE", "quick") == ablation.LEARNING_RATES["quick"][1]
    name = ablation.run_name("+ RoPE", 2, "quick")
    assert name == "ablation-rope-2-lr1" and name in pretrained.SPECS
    _, train = pretrained.spec(name, "quick")
    assert (train.seed, train.lr) == (2, ablation.LEARNING_RATES["quick"][1])
    assert all(n.startswith("ablation-rope-0-lr") for n in asked)  # only the sweep was read


def test_an_effect_is_the_mean_of_paired_differences(monkeypatch):
    def history(name, scale=None, progress=True):
        seed = int(name.split("-")[-2])
        shift = 0.0 if name.startswith("ablation-gpt2-") else -0.1
        return {"val": [2.0 + 0.05 * seed + shift]}  # the seeds differ, the pairs do not

    monkeypatch.setattr(pretrained, "history", history)
    monkeypatch.setattr(ablation, "chosen_rate", lambda arm, scale=None: 1e-2)
    mean, low, high = ablation.effect("+ RoPE")
    assert (mean, low, high) == pytest.approx((-0.1, -0.1, -0.1))


def test_unknown_arms_are_named(monkeypatch):
    monkeypatch.setattr(pretrained, "history", lambda *a: pytest.fail("nothing is trained"))
    with pytest.raises(ValueError, match="no ablation arm 'RoPE'; the arms: GPT-2 block"):
        ablation.arm_config("RoPE")
    with pytest.raises(ValueError, match="seed must be a whole number"):
        ablation.run_name("+ RoPE", seed=-1)
