"""gptbook.book: scale, device, pick, setup, show."""

from __future__ import annotations

import pytest
import torch

from gptbook import book, data, tokenizers
from gptbook.config import GPTConfig


def test_scale_from_environment(monkeypatch):
    monkeypatch.setenv("GPTBOOK_SCALE", "full")
    assert book.scale() == "full"
    monkeypatch.setenv("GPTBOOK_SCALE", " Quick ")
    assert book.scale() == "quick"


def test_scale_default_follows_cuda(monkeypatch):
    monkeypatch.delenv("GPTBOOK_SCALE", raising=False)
    monkeypatch.setattr(book, "_cuda_available", lambda: True)
    assert book.scale() == "full"
    monkeypatch.setattr(book, "_cuda_available", lambda: False)
    assert book.scale() == "quick"


def test_bad_scale_names_the_fix(monkeypatch):
    monkeypatch.setenv("GPTBOOK_SCALE", "huge")
    with pytest.raises(ValueError, match="GPTBOOK_SCALE='huge'.*quick, full"):
        book.scale()


def test_pick(monkeypatch):
    monkeypatch.setenv("GPTBOOK_SCALE", "quick")
    assert book.pick(quick=1, full=2) == 1
    monkeypatch.setenv("GPTBOOK_SCALE", "full")
    assert book.pick(quick=1, full=2) == 2
    with pytest.raises(TypeError):
        book.pick(1, 2)  # keywords only, so a chapter always says which is which


def test_fast_dev_run_is_off_unless_set_to_a_number_of_steps(monkeypatch):
    assert book.fast_dev_run() == 0 and book.cap(5000) == 5000
    monkeypatch.setenv("GPTBOOK_FAST_DEV_RUN", " 2 ")
    assert book.fast_dev_run() == 2
    monkeypatch.setenv("GPTBOOK_FAST_DEV_RUN", "0")
    assert book.fast_dev_run() == 0 and book.cap(7, per=3) == 7
    monkeypatch.setenv("GPTBOOK_FAST_DEV_RUN", "yes")
    with pytest.raises(ValueError, match="GPTBOOK_FAST_DEV_RUN='yes' is not a number of steps"):
        book.fast_dev_run()


def test_a_fast_dev_run_caps_loops_and_takes_the_dry_picks(monkeypatch):
    monkeypatch.setenv("GPTBOOK_SCALE", "full")
    assert book.pick(quick=1, full=2, dry=3) == 2
    monkeypatch.setenv("GPTBOOK_FAST_DEV_RUN", "2")
    assert book.cap(5000) == 2 and book.cap(1) == 1
    assert book.cap(1000, per=64) == 128 and book.cap(100, per=64) == 100
    assert book.pick(quick=1, full=2, dry=3) == 3
    assert book.pick(quick=1, full=2) == 2  # shapes keep their scale's value


def test_setup_says_when_a_fast_dev_run_is_on(monkeypatch, capsys):
    monkeypatch.setenv("GPTBOOK_FAST_DEV_RUN", "2")
    monkeypatch.setenv("GPTBOOK_DEVICE", "cpu")
    book.setup()
    assert "fast dev run: 2 steps a loop, results meaningless" in capsys.readouterr().out


def test_device(monkeypatch):
    monkeypatch.delenv("GPTBOOK_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert book.device() == expected
    monkeypatch.setenv("GPTBOOK_DEVICE", "cpu")
    assert book.device() == "cpu"


def test_bad_device_names_the_fix(monkeypatch):
    monkeypatch.setenv("GPTBOOK_DEVICE", "gpu")
    with pytest.raises(ValueError, match="not a device; use one of cpu, cuda, mps"):
        book.device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("GPTBOOK_DEVICE", "cuda:0")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            book.device()


def test_a_device_given_by_name_is_checked_too(monkeypatch):
    monkeypatch.setenv("GPTBOOK_DEVICE", "cpu")
    assert book.device("CPU") == "cpu"  # the argument wins over the environment
    with pytest.raises(ValueError, match="device='cuda:x' is not a device"):
        book.device("cuda:x")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda' but PyTorch sees no CUDA GPU"):
            book.device("cuda")


def test_setup_allows_tf32():
    before = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        book.allow_tf32()
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def test_setup_prints_one_line_and_seeds(monkeypatch, capsys):
    monkeypatch.setenv("GPTBOOK_SCALE", "quick")
    monkeypatch.setenv("GPTBOOK_DEVICE", "cpu")
    book.setup(seed=3)
    first = torch.rand(3)
    book.setup(seed=3)
    assert torch.equal(first, torch.rand(3))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == lines[1]
    assert (
        lines[0].startswith("gptbook ") and "device cpu" in lines[0] and "scale quick" in lines[0]
    )


def test_show_renders_package_source():
    shown = book.show(data.get_batch)
    assert shown.path == "gptbook/data.py"
    assert shown.code.startswith("def get_batch(")
    assert "```python\ndef get_batch(" in shown._repr_markdown_()
    assert book.show(tokenizers.CharTokenizer).code.startswith("class CharTokenizer")
    assert "Notebook support" in book.show(book).code
    rope = book.show(GPTConfig.rope)  # a property: its getter
    assert rope.name == "GPTConfig.rope" and rope.path == "gptbook/config.py"
    assert rope.code.lstrip().startswith("@property\n    def rope(self)")


def test_show_refuses_foreign_objects():
    with pytest.raises(ValueError, match="not from gptbook"):
        book.show(torch.nn.Linear)
    with pytest.raises(ValueError, match="not from gptbook"):
        book.show(len)


def test_online_is_false_at_once_when_the_hub_is_switched_off(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("online() must not open a connection when told to stay offline")

    monkeypatch.setattr(socket, "create_connection", no_network)
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
        monkeypatch.setenv(variable, "1")
        assert book.online() is False


def test_online_says_false_when_no_connection_opens(monkeypatch):
    import socket

    def refused(address, timeout):
        assert address == (book.HUB_HOST, 443) and timeout == 3.0
        raise OSError("network is unreachable")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "create_connection", refused)
    assert book.online() is False


def test_lesson_prints_one_line_either_way(capsys):
    book.lesson("6.a", "pretraining helps at 32 labels", True, "+9.1 points (95% CI 4.0 to 14.2)")
    book.lesson("8.e", "examples help", False, "+0.4 points (95% CI -3.0 to 3.8), n=400")
    held, failed = capsys.readouterr().out.splitlines()
    assert held == "✓ Lesson 6.a: pretraining helps at 32 labels — +9.1 points (95% CI 4.0 to 14.2)"
    assert failed == (
        "✗ Lesson 8.e not shown: examples help — +0.4 points (95% CI -3.0 to 3.8), n=400"
    )


@pytest.mark.parametrize("holds", [1, 0.7, "yes", None, torch.tensor(True)])
def test_lesson_refuses_a_holds_that_is_not_a_bool(holds, capsys):
    with pytest.raises(TypeError, match=r"holds must be True or False.*bool\(\.\.\.\)"):
        book.lesson("1.a", "a claim", holds, "evidence")
    assert capsys.readouterr().out == ""  # nothing half-stated


@pytest.mark.parametrize(
    "claim, evidence, match",
    [
        ("a — b", "e", "may not contain"),
        ("", "e", "claim must be one non-empty line"),
        ("a", "two\nlines", "evidence must be one non-empty line"),
    ],
)
def test_lesson_refuses_what_the_sanitizer_could_not_read(claim, evidence, match):
    with pytest.raises(ValueError, match=match):
        book.lesson("1.a", claim, True, evidence)


def _sanitize(text: str) -> str:
    """The notebooks' sanitizer (tests/sanitize.cfg) applied as nbval applies it."""
    import re
    from pathlib import Path

    from nbval.plugin import get_sanitize_patterns

    cfg = Path(__file__).with_name("sanitize.cfg").read_text(encoding="utf-8")
    for regex, replace in get_sanitize_patterns(cfg):
        text = re.sub(regex, replace, text)
    return text


def test_the_sanitizer_masks_a_lessons_evidence_but_not_its_verdict(capsys):
    book.lesson("6.a", "pretraining helps", True, "+9.1 points (95% CI 4.0 to 14.2), 3 seeds")
    first = capsys.readouterr().out
    book.lesson("6.a", "pretraining helps", True, "+7.3 points (95% CI 1.2 to 12.0), 3 seeds")
    assert _sanitize(first) == _sanitize(capsys.readouterr().out)  # noise in numbers passes
    assert _sanitize(first) == "✓ Lesson 6.a: pretraining helps — EVIDENCE\n"
    book.lesson("6.a", "pretraining helps", False, "+0.3 points (95% CI -4.0 to 4.6), 3 seeds")
    assert _sanitize(first) != _sanitize(capsys.readouterr().out)  # a flip fails
