"""The built book (``make book``): every page loads whole, offline, with no solution text.

These tests read a build; they never build one (a cold build runs all seven notebooks, too
long for the suite's 5-minute budget). They test the full build in ``book/_build/html`` when
there is one, else the fast one (``.ci/run`` makes it after the suite), and skip without
either; the browser test also skips a build older than the notebooks.
"""

from __future__ import annotations

import re
import sys
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest
from bs4 import BeautifulSoup
from jupyter_cache import get_cache
from myst_nb.core.render import WIDGET_VIEW_MIMETYPE

from cvae_lib.classroom.book import BOOK, NOTEBOOKS, html_dir
from cvae_lib.classroom.exercises import solution_lines
from tests.browser import (chromium_page, free_port, require_browser, running_server,
                           screenshot, screenshot_on_failure)

BUILT = [path for path in (html_dir(), html_dir(fast=True)) if (path / "index.html").is_file()]
HTML = BUILT[0] if BUILT else html_dir()
LESSONS = [f"lessons/{path.stem}.html" for path in sorted(NOTEBOOKS.glob("0[1-7]_*.ipynb"))]
INSTRUCTORS = [f"instructors/{path.stem}.html" for path in sorted(BOOK.glob("instructors/*.md"))]
PAGES = ["intro.html", *LESSONS, *INSTRUCTORS, "references.html"]
EXERCISES = [page for page in LESSONS if Path(page).stem[:2] in ("05", "06", "07")]
LOCAL_SCHEMES = {"data", "blob", "about"}
SMART_QUOTES = str.maketrans("\u2018\u2019\u201c\u201d", "''\"\"")  # Sphinx curls quotes

pytestmark = pytest.mark.skipif(not BUILT, reason="no book built: `make book` (or "
                                "`make book-fast`) first; a build takes minutes")


def _outside(url: str) -> bool:
    """True for a request that would leave the machine (any host but 127.0.0.1)."""
    parts = urlsplit(url)
    return parts.scheme not in LOCAL_SCHEMES and parts.hostname != "127.0.0.1"


def _images(page) -> list[dict]:  # noqa: ANN001 - a playwright Page
    """Every ``<img>`` of the page: its address and natural width once loading has ended."""
    return page.eval_on_selector_all(
        "img", "imgs => Promise.all(imgs.map(img => img.decode().catch(() => null)"
               ".then(() => ({src: img.src.slice(0, 80), width: img.naturalWidth}))))")


def _typeset(page) -> int:  # noqa: ANN001 - a playwright Page
    """How many formulas MathJax has typeset on the page, once its queue is empty."""
    if not page.locator("script[src*='MathJax.js']").count():
        return 0  # Sphinx loads MathJax only on pages that hold math
    page.wait_for_function("() => window.MathJax && MathJax.Hub && MathJax.Hub.queue"
                           " && MathJax.Hub.queue.pending === 0 && !MathJax.Hub.queue.running")
    return page.locator(".MathJax, .MathJax_Display").count()


def _executed(name: str) -> nbformat.NotebookNode | None:
    """The executed notebook of page ``name`` from the build's cache; None if it is older."""
    source = NOTEBOOKS / f"{Path(name).stem}.ipynb"
    try:
        return get_cache(HTML.parent / ".jupyter_cache").merge_match_into_file(source)[1]
    except KeyError:
        return None


def _executed_outputs(name: str) -> tuple[int, int]:
    """PNG outputs and widget views the build's execution cache holds for page ``name``."""
    outputs = [output.get("data", {}) for cell in _executed(name).cells
               for output in cell.get("outputs", [])]
    return (sum("image/png" in data for data in outputs),
            sum(WIDGET_VIEW_MIMETYPE in data for data in outputs))


def _check_outputs(page, name: str) -> None:  # noqa: ANN001 - a playwright Page
    """Every figure and widget the notebook produced is on the page, and no widget script."""
    figures = page.locator(".cell_output img:not(.cvae-widget img)").count()
    widgets = page.locator(".cell_output .cvae-widget").count()
    assert (figures, widgets) == _executed_outputs(name), f"{name}: figures, widgets"
    widget_js = page.locator("script[type^='application/vnd.jupyter.widget']").count()
    assert not widget_js, f"{name}: widget scripts left on the page (no kernel to run them)"


def _source_headings(name: str) -> list[str]:
    """The headings of a markdown page's source, as text (code fences skipped)."""
    text = re.sub(r"^```.*?^```", "", (BOOK / name).with_suffix(".md").read_text(),
                  flags=re.MULTILINE | re.DOTALL)
    return [re.sub(r"[`*]", "", title).strip()
            for title in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)]


def _check_headings(page, name: str) -> None:  # noqa: ANN001 - a playwright Page
    """An instructor page shows every heading of its source, in order."""
    shown = [title.strip().removesuffix("#").strip().translate(SMART_QUOTES)
             for title in page.locator("article :is(h1, h2, h3)").all_inner_texts()]
    assert shown == _source_headings(name), f"{name}: headings on the page"


@cache
def _ids(path: Path) -> frozenset[str]:
    """Every element id of a built page: the anchors a link may point to."""
    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    return frozenset(tag["id"] for tag in soup.find_all(id=True))


def _broken_links(page, base: str) -> list[str]:  # noqa: ANN001 - a playwright Page
    """The links of the page's text that lead to no page, or to no heading, of the book."""
    broken = []
    for url in page.eval_on_selector_all("article a[href]", "links => links.map(a => a.href)"):
        if not url.startswith(f"{base}/"):
            continue  # a link out of the book is a reader's choice, never a request
        parts = urlsplit(url)
        target = HTML / parts.path.lstrip("/")
        target = target / "index.html" if target.is_dir() else target
        if not target.is_file() or (parts.fragment and parts.fragment not in _ids(target)):
            broken.append(url.removeprefix(base))
    return broken


def _visit(page, base: str, name: str) -> tuple[int, int]:  # noqa: ANN001 - a Page
    """Open one page: all its images load, its links lead somewhere; count images, formulas."""
    page.goto(f"{base}/{name}", wait_until="networkidle")
    images = _images(page)
    broken = [image["src"] for image in images if not image["width"]]
    assert not broken, f"{name}: images that did not load: {broken}"
    nowhere = _broken_links(page, base)
    assert not nowhere, f"{name}: links to no page or heading of the book: {nowhere}"
    if name in LESSONS:
        _check_outputs(page, name)
    if name in INSTRUCTORS:
        _check_headings(page, name)
    return len(images), _typeset(page)


def _read_every_page(page, base: str) -> dict[str, tuple[int, int]]:  # noqa: ANN001
    """Visit the landing page, each lesson, each instructor page and the references."""
    counts = {}
    for name in PAGES:
        counts[name] = _visit(page, base, name)
        if name in ("intro.html", LESSONS[3], "instructors/grading.html"):
            screenshot(page, f"book-{Path(name).stem}")
        if name == LESSONS[3]:
            page.locator(".cvae-widget").first.scroll_into_view_if_needed()
            screenshot(page, "book-04-widget")
    return counts


def _next_and_search(page, base: str) -> None:  # noqa: ANN001 - a playwright Page
    """The landing page's "next" link opens lesson 01; a search finds the lessons."""
    page.goto(f"{base}/intro.html")
    page.locator("a.right-next").click()
    page.wait_for_url(f"**/{LESSONS[0]}")
    page.goto(f"{base}/search.html?q=reparameterization")
    results = page.locator("#search-results li")
    results.first.wait_for()
    assert results.count() >= 1


def test_every_page_loads_offline_in_a_browser(tmp_path: Path):
    """Every page of the book: images load, links lead somewhere, math typesets, all offline."""
    require_browser()
    stale = [name for name in LESSONS if _executed(name) is None] + [
        name for name in INSTRUCTORS if not (HTML / name).is_file()
        or (BOOK / name).with_suffix(".md").stat().st_mtime > (HTML / name).stat().st_mtime]
    if stale:
        pytest.skip(f"the book in {HTML} is older than the sources of {stale}: rebuild it")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
               "--directory", str(HTML)]
    with running_server(command, tmp_path, f"{base}/index.html"), chromium_page() as page:
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        with screenshot_on_failure(page, "book"):
            counts = _read_every_page(page, base)
            _next_and_search(page, base)
    outside = sorted({url for url in requests if _outside(url)})
    figures = sum(images for images, _ in counts.values())
    print(f"book at {HTML}: {len(counts)} pages, {figures} images, {len(requests)} requests, "
          f"{len(outside)} outside 127.0.0.1")
    assert not outside, f"requests that left the machine: {outside}"
    assert counts["lessons/01_vae_fundamentals.html"][1] > 0, "no formula typeset in 01"


@pytest.mark.parametrize("name", EXERCISES)
def test_exercise_pages_hold_no_solution(name: str):
    """An exercise page shows the student copy: TODOs, and no line from a solution block.

    Its code cells are checked, as tests/test_exercises.py checks the copy's: the text around
    them may state what a requirement asks (``z = mu + std * epsilon``) and fold a hint.
    """
    soup = BeautifulSoup((HTML / name).read_text(encoding="utf-8"), "html.parser")
    code = "\n".join(cell.get_text() for cell in soup.select(".cell_input"))
    solution = nbformat.read(NOTEBOOKS / "solutions" / f"{Path(name).stem}.ipynb", as_version=4)
    leaked = [line for line in solution_lines(solution) if line in code]
    assert not leaked, f"{name} shows solution lines: {leaked}"
    assert "raise NotImplementedError" in code, f"{name} shows no TODO: not the student copy?"
