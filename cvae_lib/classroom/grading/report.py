"""The class report: a text table per exercise, class totals, a CSV and a self-contained page.

One row per submission; the graded ones have one column per check of their exercise, the
others say why they were not graded. Cells hold only what grading decided (``run.py``); file
names, which students choose, are shown on one line without control characters.
"""

from __future__ import annotations

import csv
import html
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cvae_lib.classroom.grading.notebooks import Exercise
from cvae_lib.classroom.grading.run import CHANGED, OK, TIMED_OUT, TODO

GRADED = "graded"
NAME_CHARS = 100


def printable(text: str) -> str:
    """``text`` on one line, at most 100 chars: control and format characters, line and
    paragraph separators and any space but one plain space shown as '?', so no name can
    start a line or fake the table's column gaps."""
    clean = "".join("?" if unicodedata.category(ch)[0] in "CZ" and ch != " " else ch
                    for ch in text)
    clean = re.sub("  +", lambda gap: " " + "?" * (len(gap.group()) - 1), clean)
    return clean if len(clean) <= NAME_CHARS else clean[:NAME_CHARS - 1] + "…"


def spreadsheet_safe(text: str) -> str:
    """``text`` as a spreadsheet cell that never runs as a formula (OWASP's CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@dataclass
class Row:
    """One submission's line of the report."""

    name: str
    exercise: str = ""
    status: str = GRADED
    cells: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def totals(rows: list[Row], exercise: Exercise) -> dict[str, Counter]:
    """For each check, how many graded submissions got each outcome."""
    graded = [r for r in rows if r.status == GRADED and r.exercise == exercise.number]
    return {check: Counter(r.cells[check] for r in graded) for check in exercise.checks}


def totals_lines(rows: list[Row], exercise: Exercise) -> list[str]:
    """'check: outcome n of N, ...' for each check, OK first, then the most frequent."""
    lines = []
    for check, counts in totals(rows, exercise).items():
        size = sum(counts.values())
        order = sorted(counts, key=lambda v: (v != OK, -counts[v], v))
        lines.append(f"{check}: " + ", ".join(f"{v}: {counts[v]} of {size}" for v in order))
    return lines


def _timing(rows: list[Row]) -> str:
    """Seconds per graded submission: mean, max and total."""
    seconds = [r.seconds for r in rows if r.status == GRADED]
    if not seconds:
        return "No submission was run."
    return (f"Seconds per submission: mean {sum(seconds) / len(seconds):.1f}, max "
            f"{max(seconds):.1f}, total {sum(seconds):.1f} ({len(seconds)} run).")


def _text_table(header: list[str], body: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
            for row in [header, *body]]


def _exercise_table(rows: list[Row], exercise: Exercise) -> tuple[list[str], list[list[str]]]:
    """Header and body of one exercise's table."""
    header = ["submission", "seconds", *exercise.checks]
    body = [[r.name, f"{r.seconds:.1f}", *(r.cells[c] for c in exercise.checks)]
            for r in rows if r.status == GRADED and r.exercise == exercise.number]
    return header, body


def _graded_exercises(rows: list[Row], exercises: list[Exercise]) -> list[Exercise]:
    """The exercises that have at least one graded submission."""
    return [ex for ex in exercises
            if any(r.status == GRADED and r.exercise == ex.number for r in rows)]


def text_report(rows: list[Row], exercises: list[Exercise], notes: list[str]) -> str:
    """The report as printed: notes, one table and its totals per exercise, the rest."""
    lines = [*notes, ""]
    for exercise in _graded_exercises(rows, exercises):
        lines += [f"Exercise {exercise.title}", *_text_table(*_exercise_table(rows, exercise)),
                  "", "Class totals:", *(f"  {t}" for t in totals_lines(rows, exercise)), ""]
    others = [r for r in rows if r.status != GRADED]
    if others:
        lines += ["Not graded:", *_text_table(["file", "why"],
                                              [[r.name, r.status] for r in others]), ""]
    lines.append(_timing(rows))
    return "\n".join(lines) + "\n"


def write_csv(path: Path, rows: list[Row], exercises: list[Exercise]) -> None:
    """One row per file; a column per check of each graded exercise (blank if not its own)."""
    checks = list(dict.fromkeys(c for ex in _graded_exercises(rows, exercises)
                                for c in ex.checks))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "exercise", "status", "seconds", *checks])
        for r in rows:
            writer.writerow([spreadsheet_safe(r.name), r.exercise, r.status, f"{r.seconds:.1f}",
                             *(r.cells.get(c, "") for c in checks)])


CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:left}th{background:#f2f2f2}.ok{background:#dff5df}.todo{background:#eee}
.mistake{background:#fde9c8}.crash{background:#f8d0d0}.note{font-weight:bold}"""


def _css_class(value: str) -> str:
    """Colour of a table cell by the kind of outcome."""
    if value == OK:
        return "ok"
    if value == TODO:
        return "todo"
    if value.startswith("crashed") or value in (TIMED_OUT, CHANGED):
        return "crash"
    return "mistake"


def _td(value: str, coloured: bool) -> str:
    """One escaped table cell, coloured by outcome when asked."""
    css = f' class="{_css_class(value)}"' if coloured else ""
    return f"<td{css}>{html.escape(value)}</td>"


def _html_table(header: list[str], body: list[list[str]], colour_from: int) -> str:
    """An HTML table; cells from column ``colour_from`` on are coloured by outcome."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(_td(v, i >= colour_from) for i, v in enumerate(row))
                   + "</tr>" for row in body)
    return f"<table><tr>{head}</tr>{rows}</table>"


def html_report(rows: list[Row], exercises: list[Exercise], notes: list[str]) -> str:
    """A self-contained page: the same tables and totals as the printed report."""
    parts = [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    for exercise in _graded_exercises(rows, exercises):
        header, body = _exercise_table(rows, exercise)
        parts += [f"<h2>Exercise {html.escape(exercise.title)}</h2>",
                  _html_table(header, body, 2), "<h3>Class totals</h3><ul>",
                  *(f"<li>{html.escape(t)}</li>" for t in totals_lines(rows, exercise)),
                  "</ul>"]
    others = [[r.name, r.status] for r in rows if r.status != GRADED]
    if others:
        parts += ["<h2>Not graded</h2>", _html_table(["file", "why"], others, 2)]
    parts.append(f"<p>{html.escape(_timing(rows))}</p>")
    return ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>Class grades</title>'
            f"<style>{CSS}</style></head><body><h1>Class grades</h1>{''.join(parts)}"
            "</body></html>\n")
