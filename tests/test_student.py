"""gptbook.student: student versions keep the task and the grader, not the answer."""

from __future__ import annotations

import nbformat
import pytest

from gptbook import student

NB = nbformat.read(
    student.Path(__file__).resolve().parent.parent / "book" / "00_preface.ipynb", as_version=4
)


def test_strip_solution_keeps_indentation_and_surroundings():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\nprint(f)"
    assert student.strip_solution(src) == (
        "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\nprint(f)"
    )
    with pytest.raises(ValueError, match="unbalanced"):
        student.strip_solution("### BEGIN SOLUTION\nx = 1")


def test_student_notebook_hides_every_answer():
    out = student.student_notebook(NB)
    assert len(out.cells) == len(NB.cells)
    for before, after in zip(NB.cells, out.cells):
        if before.cell_type == "code" and "### BEGIN SOLUTION" in before.source:
            inside = before.source.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
            assert inside.strip() and inside.strip() not in after.source
            assert "raise NotImplementedError()" in after.source and not after.outputs
            assert "hide-input" not in after.metadata.get("tags", [])
        elif before.metadata.get("nbgrader", {}).get("grade"):
            assert after.source == before.source and not after.outputs
        else:
            assert after == before
    assert "### BEGIN SOLUTION" in "".join(c.source for c in NB.cells), (
        "the input is left as it was"
    )


def test_cli_refuses_to_overwrite_the_chapters(tmp_path, capsys):
    with pytest.raises(SystemExit):
        student.main([str(tmp_path), str(tmp_path)])
    book = tmp_path / "book"
    book.mkdir()
    nbformat.write(NB, book / "00_preface.ipynb")
    assert student.main([str(book), str(tmp_path / "out")]) == 0
    assert "YOUR CODE HERE" in (tmp_path / "out" / "00_preface.ipynb").read_text()
