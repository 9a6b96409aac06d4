"""Student versions of the chapters: solutions removed, ready to hand out.

For instructors (see the instructors' notes in the book). Every solution in a
chapter sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's
markers). This module replaces each such block with a stub that raises
``NotImplementedError`` and clears the outputs of solution and grading cells,
so a student sees the task and the grader but not the answer.

Command line: ``python -m gptbook.student SRC_DIR OUT_DIR`` (``make student``).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_BLOCK = re.compile(
    rf"^(?P<indent>[ \t]*){re.escape(BEGIN)}\n.*?^[ \t]*{re.escape(END)}[ \t]*$", re.S | re.M
)


def strip_solution(source: str) -> str:
    """Replace every BEGIN/END SOLUTION block of ``source`` with a ``NotImplementedError`` stub."""
    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"unbalanced solution markers in:\n{source}")
    stub = r"\g<indent># YOUR CODE HERE\n\g<indent>raise NotImplementedError()"
    return _BLOCK.sub(stub, source)


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` with solutions stubbed out and exercise outputs cleared."""
    out = nbformat.from_dict(nb)
    for cell in out.cells:
        if cell.cell_type != "code":
            continue
        is_solution = BEGIN in cell.source
        is_grader = cell.metadata.get("nbgrader", {}).get("grade", False)
        if is_solution:
            cell.source = strip_solution(cell.source)
            tags = cell.metadata.get("tags", [])
            if "hide-input" in tags:  # the book hides solutions; students see their stub
                tags.remove("hide-input")
        if is_solution or is_grader:
            cell.outputs, cell.execution_count = [], None
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m gptbook.student SRC OUT``: the student version of every chapter of SRC."""
    parser = argparse.ArgumentParser(
        prog="python -m gptbook.student", description=__doc__.split("\n")[0]
    )
    parser.add_argument("src", type=Path, help="folder with the chapter notebooks")
    parser.add_argument("out", type=Path, help="folder to write the student versions to")
    args = parser.parse_args(argv)
    if args.src.resolve() == args.out.resolve():
        parser.error("OUT must differ from SRC: student versions never overwrite the chapters")
    chapters = sorted(args.src.glob("*.ipynb"))
    if not chapters:
        parser.error(f"{args.src} has no notebooks (*.ipynb): give the book's folder, e.g. book")
    args.out.mkdir(parents=True, exist_ok=True)
    for path in chapters:
        nb = nbformat.read(path, as_version=4)
        nbformat.write(student_notebook(nb), args.out / path.name)
        print(f"{path} -> {args.out / path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
