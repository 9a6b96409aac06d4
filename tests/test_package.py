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
heavy = sorted(m for m in ("torch", "datasets", "tiktoken", "transformers", "matplotlib") if m in sys.modules)
print("heavy:", heavy)
import gptbook.book, gptbook.data, gptbook.tokenizers, gptbook.assets, gptbook.exercises, gptbook.student
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
