"""The course as a book: every lesson executed into a static site by Jupyter Book 1.x, offline.

``python -m cvae_lib.classroom.book`` (``make book``) copies notebooks 01-07 into
``book/lessons/`` (the student copies of the exercises; ``--solutions`` for an instructor's
build from ``notebooks/solutions/``) and runs ``jupyter-book build``, which executes them
through its cache (jupyter-cache: a rebuild re-runs only a changed notebook). ``--fast`` runs
the tests' tiny models. The same module is the Sphinx extension that ``book/_config.yml``
loads: it copies MathJax into the site and shows each widget as a picture of its first state,
so no page requests anything from another machine, and shows a failing TODO by its last line.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

from docutils import nodes
from myst_nb.core.render import WIDGET_VIEW_MIMETYPE
from myst_nb.sphinx_ import NbMetadataCollector
from sphinx.application import Sphinx
from sphinx.util.fileutil import copy_asset

from cvae_lib.classroom.exercises import graded_text
from cvae_lib.classroom.launch import HUB_URL_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
LESSONS = BOOK / "lessons"
NOTEBOOKS = ROOT / "notebooks"
EXERCISES = ("05", "06", "07")
WIDGET_SCRIPT = f'<script type="{WIDGET_VIEW_MIMETYPE}">'
CONTROLS = {"ToggleButtonsModel": "buttons", "FloatSliderModel": "slider",
            "IntSliderModel": "slider", "ButtonModel": "button"}
TEXT_MODELS = {"HTMLModel", "LabelModel"}


def lesson_sources(solutions: bool = False) -> list[Path]:
    """Notebooks 01-07 in order; the exercises from ``notebooks/solutions/`` if asked."""
    lessons = sorted(NOTEBOOKS.glob("0[1-7]_*.ipynb"))
    if solutions:
        lessons = [NOTEBOOKS / "solutions" / path.name if path.name[:2] in EXERCISES else path
                   for path in lessons]
    return lessons


def stage_lessons(solutions: bool = False, graded: bool = False, folder: Path = LESSONS) -> None:
    """Copy the lessons into ``folder`` (``graded``: without the folded solutions), leaving
    unchanged copies (and mtimes) alone."""
    folder.mkdir(exist_ok=True)
    for source in lesson_sources(solutions):
        text = graded_text(source) if graded else source.read_text(encoding="utf-8")
        target = folder / source.name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")


def output_root(fast: bool = False, solutions: bool = False) -> Path:
    """Where a build goes: ``book/`` for the default one, ``book/_build/<variant>`` otherwise.

    Each variant keeps its own execution cache beside its HTML, so fast and full outputs (and
    student and instructor pages) never stand in for each other.
    """
    variant = "-".join(name for name, on in (("instructor", solutions), ("fast", fast)) if on)
    return BOOK / "_build" / variant if variant else BOOK


def build_env(fast: bool) -> dict[str, str]:
    """The notebooks' environment: always offline; the tests' tiny models when ``fast``."""
    return dict(os.environ, CVAE_OFFLINE="1", CVAE_FAST="1" if fast else "0")


def html_dir(fast: bool = False, solutions: bool = False) -> Path:
    """The folder holding a build's ``index.html`` (jupyter-book writes ``_build/html``)."""
    return output_root(fast, solutions) / "_build" / "html"


def build(fast: bool = False, solutions: bool = False, hub_url: str = "") -> Path:
    """Stage and build the book; return the folder holding its ``index.html``.

    With ``hub_url``, every lesson page gets a button that opens it on that class hub
    (``cvae_lib.classroom.launch``), and the exercises are the graded copies the hub hands out.
    """
    stage_lessons(solutions, graded=bool(hub_url) and not solutions)
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    subprocess.run([str(jupyter_book), "build", str(BOOK),
                    "--path-output", str(output_root(fast, solutions))],
                   env={**build_env(fast), HUB_URL_VARIABLE: hub_url}, check=True)
    return html_dir(fast, solutions)


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """Copy MathJax from the jupyter-server-mathjax wheel into the site's ``_static/``."""
    if exception is None and app.builder.format == "html":
        source = files("jupyter_server_mathjax") / "static"
        copy_asset(str(source), str(Path(app.outdir) / "_static" / "mathjax"))


def _models(state: dict, model_id: str) -> Iterator[dict]:
    """A widget model and every model below it, depth first."""
    model = state[model_id]
    yield model
    for child in model["state"].get("children", []):
        yield from _models(state, child.removeprefix("IPY_MODEL_"))


def _control(model: dict) -> str:
    """One control of a widget as inactive HTML, in the state the notebook left it."""
    state, kind = model["state"], model["model_name"]
    label = html.escape(state.get("description", ""))
    if kind in ("FloatSliderModel", "IntSliderModel"):
        value = format(state["value"], state.get("readout_format", ".2f"))
        return (f'<label class="cvae-control">{label} <input type="range" disabled '
                f'min="{state["min"]}" max="{state["max"]}" step="{state["step"]}" '
                f'value="{state["value"]}"> <output>{value}</output></label>')
    if kind == "ToggleButtonsModel":
        pressed = ["false"] * len(state["_options_labels"])
        pressed[state["index"]] = "true"
        buttons = "".join(f'<button type="button" disabled aria-pressed="{on}">'
                          f'{html.escape(option)}</button>'
                          for option, on in zip(state["_options_labels"], pressed))
        return (f'<div class="cvae-control" role="group" aria-label="{label}">{label} '
                f'{buttons}</div>')
    if kind == "ButtonModel":
        return f'<button type="button" class="cvae-control" disabled>{label}</button>'
    return f'<div class="cvae-control">{state["value"]}</div>'  # a text model: our own HTML


def _cell_alt(node: nodes.Node) -> str | None:
    """The alt text the output's notebook cell gives its images (``mystnb: image: alt``)."""
    while node is not None and "cell_metadata" not in getattr(node, "attributes", {}):
        node = node.parent
    return None if node is None else node["cell_metadata"].get("mystnb", {}).get(
        "image", {}).get("alt")


def _widget_figure(document: nodes.document, models: list[dict], alt: str | None
                   ) -> nodes.Element:
    """A widget's first state as a student sees it: its controls, inactive, and its pictures."""
    figure = nodes.figure(classes=["cvae-widget"])
    document.set_id(figure)  # a figure with a caption needs an id
    controls = "".join(_control(m) for m in models
                       if m["model_name"] in CONTROLS or m["model_name"] in TEXT_MODELS)
    figure += nodes.raw("", f'<div class="cvae-controls">{controls}</div>', format="html")
    for model in models:
        for buffer in model.get("buffers", []) if model["model_name"] == "ImageModel" else []:
            figure += nodes.image(uri=f"data:image/png;base64,{buffer['data']}",
                                  alt=alt or "the widget's picture in its first state")
    figure += nodes.caption(text="A live widget, shown as the notebook left it: its controls "
                            "work when you run the notebook in JupyterLab.")
    return figure


def _widget_text(models: list[dict]) -> nodes.Element:
    """A widget without a picture (a progress bar) as the text it showed when the cell ended."""
    text = " ".join(html.unescape(m["state"]["value"]) for m in models
                    if m["model_name"] in TEXT_MODELS)
    return nodes.literal_block(text, text, classes=["output", "cvae-widget"])


def _widget_output(document: nodes.document, state: dict, model_id: str,
                   alt: str | None) -> nodes.Element:
    """What the page shows for one widget view: a figure if it draws, else its text."""
    models = list(_models(state, model_id))
    if any(model["model_name"] == "ImageModel" for model in models):
        return _widget_figure(document, models, alt)
    return _widget_text(models)


def widget_pictures(app: Sphinx, doctree: nodes.document) -> None:
    """Replace each widget output by a picture of its first state; load no widget JavaScript."""
    js_files = NbMetadataCollector.get_doc_data(app.env)[app.env.docname].get("js_files", {})
    saved = js_files.pop("ipywidgets_state", None)
    if saved is None:
        return
    state = json.loads(saved[1]["body"])["state"]
    for node in list(doctree.findall(nodes.raw)):
        if node.astext().startswith(WIDGET_SCRIPT):
            view = json.loads(node.astext()[len(WIDGET_SCRIPT):-len("</script>")])
            node.replace_self(_widget_output(doctree, state, view["model_id"], _cell_alt(node)))


def short_tracebacks(_app: Sphinx, doctree: nodes.document) -> None:
    """Show an exercise's failing TODO cell by its last line, ``NotImplementedError: TODO: ...``.

    The frames above it run through the checks' code, which is not what the page teaches.
    """
    for block in doctree.findall(nodes.literal_block):
        if "traceback" in block["classes"]:
            block.rawsource = block.astext().rstrip().splitlines()[-1]
            block[:] = [nodes.Text(block.rawsource)]


def setup(app: Sphinx) -> dict[str, bool]:
    """The Sphinx extension: local MathJax, widgets as pictures, one-line TODO errors."""
    app.setup_extension("cvae_lib.classroom.book_access")  # pages every reader can use
    app.connect("doctree-read", widget_pictures, priority=400)  # before images are collected
    app.connect("doctree-read", short_tracebacks)
    app.connect("build-finished", copy_mathjax)
    app.setup_extension("cvae_lib.classroom.launch")  # a class hub's launch buttons
    return {"parallel_read_safe": False, "parallel_write_safe": True, "env_version": 1}


def main(argv: list[str] | None = None) -> int:
    """Command line: build the book and print where it is."""
    parser = argparse.ArgumentParser(prog="python -m cvae_lib.classroom.book",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true",
                        help="run the notebooks' fast mode (tiny models, as the tests do)")
    parser.add_argument("--solutions", action="store_true",
                        help="instructor's build: exercises 05-07 with their solutions")
    parser.add_argument("--hub-url", default="", metavar="URL",
                        help="the class hub (e.g. https://hub.example.edu): every lesson page "
                             "gets a button that opens it there (CVAE_HUB_RELEASE names the "
                             "release the hub serves), and the exercises are graded copies")
    args = parser.parse_args(argv)
    html = build(fast=args.fast, solutions=args.solutions, hub_url=args.hub_url)
    print(f"The book is in {html}: open {html / 'index.html'}, or preview it with\n"
          f"  python -m http.server --bind 127.0.0.1 --directory {html} 8000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
