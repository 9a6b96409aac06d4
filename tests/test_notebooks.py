"""The notebooks' conventions (shared/DESIGN §4), checked without running them.

nbval runs them (`make notebooks`); these checks make sure what is committed is one
clean top-to-bottom run that follows the book's rules.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

import gptbook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
REPO_URL = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
#: The first code cell of every chapter, character for character.
SETUP_CELL = f"""import sys

if "google.colab" in sys.modules:  # in Colab, install gptbook first
    %pip install -q "gptbook @ git+{REPO_URL}"

from gptbook import book

book.setup()"""
#: nb-clean's options, as the Makefile's `make execute` applies them.
NB_CLEAN = re.search(r"^NBCLEAN\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M)[1].split()


def _nb(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _code(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_notebooks():
    assert NOTEBOOKS, "book/ has no chapter notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_title_cell(path):
    first = _nb(path).cells[0]
    number = int(path.name.split("_")[0])
    assert first.cell_type == "markdown"
    assert re.match(rf"# {number}\. \S", first.source), "first cell: '# N. Title'"
    colab = f"https://colab.research.google.com/github/{REPO_URL.split('github.com/')[1]}/blob/main/book/{path.name}"
    assert colab in first.source, f"the title cell needs a Colab badge linking to {colab}"
    assert re.search(r"\*Time:", first.source), "say how long the chapter takes"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_is_identical(path):
    assert _code(_nb(path))[0].source == SETUP_CELL


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_outputs_are_one_clean_run(path):
    cells = [c for c in _code(_nb(path)) if c.source.strip()]
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), (
        "run `make execute`"
    )
    for cell in cells:
        for out in cell.outputs:
            assert out.output_type != "error", f"error output in:\n{cell.source}"
            assert out.get("name") != "stderr" or "Warning" not in out.text, (
                f"a warning is committed:\n{out.text}"
            )
    assert "device cpu" in cells[0].outputs[0].text or "device cuda" in cells[0].outputs[0].text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_deterministic_cells_are_checked(path):
    checked = [
        c
        for c in _code(_nb(path))
        if c.source.startswith("# NBVAL_CHECK_OUTPUT")
        or "nbval-check-output" in c.metadata.get("tags", [])
    ]
    assert len(checked) >= 3 and all(c.outputs for c in checked)


#: The lessons (book.lesson, DESIGN §9) that a chapter's committed run must show.
REQUIRED_LESSONS: dict[int, set[str]] = {
    6: {"6.a", "6.b", "6.c"},
    8: {"8.a", "8.b", "8.c", "8.d", "8.e", "8.f", "8.g"},
}
LESSON_LINE = re.compile(r"^(✓|✗) Lesson (\S+?)( not shown)?: .+ — .+$", re.M)


def _lessons(cell) -> list[tuple[str, str]]:
    text = "".join(out.get("text", "") for out in cell.outputs)
    return [(m[1], m[2]) for m in LESSON_LINE.finditer(text)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lessons_are_shown_and_output_checked(path):
    """A committed lesson holds (no ✗), sits in an output-checked cell, and has its own
    number; a chapter shows the lessons its issue of record asks of it."""
    shown = []
    for cell in _code(_nb(path)):
        lessons = _lessons(cell)
        if lessons:
            assert "nbval-check-output" in cell.metadata.get("tags", []), (
                f"tag the lesson cell nbval-check-output:\n{cell.source}"
            )
        for mark, number in lessons:
            assert mark == "✓", f"Lesson {number} is not shown: redesign the experiment"
            assert number.split(".")[0] == str(int(path.name[:2])), f"Lesson {number} misnumbered"
            shown.append(number)
    assert len(shown) == len(set(shown)), f"a lesson number is used twice: {shown}"
    missing = REQUIRED_LESSONS.get(int(path.name[:2]), set()) - set(shown)
    assert not missing, f"{path.name} does not show lessons {sorted(missing)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_plots_end_with_show(path):
    for cell in _code(_nb(path)):
        if "plt." in cell.source and "image/png" in str(cell.outputs):
            last = cell.source.rstrip().splitlines()[-1]
            assert last == "plt.show()" or last.endswith(";"), (
                f"end plot cells with plt.show():\n{cell.source}"
            )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_chapter_has_three_figures(path):
    figures = sum(
        "image/png" in out.get("data", {}) for cell in _code(_nb(path)) for out in cell.outputs
    )
    assert figures >= 3, f"{path.name} has {figures} figures: show what a reader would rather see"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises(path):
    number = path.name.split("_")[0]
    cells = _code(_nb(path))
    solutions = [c for c in cells if "### BEGIN SOLUTION" in c.source]
    graders = [c for c in cells if re.search(rf"exercises\.check_{number}_\d+\(", c.source)]
    minimum = 2 if number == "00" else 4
    assert len(solutions) >= minimum and len(graders) >= minimum
    for cell in solutions:
        assert cell.source.count("### BEGIN SOLUTION") == cell.source.count("### END SOLUTION")
        assert cell.metadata["nbgrader"]["solution"] is True
        assert "hide-input" in cell.metadata.get("tags", []), "hide solutions behind a toggle"
    for cell in graders:
        assert cell.metadata["nbgrader"]["grade"] is True
        assert "passed" in "".join(o.get("text", "") for o in cell.outputs)
    for name in re.findall(rf"check_({number}_\d+)", "".join(c.source for c in graders)):
        assert hasattr(gptbook.exercises, f"check_{name}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_package_code_is_redefined(path):
    """A notebook may build a naive version, but never re-define a name gptbook exports."""
    import importlib
    import pkgutil

    exported = set()
    for info in pkgutil.iter_modules(gptbook.__path__):
        module = importlib.import_module(f"gptbook.{info.name}")
        exported |= {
            n
            for n in vars(module)
            if not n.startswith("_")
            and getattr(vars(module)[n], "__module__", "").startswith("gptbook")
        }
    for cell in _code(_nb(path)):
        for name in re.findall(r"^(?:def|class) (\w+)", cell.source, re.M):
            assert name not in exported, (
                f"{path.name} redefines gptbook's {name}: import it or book.show() it"
            )


def test_every_notebook_is_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"file: (\S+)", toc)) | set(re.findall(r"root: (\S+)", toc))
    for path in NOTEBOOKS:
        assert f"book/{path.stem}" in listed, f"add book/{path.stem} to _toc.yml"
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in (".ipynb", ".md")), (
            f"{entry} in _toc.yml has no file"
        )


def test_notebooks_are_nb_clean():
    exe = Path(sys.executable).parent / "nb-clean"
    exe = str(exe) if exe.exists() else shutil.which("nb-clean")
    assert exe, "nb-clean is not installed: `make setup` installs it"
    done = subprocess.run(
        [exe, "check", *NB_CLEAN, *map(str, NOTEBOOKS)], capture_output=True, text=True
    )
    assert done.returncode == 0, f"run `make execute` (it cleans):\n{done.stdout}{done.stderr}"
