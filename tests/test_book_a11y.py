"""The built book for every reader (WCAG 2.1 AA): axe-core, alt text, widths, folds, print.

Like tests/test_book.py these read a build (the full one if there is one, else the fast one)
and skip without one. axe-core comes from the axe-playwright-python wheel (its axe.min.js is
injected into each page): nothing is fetched at test time.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterator
from importlib.resources import files

import pytest
from bs4 import BeautifulSoup

from tests.browser import chromium_page, free_port, require_browser, running_server
from tests.test_book import BUILT, HTML, LESSONS, PAGES, _typeset

pytestmark = pytest.mark.skipif(not BUILT, reason="no book built: `make book` (or "
                                "`make book-fast`) first; a build takes minutes")

SERIOUS = ("critical", "serious")
# A fold's name must say more than these: tabbing through "Answer, Answer, Answer" tells nothing.
BARE_SUMMARY = re.compile(r"^\s*(answer|hint|solution|show( the)? answer)?\s*[:.–-]?\s*$", re.I)
PATH_LIKE = re.compile(r"(^|/)[\w.-]+\.(png|jpe?g|gif|svg|webp)$|_images/|^data:", re.I)
# Widths checked: a laptop, a phone, and paper (A4's text width at 96 px per inch).
WIDTHS = {"1280px": (1280, "screen"), "390px": (390, "screen"), "print": (700, "print")}

# Every element of the text column: its right edge past the column, or content it hides by
# scrolling. A labelled scroll region (book.js marks a wide printout or table) may scroll on
# screen; on paper nothing may.
OVERFLOWS_JS = """(paper) => {
  const column = document.querySelector("article.bd-article");
  const edge = column.getBoundingClientRect().right + 1;
  const name = el => el.tagName.toLowerCase() + (el.className ? "." + el.className : "")
    + ": " + (el.textContent || el.getAttribute("alt") || "").trim().slice(0, 50);
  const bad = [], seen = new Set();
  for (const el of column.querySelectorAll("*")) {
    if (seen.has(el.parentElement)) { seen.add(el); continue; }  // report the outermost only
    const scroller = el.closest(".cvae-scrolls[role=region][aria-label][tabindex]");
    if (!paper && scroller && scroller !== el) continue;
    // MathJax's copy for screen readers is clipped to 1 px on purpose.
    if (el.closest(".MJX_Assistive_MathML")) continue;
    const box = el.getBoundingClientRect();
    if (!box.width || getComputedStyle(el).visibility === "hidden") continue;
    // A typeset formula clips its glyphs' overhang by a few pixels: only its edge counts.
    const hides = el.scrollWidth > el.clientWidth + 1 && !el.closest(".math, .MathJax")
      && getComputedStyle(el).overflowX !== "visible";
    if (box.right > edge || (hides && (paper || !scroller))) seen.add(el);
    if (box.right > edge) bad.push(`${name(el)} (right edge ${Math.round(box.right)} px`
                                   + ` > column ${Math.round(edge)} px)`);
    else if (hides && (paper || !scroller)) bad.push(`${name(el)} (cut off, scrolls)`);
  }
  return bad;
}"""


def _soup(name: str) -> BeautifulSoup:
    """The parsed HTML of page ``name``."""
    return BeautifulSoup((HTML / name).read_text(encoding="utf-8"), "html.parser")


@pytest.fixture(scope="module")
def book_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The built book served on 127.0.0.1 for this module's tests."""
    require_browser()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
               "--directory", str(HTML)]
    with running_server(command, tmp_path_factory.mktemp("book"), f"{base}/index.html"):
        yield base


def _axe(page) -> list[dict]:  # noqa: ANN001 - a playwright Page
    """axe-core's violations on the open page (WCAG 2.0/2.1 A and AA, and best practices)."""
    axe = pytest.importorskip("axe_playwright_python", reason="axe-core ships in the "
                              "axe-playwright-python wheel: `pip install -e '.[dev]'`")
    page.add_script_tag(path=str(files(axe) / "axe.min.js"))
    # label-content-name-mismatch is "experimental" in axe, off unless asked for: it catches a
    # button whose visible text its spoken name lacks (WCAG 2.5.3), as the theme's had.
    return page.evaluate("() => axe.run(document, {resultTypes: ['violations'], rules: "
                         "{'label-content-name-mismatch': {enabled: true}}})"
                         ".then(result => result.violations.map(v => ({id: v.id, "
                         "impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))})))")


def test_axe_finds_nothing_critical_or_serious(book_url: str):
    """axe-core on every page: 0 critical, 0 serious; no script error, no icon-font script."""
    failures, errors, icon_font = [], [], []
    with chromium_page(1280, 900) as page:
        page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
        page.on("request", lambda request: icon_font.append(request.url)
                if "fontawesome.js" in request.url else None)
        for name in PAGES:
            page.goto(f"{book_url}/{name}", wait_until="networkidle")
            violations = _axe(page)
            counts = Counter(v["impact"] for v in violations)
            print(f"axe {name}: " + ", ".join(f"{counts[impact]} {impact}" for impact in
                                              ("critical", "serious", "moderate", "minor")))
            failures += [f"{name}: {v['impact']} {v['id']} at {v['nodes'][:3]}"
                         for v in violations if v["impact"] in SERIOUS]
    assert not failures, "\n".join(failures)
    assert not errors, f"script errors: {errors}"
    assert not icon_font, f"1.49 MB of icon-font script loaded: {icon_font[:2]}"


@pytest.mark.parametrize("mode", WIDTHS)
def test_nothing_is_wider_than_the_column(book_url: str, mode: str):
    """At 1280 and 390 px and on paper no code, printout, table or figure is cut off."""
    width, media = WIDTHS[mode]
    bad = []
    with chromium_page(width, 900) as page:
        page.emulate_media(media=media)
        for name in PAGES:
            page.goto(f"{book_url}/{name}", wait_until="networkidle")
            _typeset(page)  # a formula's width is known once MathJax has typeset it
            page.evaluate("() => window.dispatchEvent(new Event('resize'))")
            bad += [f"{name}: {item}" for item in page.evaluate(OVERFLOWS_JS, media == "print")]
    assert not bad, f"{len(bad)} elements too wide at {mode}:\n" + "\n".join(bad[:40])


def test_folds_print_open(book_url: str):
    """On paper every fold shows what it holds, so a printed lesson keeps its answers."""
    closed = []
    with chromium_page(700, 900) as page:
        page.emulate_media(media="print")
        for name in LESSONS:
            page.goto(f"{book_url}/{name}", wait_until="networkidle")
            closed += [f"{name}: {text}" for text in page.eval_on_selector_all(
                "details > :not(summary)", "els => els.filter(el => !el.offsetHeight)"
                ".map(el => el.parentElement.querySelector('summary').textContent.trim())")]
    assert not closed, f"folds that print closed: {closed}"


@pytest.mark.parametrize("name", LESSONS)
def test_figures_say_what_they_show(name: str):
    """Every image of a lesson has alt text: not a file name, not shared by two figures."""
    images = _soup(name).select("article.bd-article img")
    missing = [img.get("src", "")[:60] for img in images
               if not img.get("alt", "").strip() or PATH_LIKE.search(img["alt"].strip())]
    assert not missing, f"{name}: images without alt text (or a path for one): {missing}"
    sources_by_alt: dict[str, set[str]] = {}
    for img in images:
        sources_by_alt.setdefault(img["alt"].strip(), set()).add(img.get("src", ""))
    shared = [alt for alt, sources in sources_by_alt.items() if len(sources) > 1]
    assert not shared, f"{name}: one alt text on different figures: {shared}"


@pytest.mark.parametrize("name", LESSONS)
def test_every_fold_names_its_question(name: str):
    """Each ``<summary>`` says what it opens ("Answer: why does the KL level off?")."""
    summaries = [summary.get_text(" ", strip=True) for summary in _soup(name).select("summary")]
    bare = [text for text in summaries
            if BARE_SUMMARY.match(re.sub(r"^(answer|hint|solution)\b", "", text, flags=re.I))]
    assert not bare, f"{name}: folds that do not name their question: {bare}"


def test_references_are_linked_from_the_lessons():
    """A lesson's reference list links each entry to its place on the references page."""
    ids = {tag["id"] for tag in _soup("references.html").select("[id^=cite-]")}
    links = [a["href"] for name in LESSONS for a in _soup(name).select("a[href*='#cite-']")]
    assert links, "no lesson links to the references page"
    dangling = [href for href in links if href.split("#")[1] not in ids]
    assert not dangling, f"links to no entry: {dangling}"
