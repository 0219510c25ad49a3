"""The core route: every reflection question and pitfall the README places on it is there.

The README's table "where, on the core route" names, for each question and pitfall of the
module, a notebook and a section or "Check yourself" question; each must sit before that
notebook's first "Going further" marker (``benchmarks/bench_route.py`` draws the same line).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from benchmarks.bench_route import ROUTE, core_cells, route_minutes

ROOT = Path(__file__).resolve().parents[1]
TABLE_HEADER = "| question or pitfall | where, on the core route |"


def where_rows() -> list[tuple[str, str]]:
    """(question, where) of every row of the README's where-answered table."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(TABLE_HEADER) + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        question, where = (part.strip() for part in line.strip("|").split("|"))
        rows.append((question, where))
    return rows


def core_text(number: str) -> str:
    """The core text of notebook ``number`` (e.g. "04"), all cells joined."""
    path = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
    return "\n".join(src for _, _, src in core_cells(nbformat.read(path, as_version=4)))


def places(where: str) -> list[tuple[str, str]]:
    """(notebook, place) pairs of a "where" entry such as "`04` §3 and Check yourself 1"."""
    found = []
    for number, rest in re.findall(r"`(0\d)` ([^;]+)", where):
        found += [(number, f"§{n}") for n in re.findall(r"§(\d)", rest)]
        found += [(number, f"Check yourself{n}")
                  for n in re.findall(r"Check yourself( \d)?", rest)]
    return found


def is_in_core(text: str, place: str) -> bool:
    """True if the core text holds the section or the (numbered) Check yourself question."""
    if place.startswith("§"):
        return re.search(rf"^## {place[1:]} ·", text, re.MULTILINE) is not None
    number = place.removeprefix("Check yourself").strip()
    if "Check yourself" not in text:
        return False
    return not number or re.search(rf"^\*\*{number}\. ", text, re.MULTILINE) is not None


def test_the_table_names_the_four_questions_and_four_pitfalls():
    rows = where_rows()
    assert len(rows) == 8 and sum(q.startswith("Pitfall") for q, _ in rows) == 4, rows
    assert all(places(where) for _, where in rows), rows


@pytest.mark.parametrize("question, where", where_rows())
def test_each_answer_is_on_the_core_route(question, where):
    missing = [f"`{n}` {p}" for n, p in places(where) if not is_in_core(core_text(n), p)]
    assert not missing, f"{question!r}: not before the first 'Going further' marker: {missing}"


def test_the_places_are_read_and_a_late_answer_is_caught():
    assert places("`04` §3 (measured) and Check yourself 1; `05` §2") == [
        ("04", "§3"), ("04", "Check yourself 1"), ("05", "§2")]
    cells = [nbformat.v4.new_markdown_cell("## 1 · Core\n### Check yourself\n**1. Why?**"),
             nbformat.v4.new_markdown_cell("**Going further** — optional.\n## 2 · More")]
    text = "\n".join(src for _, _, src in core_cells(nbformat.v4.new_notebook(cells=cells)))
    assert is_in_core(text, "§1") and is_in_core(text, "Check yourself 1")
    assert not is_in_core(text, "§2") and not is_in_core(text, "Check yourself 2")


def test_the_route_counts_reading_and_exercises():
    minutes = {name: route_minutes(name, None) for name in ROUTE}
    assert all(m["words"] > 100 for m in minutes.values())
    assert minutes["06_recode_from_scratch"]["exercise"] > 0
    assert minutes["01_vae_fundamentals"]["exercise"] == 0
