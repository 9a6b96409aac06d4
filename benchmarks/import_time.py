"""How long `import gptbook` takes, next to the imports a chapter then pays for.

Each statement runs in a fresh interpreter, `repeats` times; the table gives the
median wall time and its ratio to a bare interpreter start (the peer, measured in
the same run). `import gptbook` loads no submodule, so it should cost next to
nothing; `from gptbook import book` is also cheap until `book.setup()` imports torch.

    python benchmarks/import_time.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from datetime import date

STATEMENTS = {
    "(bare interpreter)": "pass",
    "import gptbook": "import gptbook",
    "from gptbook import book": "from gptbook import book",
    "import gptbook.data": "import gptbook.data",
    "import torch": "import torch",
    "book.setup()": "from gptbook import book; book.setup()",
}


def wall_time(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    medians = {}
    for label, statement in STATEMENTS.items():
        wall_time(statement)  # warm the file cache
        medians[label] = statistics.median(wall_time(statement) for _ in range(args.repeats))
    bare = medians["(bare interpreter)"]
    print(
        f"{date.today()} · Python {platform.python_version()} · {platform.machine()} · "
        f"median of {args.repeats} fresh interpreters\n"
    )
    print("| statement | wall time (s) | × bare interpreter |")
    print("|---|---:|---:|")
    for label, seconds in medians.items():
        print(f"| `{label}` | {seconds:.3f} | {seconds / bare:.1f} |")


if __name__ == "__main__":
    main()
