"""Spotting a picture shown twice in one cell: the mark of a Figure returned without ``;``.

The inline backend draws the open figure, and Jupyter also displays the returned value, so the
student sees the plot twice. The root conftest runs this check on every cell nbval executes.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter

import nbformat


def image_fingerprints(output: nbformat.NotebookNode) -> list[str]:
    """SHA-256 of every PNG an output carries (the base64 text, whitespace removed)."""
    png = output.get("data", {}).get("image/png")
    if png is None:
        return []
    text = "".join(png) if isinstance(png, list) else png
    data = base64.b64decode("".join(text.split()))
    return [hashlib.sha256(data).hexdigest()]


def repeated_images(notebook: nbformat.NotebookNode) -> list[str]:
    """One line per code cell that shows an identical image more than once."""
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        counts = Counter(fingerprint for output in cell.get("outputs", [])
                         for fingerprint in image_fingerprints(output))
        repeats = {fingerprint: n for fingerprint, n in counts.items() if n > 1}
        if repeats:
            last_line = cell.source.strip().splitlines()[-1] if cell.source.strip() else ""
            problems.append(f"cell {index} (id {cell.get('id')}) shows the same image "
                            f"{max(repeats.values())} times; its last line is {last_line!r} "
                            f"(end a line that returns a Figure with ';')")
    return problems
