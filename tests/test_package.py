"""The package as a whole: a fast, offline import; one repository URL; the README's commands."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml

NO_NETWORK = """
import socket, sys
def refuse(*args, **kwargs):
    raise RuntimeError("network access at import time")
socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import gptbook
heavy = ("torch", "datasets", "tiktoken", "transformers", "matplotlib")
heavy = sorted(m for m in heavy if m in sys.modules)
print("heavy:", heavy)
import gptbook.book, gptbook.data, gptbook.tokenizers, gptbook.assets, gptbook.files
import gptbook.exercises, gptbook.student
print("ok")
"""


def test_import_is_light_and_offline():
    done = subprocess.run([sys.executable, "-c", NO_NETWORK], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["heavy: []", "ok"]


def test_repository_url_is_the_same_everywhere(root):
    url = yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"]
    assert f'Homepage = "{url}"' in (root / "pyproject.toml").read_text()


def test_readme_starts_with_the_two_commands(root):
    readme = (root / "README.md").read_text()
    first_block = re.search(r"```(?:bash|sh)?\n(.*?)```", readme, re.S)[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make book", "make test"]
    makefile = (root / "Makefile").read_text()
    for target in ("setup", "book", "test", "execute", "student", "clean"):
        assert re.search(rf"^{target}:", makefile, re.M), f"make {target} is missing"


def test_ci_pins_the_cpu_torch_and_runs_make_test(root):
    ci = (root / ".ci" / "run").read_text()
    assert "TORCH=torch==2.13.0" in ci and "HF_HUB_OFFLINE=1" in ci and "make test" in ci


def test_wheel_carries_the_manifest(root, tmp_path):
    """A git-URL install (Colab) builds a wheel: the manifest link must become a real file."""
    import shutil
    import zipfile

    src = tmp_path / "src"
    shutil.copytree(
        root / "gptbook",
        src / "gptbook",
        symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (src / "data").mkdir()
    for name in ("pyproject.toml", "README.md", "data/manifest.json"):
        shutil.copy(root / name, src / name)
    assert (src / "gptbook" / "manifest.json").is_symlink()
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        str(src),
        "-w",
        str(tmp_path / "dist"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=src)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("gptbook-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("gptbook/manifest.json") == (root / "data" / "manifest.json").read_bytes()
        assert "gptbook/book.py" in zf.namelist()


def _chapter_of(path) -> int | None:
    """The chapter a module belongs to: its docstring's "Introduced in chapter N", or chNN.py."""
    if re.fullmatch(r"ch\d\d\.py", path.name):
        return int(path.name[2:4])
    found = re.search(r"Introduced in chapter (\d+)", path.read_text())
    return int(found[1]) if found else None


def _gptbook_imports(path) -> set[str]:
    """The gptbook modules a file imports, anywhere in it (functions included)."""
    import ast

    parts = [] if path.parent.name == "gptbook" else [path.parent.name]  # gptbook.exercises
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = parts[: len(parts) + 1 - node.level]
            if node.module:
                names.add(".".join([*base, *node.module.split(".")]).split(".")[0])
            else:
                names.update(".".join([*base, a.name]).split(".")[0] for a in node.names)
    return {n for n in names if n and not n.startswith("_")}


def test_modules_import_only_earlier_chapters(root):
    """A module of chapter N imports only modules of chapters ≤ N (shared/DESIGN §3)."""
    modules = {p.stem: _chapter_of(p) for p in (root / "gptbook").glob("*.py")}
    files = [*(root / "gptbook").glob("*.py"), *(root / "gptbook" / "exercises").glob("ch*.py")]
    late = []
    for path in files:
        chapter = _chapter_of(path)
        if chapter is None:
            continue
        for name in _gptbook_imports(path):
            if modules.get(name) is not None and modules[name] > chapter:
                late.append(
                    f"{path.name} (chapter {chapter}) imports {name} (chapter {modules[name]})"
                )
    assert not late, "\n".join(late)


def test_every_module_is_an_attribute_of_the_package(root):
    """``gptbook.<module>`` works for every module without importing it first."""
    import gptbook

    modules = {p.stem for p in (root / "gptbook").glob("*.py") if not p.stem.startswith("_")}
    assert modules | {"exercises"} == set(gptbook._SUBMODULES)
    assert all(getattr(gptbook, name).__name__ == f"gptbook.{name}" for name in modules)


def test_the_readme_lists_every_module(root):
    """README's layout names each module of gptbook, so a reader finds where a concept lives."""
    import re

    import gptbook

    layout = (root / "README.md").read_text().split("## Layout")[1].split("```")[1]
    listed = set(re.findall(r"\w+", layout.split("gptbook/", 1)[1].split("data/")[0]))
    assert set(gptbook._SUBMODULES) <= listed, set(gptbook._SUBMODULES) - listed


def test_the_publishing_workflow_builds_like_make_book_strict(root):
    """The Pages workflow cannot run here: check that it installs the book tools at the versions
    requirements.txt pins and builds with the Makefile's strict flags."""
    workflow = yaml.safe_load((root / ".github/workflows/book.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    runs = [step.get("run", "") for step in steps]
    install = next(r for r in runs if "pip install" in r)
    requirements = (root / "requirements.txt").read_text()
    for tool in ("jupyter-book", "sphinx-mathjax-offline"):
        assert tool in install and re.search(rf"^{tool}\S*", requirements, re.M)
    makefile = (root / "Makefile").read_text()
    flags = re.search(r"^JB\s*:=\s*\$\(BIN\)/(jupyter-book build .*)$", makefile, re.M)[1]
    assert flags in runs
    upload = next(s for s in steps if "upload-pages-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "_build/html"
    assert workflow[True]["push"]["branches"] == ["main"]  # YAML reads the key `on` as True


def test_every_public_object_has_a_docstring():
    """Modules, classes, functions, methods and properties that gptbook defines and does not hide
    behind a leading underscore say what they are. A ``forward`` is documented by its class,
    which states the call (``model(idx, targets) -> (logits, loss)``)."""
    import importlib
    import inspect
    import pkgutil

    import gptbook

    missing = []
    for info in pkgutil.iter_modules(gptbook.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"gptbook.{info.name}")
        missing += [] if module.__doc__ else [module.__name__]
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) and not obj.__doc__:
                missing.append(f"{module.__name__}.{name}")
            if not inspect.isclass(obj):
                continue
            missing += [] if obj.__doc__ else [f"{module.__name__}.{name}"]
            for attr, member in vars(obj).items():
                documented = member.fget if isinstance(member, property) else member
                if attr.startswith("_") or attr == "forward":
                    continue
                if (inspect.isfunction(documented) or isinstance(member, property)) and not (
                    documented.__doc__
                ):
                    missing.append(f"{module.__name__}.{name}.{attr}")
    assert not missing, f"add a docstring to: {', '.join(missing)}"
