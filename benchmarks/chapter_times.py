"""How long each chapter takes: to run, measured, and to read, estimated from its text.

Each chapter notebook runs top to bottom in a fresh kernel, at the scale and on the device
``book.setup()`` chooses (``GPTBOOK_SCALE``, ``GPTBOOK_DEVICE``), with ``--threads`` CPU threads;
the table gives the wall time of the run. The reading time is the chapter's prose at
``WORDS_PER_MINUTE`` plus its code (the cells and the listings ``book.show`` prints) at
``CODE_LINES_PER_MINUTE``: an estimate for planning a course, not a measurement.

Usage: ``python benchmarks/chapter_times.py [--threads 2] [--chapters 00 05] [--no-run]``
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

BOOK = Path(__file__).resolve().parents[1] / "book"
#: Reading speed for the prose of a technical text, and for code read closely.
WORDS_PER_MINUTE = 150
CODE_LINES_PER_MINUTE = 40


def reading_minutes(nb: nbformat.NotebookNode) -> float:
    """The estimated minutes to read a chapter: its words and its lines of code."""
    words = sum(len(c.source.split()) for c in nb.cells if c.cell_type == "markdown")
    code = sum(len(c.source.splitlines()) for c in nb.cells if c.cell_type == "code")
    for cell in nb.cells:  # the package code that book.show() lists
        for out in cell.get("outputs", []):
            listing = out.get("data", {}).get("text/plain", "")
            if "book.show(" in cell.source and listing:
                code += len(listing.splitlines())
    return words / WORDS_PER_MINUTE + code / CODE_LINES_PER_MINUTE


def run_seconds(path: Path, threads: int) -> float:
    """Wall time of one top-to-bottom run of ``path`` in a fresh kernel."""
    nb = nbformat.read(path, as_version=4)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the kernel inherits the environment
    client = NotebookClient(nb, timeout=3600, kernel_name="python3", resources={
        "metadata": {"path": str(path.parent)}
    })  # fmt: skip
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per kernel")
    parser.add_argument("--chapters", nargs="*", help="chapter numbers, e.g. 00 05 (all)")
    parser.add_argument("--no-run", action="store_true", help="reading times only")
    args = parser.parse_args(argv)
    paths = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
    if args.chapters:
        paths = [p for p in paths if p.name[:2] in args.chapters]
        if not paths:
            parser.error(f"no chapter numbered {args.chapters} in {BOOK}")
    from gptbook import book

    scale, device = book.scale(), book.device()
    print(f"scale {scale} · device {device} · {args.threads} threads per kernel\n")
    print("| chapter | read (min) | run (s) |")
    print("|---|---:|---:|")
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        title = re.sub(r"^# ", "", nb.cells[0].source.splitlines()[0])
        run = "not run" if args.no_run else f"{run_seconds(path, args.threads):.0f}"
        print(f"| {title} | {reading_minutes(nb):.0f} | {run} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
