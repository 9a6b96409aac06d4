"""The built book, as a reader sees it: every page opened in headless Chromium.

Runs after the strict build (`make test` builds first). Each page is rendered with
its scripts (MathJax included), screenshotted into _build/screenshots/, and checked:
math is typeset (no raw $$ or \\( left), the sidebar lists the chapters, no cell
output is an error traceback, chapter pages have a Colab launch link, and the
committed outputs (text and figures) are on the page.
Skipped, with a message, where no Chromium is installed (`.ci/run` installs it).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import nbformat
import pytest
import yaml
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=8000",
    "--window-size=1280,2000",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium found: install it to check the rendered book (.ci/run does)",
    ),
]


def _pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return files


def _chromium(*args: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def rendered() -> dict[str, BeautifulSoup]:
    if not (HTML / "index.html").exists():
        pytest.fail("the book is not built: run `make book-strict` (make test does) first")
    SHOTS.mkdir(parents=True, exist_ok=True)
    pages = {}
    for page in _pages():
        url = (HTML / f"{page}.html").as_uri()
        _chromium(f"--screenshot={SHOTS / (Path(page).name + '.png')}", url)
        pages[page] = BeautifulSoup(_chromium("--dump-dom", url), "html.parser")
    return pages


def _prose(soup: BeautifulSoup) -> str:
    article = soup.select_one("article") or soup
    for tag in article.select("pre, code, script, style, .cell_input, .output"):
        tag.decompose()
    return article.get_text(" ")


@pytest.mark.parametrize("page", _pages())
def test_page_renders(rendered, page):
    soup = rendered[page]
    assert (SHOTS / f"{Path(page).name}.png").stat().st_size > 10_000, "empty screenshot"
    links = soup.select(".bd-sidebar-primary nav a")
    assert len(links) >= len(_pages()) - 1, f"the sidebar is missing on {page}"
    # long code lines wrap (_static/wrap.css) instead of scrolling sideways
    assert soup.select_one('link[href*="wrap.css"]'), f"{page} lacks _static/wrap.css"
    errors = soup.select(".output.traceback, .output .ansi-red-fg")
    assert not errors and "Traceback (most recent call last)" not in soup.get_text(), (
        f"{page} shows an error traceback"
    )
    text = _prose(BeautifulSoup(str(soup), "html.parser"))
    for raw in ("$$", "\\(", "\\[", "\\begin{"):
        assert raw not in text, f"untypeset math ({raw}) on {page}"


def test_math_is_typeset(rendered):
    intro = rendered[_pages()[0]]
    assert intro.select("mjx-container"), "MathJax did not typeset the intro's equations"


@pytest.mark.parametrize("page", [p for p in _pages() if (ROOT / f"{p}.ipynb").exists()])
def test_chapter_shows_its_outputs_and_colab(rendered, page):
    soup = rendered[page]
    colab = [a["href"] for a in soup.select("a[href*='colab.research.google.com']")]
    assert any(h.endswith(f"{page}.ipynb") for h in colab), f"no Colab launch link on {page}"
    nb = nbformat.read(ROOT / f"{page}.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    assert len(soup.select(".cell_output img")) == figures, f"{page}: figures missing"
    first_text = next(o["text"] for o in outputs if o.get("output_type") == "stream")
    assert first_text.strip() in soup.get_text(), f"{page}: committed outputs missing"


@pytest.mark.parametrize("page", [p for p in _pages() if (ROOT / f"{p}.ipynb").exists()])
def test_markdown_outputs_are_rendered(rendered, page):
    """A cell that displays Markdown (a table, say) shows it typeset, not as raw pipes."""
    nb = nbformat.read(ROOT / f"{page}.ipynb", as_version=4)
    tables = sum(
        "|---" in o.get("data", {}).get("text/markdown", "")
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    soup = rendered[page]
    assert len(soup.select(".cell_output table")) >= tables, f"{page}: a Markdown table is raw"
    raw = [p.get_text()[:60] for p in soup.select(".cell_output p") if p.get_text().startswith("|")]
    assert not raw, f"{page}: Markdown output shown as raw text: {raw}"


def test_the_api_reference_documents_every_public_object_with_its_chapter(rendered):
    """book/api: an entry (its anchor is its dotted name) for every public function and class of
    gptbook, each ending with a link to the chapter that introduces it, which exists."""
    import importlib
    import inspect

    import gptbook

    soup = rendered["book/api"]
    missing = []
    for module in gptbook.__all__[1:]:  # after __version__, the modules
        mod = importlib.import_module(f"gptbook.{module}")
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            entry = soup.find(id=f"gptbook.{module}.{name}")
            if entry is None:
                missing.append(f"gptbook.{module}.{name}")
                continue
            body = entry.find_next_sibling("dd")
            links = [a["href"] for a in body.select("a.reference.internal") if "Introduced" in
                     a.find_parent("p").get_text()]  # fmt: skip
            assert links, f"gptbook.{module}.{name}: no link to its chapter"
            target = (HTML / "book" / links[-1].split("#")[0]).resolve()
            assert target.exists(), f"gptbook.{module}.{name} links to {links[-1]}, not a page"
    assert not missing, f"the API reference lacks {missing}"


def test_search_finds_a_section_and_its_api_entry():
    """The search page, as a reader types "causal mask": chapter 4's section and the function."""
    url = (HTML / "search.html").as_uri() + "?q=causal+mask"
    results = BeautifulSoup(_chromium("--dump-dom", url), "html.parser").select(
        "#search-results li"
    )
    found = [li.get_text(" ") for li in results]
    assert any("4.3 The causal mask" in text for text in found), found
    assert any("causal _ mask" in text and "API reference" in text for text in found), found
