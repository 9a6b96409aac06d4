"""The appendices: the glossary's entries and where they point."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(
    r"^\| (?P<en>[^|]+?) \| (?P<zh>[^|]+?) \| \[(?P<label>[^\]]+)\]\((?P<link>[^)]+)\) \|$"
)


def slug(title: str) -> str:
    """MyST's anchor of a heading (myst_heading_anchors in _config.yml)."""
    return re.sub(r"[^\w\u4e00-\u9fff\- ]", "", title.strip().lower().replace(" ", "-"))


def headings(notebook: Path) -> set[str]:
    cells = json.loads(notebook.read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return {slug(h) for h in re.findall(r"^##? (.+)$", text, re.M)}


def test_every_glossary_term_has_chinese_and_links_to_a_section_that_exists():
    lines = (ROOT / "book" / "glossary.md").read_text().splitlines()
    rows = [ROW.match(line) for line in lines if line.startswith("| ") and "](" in line]
    assert len(rows) >= 40 and all(rows), (
        "every row: | English | 中文 | [section](chapter#anchor) |"
    )
    english = [row["en"] for row in rows]
    assert english == sorted(english, key=str.lower), "keep the glossary in alphabetical order"
    for row in rows:
        assert re.search(r"[\u4e00-\u9fff]", row["zh"]), f"{row['en']}: no Chinese term"
        target, anchor = row["link"].split("#")
        assert anchor in headings(ROOT / "book" / target), f"{row['link']}: no such heading"
    for term in ("自回归", "非自回归", "词元", "嵌入", "位置编码", "注意力", "掩码", "预训练",
                 "微调", "提示", "上下文学习", "规模定律", "采样"):  # fmt: skip
        assert any(term in row["zh"] for row in rows), f"the glossary lacks {term}"


def test_running_anywhere_names_every_setting_and_a_command_that_parses():
    text = (ROOT / "book" / "running.md").read_text()
    package = "\n".join(p.read_text() for p in (ROOT / "gptbook").glob("*.py"))
    for variable in set(re.findall(r"GPTBOOK_[A-Z_]+", package)):
        assert f"`{variable}`" in text, f"running.md does not explain {variable}"
    from gptbook.train import _parser

    command = re.search(r"torchrun --nproc_per_node=(\d+) -m gptbook\.train (.*?)\n```", text, re.S)
    gpus, parsed = int(command[1]), _parser().parse_args(command[2].replace("\\\n", " ").split())
    each = parsed.batch_size // gpus  # the sequences of each process, in whole micro-batches
    assert parsed.batch_size % gpus == 0 and each % parsed.micro_batch_size == 0


def chapter_times(text: str) -> list[str]:
    return re.findall(r"^\| \d+\. .* \| \d+ \| \d+ \|$", text, re.M)


def test_the_instructors_guide_quotes_the_measured_chapter_times():
    guide = chapter_times((ROOT / "book" / "instructors.md").read_text())
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    measured = chapter_times(results.split("## Chapter times")[1])
    assert guide == measured, "copy the table of benchmarks/RESULTS.md into the guide"
    chapters = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
    assert [int(row[2:].split(".")[0]) for row in guide] == [int(p.name[:2]) for p in chapters]


def test_the_api_reference_finds_each_objects_chapter_in_the_notebooks():
    """_ext/api_reference.py: an object's chapter is the first whose code uses it; a module's
    is the one its docstring names; the course tooling, used by no chapter, is the guide's."""
    import sys

    sys.path.insert(0, str(ROOT / "_ext"))
    try:
        import api_reference as api
    finally:
        sys.path.remove(str(ROOT / "_ext"))
    assert api.modules()[0] == "ablation" and "student" in api.modules()
    assert api.introduced_in("gptbook.finetune.build_inputs") == "book/06_gpt1_finetuning"
    assert api.introduced_in("gptbook.sampling.top_p") == "book/09_sampling"
    assert api.introduced_in("gptbook.checks") == "book/00_preface"  # "Introduced in chapter 0"
    assert api.introduced_in("gptbook.student.student_notebook") == "book/instructors"
    assert api.title("book/05_gpt1_pretraining") == "5. GPT-1: the model and pretraining"
