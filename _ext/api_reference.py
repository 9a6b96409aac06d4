"""The book's API reference: every public object of gptbook, from its docstring, linked to the
chapter that introduces it.

A Sphinx extension, loaded through ``_config.yml`` (``sphinx.local_extensions``). It adds the
directive ``gptbook-api`` (one section per module of ``gptbook``, by Sphinx's autodoc) and, under
each docstring, a line that links to the first chapter whose code uses the object. The chapter
of an object is found in the notebooks themselves, so a new chapter needs no list kept by hand.

PyTorch and the other libraries gptbook imports are mocked while the reference is built
(``autodoc_mock_imports`` in ``_config.yml``): building the book needs none of them.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
PACKAGE = ROOT / "gptbook"
#: Where objects that no chapter uses are introduced: the course tooling, by the instructors' guide.
APPENDIX = "book/instructors"


def modules() -> list[str]:
    """gptbook's public modules, in the order ``gptbook/__init__.py`` lists them."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "_SUBMODULES":
            return list(ast.literal_eval(node.value))
    raise LookupError("gptbook/__init__.py has no _SUBMODULES")


def chapters() -> list[tuple[str, str, str]]:
    """Each chapter's document name (``book/05_gpt1_pretraining``), title and code, in order."""
    found = []
    for path in sorted(BOOK.glob("[0-9][0-9]_*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        title = "".join(cells[0]["source"]).splitlines()[0].lstrip("# ").strip()
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        found.append((f"book/{path.stem}", title, code))
    return found


def _uses(code: str, module: str, name: str | None) -> bool:
    """Whether chapter code uses ``gptbook.module`` (``name`` None) or ``module.name``."""
    short = module.rsplit(".", 1)[-1]
    if name is None:
        return bool(re.search(rf"\b(gptbook\.{short}\b|{short}\.\w|import[^\n]*\b{short}\b)", code))
    return bool(
        re.search(rf"\b{short}\.{name}\b", code)
        or re.search(rf"from gptbook\.{short} import[^\n]*\b{name}\b", code)
        or re.search(rf"from gptbook\.{short} import \([^)]*\b{name}\b", code)
    )


def _declared(module: str) -> str | None:
    """The chapter a module's docstring names ("Introduced in chapter 5"), as a document."""
    path = PACKAGE / f"{module}.py"
    path = path if path.exists() else PACKAGE / module / "__init__.py"
    found = re.search(
        r"Introduced in chapter (\d+)", ast.get_docstring(ast.parse(path.read_text())) or ""
    )
    if found is None:
        return None
    return next(doc for doc, _, _ in chapters() if doc.startswith(f"book/{int(found[1]):02d}_"))


@cache
def introduced_in(qualified: str) -> str:
    """The document that introduces ``gptbook.module[.Name]``: for an object, the first chapter
    whose code uses it; for a module (or an object no chapter uses), the chapter its docstring
    names, else the first chapter that uses the module; else the instructors' guide (the course
    tooling)."""
    parts = qualified.split(".")
    module, name = parts[1], parts[2] if len(parts) > 2 else None
    if name is not None:
        first = next((doc for doc, _, code in chapters() if _uses(code, module, name)), None)
        if first is not None:
            return first
    used = next((doc for doc, _, code in chapters() if _uses(code, module, None)), None)
    return _declared(module) or used or APPENDIX


def title(doc: str) -> str:
    """A chapter's title, e.g. "5. GPT-1: the model and pretraining"."""
    return next((t for d, t, _ in chapters() if d == doc), "Instructors' guide")


def _link_chapter(app, what, name, obj, options, lines) -> None:
    """autodoc-process-docstring: end each public object's docstring with its chapter."""
    if not name.startswith("gptbook.") or what not in ("module", "class", "exception", "function"):
        return
    doc = introduced_in(name)
    lines += ["", f"*Introduced in* :doc:`{title(doc)} </{doc}>`."]


def _directive():
    from docutils import nodes
    from docutils.parsers.rst import Directive
    from docutils.statemachine import StringList
    from sphinx.util.nodes import nested_parse_with_titles

    class GptbookApi(Directive):
        """``gptbook-api``: a section per gptbook module, with its public objects."""

        def run(self):
            text = []  # MyST, the language of the page that holds the directive
            for module in modules():
                # autodoc writes reStructuredText, which MyST reads inside eval-rst only
                text += [f"## `gptbook.{module}`", "", "```{eval-rst}"]
                text += [f".. automodule:: gptbook.{module}", "   :members:"]
                text += ["   :ignore-module-all:", "   :exclude-members: forward", "```", ""]
            node = nodes.section()
            node.document = self.state.document
            nested_parse_with_titles(self.state, StringList(text, "gptbook-api"), node)
            return node.children

    return GptbookApi


def setup(app):
    """Register the directive and the chapter links; gptbook is imported from the repository."""
    sys.path.insert(0, str(ROOT))
    app.setup_extension("sphinx.ext.autodoc")
    app.add_directive("gptbook-api", _directive())
    app.connect("autodoc-process-docstring", _link_chapter)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
