"""Expected printouts of the cells tagged ``nbval-check-output``, kept beside the tests.

Notebooks are committed without outputs, so nbval would have nothing to compare these cells
with. Their expected stdout lives in ``tests/expected_outputs/<notebook>.json`` (cell id ->
text); the root conftest hands it to nbval. After changing such a cell, record it again:
``.venv/bin/python tests/notebook_outputs.py notebooks/02_label_conditioning.ipynb``.
"""

from __future__ import annotations

import json
import os
import sys
from functools import lru_cache
from pathlib import Path

import nbformat

CHECKED = "nbval-check-output"  # nbval's cell tag: compare this cell's output
EXPECTED_DIR = Path(__file__).resolve().parent / "expected_outputs"


def is_checked(cell: nbformat.NotebookNode) -> bool:
    """True for a code cell whose output nbval compares."""
    return cell.cell_type == "code" and CHECKED in cell.metadata.get("tags", [])


def expected_path(notebook: Path) -> Path:
    """Where the expected printouts of ``notebook`` are stored."""
    return EXPECTED_DIR / f"{Path(notebook).stem}.json"


@lru_cache
def expected_outputs(notebook: Path) -> dict[str, str]:
    """Cell id -> expected stdout of every checked cell of ``notebook`` ({} if none)."""
    path = expected_path(notebook)
    return json.loads(path.read_text()) if path.is_file() else {}


def record(notebook: Path) -> Path:
    """Run ``notebook`` in fast mode and store the stdout of its checked cells."""
    from nbclient import NotebookClient

    os.environ.update(CVAE_FAST="1", CVAE_OFFLINE="1")
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, resources={"metadata": {"path": str(Path(notebook).parent)}}).execute()
    printed = {cell.id: "".join(o.text for o in cell.outputs
                                if o.output_type == "stream" and o.name == "stdout")
               for cell in nb.cells if is_checked(cell)}
    path = expected_path(notebook)
    path.write_text(json.dumps(printed, indent=1, ensure_ascii=False) + "\n")
    return path


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"recorded {record(Path(name))}")
