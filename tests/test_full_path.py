"""The full-scale path, checked on a CPU: every chapter at ``GPTBOOK_SCALE=full``, top to bottom,
as a fast dev run (``GPTBOOK_FAST_DEV_RUN``: each loop stops after a few steps or batches).

Most readers run ``full`` (Colab's GPU picks it), and the quick runs of ``make notebooks`` never
go down that path: the full-size configs, micro-batches, the GPT-2-token models and the cells
that run at full scale only. Here every one of them runs, with full-size models and batches,
on the CPU; only the number of steps is small, so no number is checked, only that every cell
runs. ``make full-path`` runs it (``make test`` does), one chapter per worker.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("[0-9][0-9]_*.ipynb"))
#: Steps and batches each loop runs: two, so that a loop's second step (its optimiser state, a
#: cache it filled) runs too.
STEPS = 2
#: A chapter's longest cell, in seconds, before the run counts as stuck.
CELL_TIMEOUT = 1200

pytestmark = pytest.mark.full_path


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_at_full_scale(chapter, monkeypatch):
    monkeypatch.setenv("GPTBOOK_SCALE", "full")
    monkeypatch.setenv("GPTBOOK_FAST_DEV_RUN", str(STEPS))
    monkeypatch.setenv("GPTBOOK_DEVICE", "cpu")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    nb = nbformat.read(chapter, as_version=4)
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": "book"}}
    )
    try:
        client.execute()
    except CellExecutionError as err:
        pytest.fail(f"{chapter.name} at full scale (fast dev run): {err}", pytrace=False)
    first = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "scale full" in first and f"fast dev run: {STEPS} steps" in first, (
        f"{chapter.name}'s first code cell should run book.setup(), which says: {first!r}"
    )
