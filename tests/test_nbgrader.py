"""Instructors can use nbgrader directly: every chapter converts to a student version with
nbgrader's own `generate_assignment`, and `autograde` gives the reference solutions full marks and
the untouched stubs zero (chapter 0, executed twice)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
BIN = Path(sys.executable).parent  # nbgrader and the alembic it runs live next to python
CONFIG = """c = get_config()
c.CourseDirectory.course_id = "gptbook"
c.Execute.timeout = 600  # nbgrader runs each cell for at most 30 s by default
"""


def nbgrader(*args: str, cwd: Path) -> str:
    exe = shutil.which("nbgrader", path=str(BIN)) or shutil.which("nbgrader")
    assert exe, "nbgrader is not installed: `make setup` installs requirements.txt"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run(
        [exe, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "ERROR" not in output, output
    return output


def course(tmp_path: Path, chapters: list[Path]) -> Path:
    """An nbgrader course folder with each chapter as an assignment of its own."""
    (tmp_path / "nbgrader_config.py").write_text(CONFIG)
    for path in chapters:
        folder = tmp_path / "source" / path.stem
        folder.mkdir(parents=True)
        shutil.copy(path, folder / path.name)
    return tmp_path


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_nbgrader_makes_a_student_version_of_every_chapter(tmp_path, chapter):
    root = course(tmp_path, [chapter])
    nbgrader("generate_assignment", chapter.stem, "--force", cwd=root)
    released = cells(root / "release" / chapter.stem / chapter.name)
    source = "".join("".join(c["source"]) for c in released)
    assert "### BEGIN SOLUTION" not in source and "raise NotImplementedError" in source
    graders = [c for c in released if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    assert graders and all(not c.get("outputs") for c in released if c["cell_type"] == "code")


def test_nbgrader_autograde_gives_the_solutions_full_marks_and_the_stubs_zero(tmp_path):
    chapter = CHAPTERS[0]  # the shortest run: chapter 0
    name = chapter.stem
    root = course(tmp_path, [chapter])
    nbgrader("generate_assignment", name, "--force", cwd=root)
    submissions = {"solver": chapter, "blank": root / "release" / name / chapter.name}
    for student, notebook in submissions.items():
        folder = root / "submitted" / student / name
        folder.mkdir(parents=True)
        shutil.copy(notebook, folder / chapter.name)
    nbgrader("autograde", name, "--create", cwd=root)
    nbgrader("export", cwd=root)
    with open(root / "grades.csv", newline="") as f:
        grades = {row["student_id"]: row for row in csv.DictReader(f)}
    points = sum(
        c["metadata"]["nbgrader"].get("points", 0)
        for c in cells(chapter)
        if c.get("metadata", {}).get("nbgrader", {}).get("grade")
    )
    assert points >= 2
    assert float(grades["solver"]["score"]) == float(grades["solver"]["max_score"]) == points
    assert float(grades["blank"]["score"]) == 0.0
