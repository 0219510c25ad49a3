"""Give notebooks 01-04 slide metadata by one rule, so each opens as a live slide deck.

Introduced for the instructor's slideshow (``make slides``: JupyterLab with jupyterlab-slideshow,
which reads the same ``metadata.slideshow.slide_type`` as RISE and nbconvert). The rule reads
only each cell's type and source, never the metadata it wrote before, so it is deterministic
and idempotent: rerun it after editing a notebook. Per cell, in order:

- a markdown cell with a ``#`` or ``##`` heading starts a slide; one with ``###`` a subslide;
- a markdown cell holding an answer (``<details>``) without a heading is a fragment;
- the setup cell (it calls ``setup_notebook(``) is a subslide under the title, run in place;
- a cell calling ``*_widget(`` gets a slide of its own, which begins at the paragraph that
  introduces it when one comes right before it;
- any other paragraph that follows code opens a subslide (a new step of the section);
- every other cell stays on the current slide ("-"): code with the text that introduces it.

"-" is written as no ``slideshow`` metadata at all: RISE and nbconvert read both the same way,
but jupyterlab-slideshow 0.3.4 hides a cell whose slide_type is the string "-".

Run ``python -m cvae_lib slides`` to write it, ``--check`` to verify it is present and current.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
DECKS = ("01_*.ipynb", "02_*.ipynb", "03_*.ipynb", "04_*.ipynb")
SLIDE_TYPES = ("slide", "subslide", "fragment", "skip", "notes", "-")
WIDGET_CALL = re.compile(r"\b\w+_widget\(")


def _heading_level(source: str) -> int | None:
    """The level of the highest heading in markdown ``source`` (fenced code ignored)."""
    levels, fenced = [], False
    for line in source.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        match = None if fenced else re.match(r"(#{1,6})\s", line)
        if match:
            levels.append(len(match.group(1)))
    return min(levels, default=None)


def _is_widget(cell: dict) -> bool:
    """Whether ``cell`` is code that shows a widget (calls a ``*_widget(`` function)."""
    return cell["cell_type"] == "code" and bool(WIDGET_CALL.search(cell["source"]))


def _own_type(cell: dict) -> str:
    """The slide type a cell asks for on its own, before looking at its neighbours."""
    if cell["cell_type"] == "markdown":
        level = _heading_level(cell["source"])
        if level is not None:
            return "slide" if level <= 2 else "subslide"
        return "fragment" if "<details>" in cell["source"] else "-"
    if "setup_notebook(" in cell["source"]:
        return "subslide"
    return "slide" if _is_widget(cell) else "-"


def _check_cells(cells: object) -> list[dict]:
    """Return ``cells`` if it is a notebook's list of cells, else say what is expected."""
    if not isinstance(cells, list) or not all(isinstance(c, dict) and "cell_type" in c
                                              for c in cells):
        raise TypeError("cells must be a notebook's cells, e.g. nbformat.read(path, 4).cells, "
                        f"not {type(cells).__name__}")
    return cells


def slide_types(cells: list[dict]) -> list[str]:
    """The slide type of every cell of a notebook, by the rule in this module's docstring."""
    types = [_own_type(cell) for cell in _check_cells(cells)]
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "markdown" or types[i] != "-":
            continue
        if i + 1 < len(cells) and _is_widget(cells[i + 1]):
            types[i], types[i + 1] = "slide", "-"
        elif i > 0 and cells[i - 1]["cell_type"] == "code":
            types[i] = "subslide"
    return types


def _slide_metadata(slide_type: str) -> dict | None:
    """The ``metadata.slideshow`` a cell of ``slide_type`` carries (None: stays on the slide)."""
    return None if slide_type == "-" else {"slide_type": slide_type}


def is_current(notebook: nbformat.NotebookNode) -> bool:
    """Whether every cell of ``notebook`` carries exactly the slide metadata of the rule."""
    expected = [_slide_metadata(t) for t in slide_types(notebook["cells"])]
    return [cell.metadata.get("slideshow") for cell in notebook["cells"]] == expected


def apply_slides(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Write the rule's slide type into each cell's ``metadata.slideshow``; return the notebook."""
    for cell, slide_type in zip(notebook["cells"], slide_types(notebook["cells"])):
        metadata = _slide_metadata(slide_type)
        if metadata:
            cell.metadata["slideshow"] = metadata
        else:
            cell.metadata.pop("slideshow", None)
    return notebook


def decks(folder: Path = NOTEBOOKS) -> list[Path]:
    """The notebooks that are presented as slides: 01-04 in ``folder``."""
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"no notebooks folder at {folder}")
    return sorted(path for pattern in DECKS for path in Path(folder).glob(pattern))


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, verify) the slide metadata of notebooks 01-04; return exit code."""
    parser = argparse.ArgumentParser(prog="python -m cvae_lib slides",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only verify it is current")
    args = parser.parse_args(argv)
    stale = []
    for path in decks():
        notebook = nbformat.read(path, as_version=4)
        if is_current(notebook):
            continue
        if args.check:
            stale.append(path.name)
        else:
            path.write_text(nbformat.writes(apply_slides(notebook)) + "\n")
            print(f"wrote slide metadata into {path.relative_to(NOTEBOOKS.parent)}")
    if stale:
        print(f"stale slide metadata: {', '.join(stale)}; run python -m cvae_lib slides")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
