"""The book's pages for every reader (WCAG 2.1 AA): the Sphinx side of ``book/_static/book.*``.

Loaded by :mod:`cvae_lib.classroom.book`. It links each figure that the page scales down to
its full-size copy, numbers the figures of one cell that share its alt text, turns a lesson's
"**Important**" or "**Did you know?**" quote into an admonition, links each entry of a lesson's
reference list to the book's references page, loads each script once, mends three
accessibility faults of the theme's own HTML and draws its icons with a small stylesheet.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from urllib.parse import quote

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.images import get_image_size
from sphinx.util.osutil import relative_uri

# The text column of sphinx-book-theme at 1280 px: a wider figure is shown scaled down.
COLUMN_PX = 688
ADMONITIONS = {"important": nodes.important, "did you know?": nodes.admonition}
# (pattern, replacement, why) applied to every written page.
THEME_FIXES = [
    # The search field's visible text is "Search Ctrl+K" but its aria-label only "Search":
    # speech users say what they see (axe label-content-name-mismatch). Named by its text.
    (r'(<button class="btn search-button-field[^"]*"[^>]*?) aria-label="[^"]*"', r"\1"),
    # The colour-mode icons' titles ("Light", ...) become visible text that the button's
    # name "Color mode" does not contain (the same axe rule). The button's name says it all.
    (r'(<i class="theme-switch [^"]*"[^>]*?) title="[^"]*"', r"\1"),
    # docutils marks bibliography entries doc-biblioentry inside role="list"; a list may hold
    # only listitems (axe aria-required-children, critical), and the DPUB role is deprecated.
    (r'role="doc-biblioentry"', 'role="listitem"'),
    # The icons come from icons.css (fix_theme_html writes it), not from the icon-font script.
    (r'<script defer src="([./]*)_static/scripts/fontawesome\.js[^"]*"></script>',
     r'<link rel="stylesheet" href="\1_static/icons.css" />'),
]
# One icon of Font Awesome's bundle: name:[width,height,[aliases],"unicode","SVG path"].
ICON = re.compile(r'[{,]"?([a-z0-9-]+)"?:\[(\d+),(\d+),\[[^\]]*\],"[0-9a-f]+","([^"]+)"\]')
ICON_BASE = """.fa-solid, .fas, .fa-regular, .far, .fa-brands, .fab {
  display: inline-block; width: 1.25em; height: 1em; vertical-align: -0.125em;
  background-color: currentColor;
  -webkit-mask: var(--cvae-icon) center / contain no-repeat;
  mask: var(--cvae-icon) center / contain no-repeat;
}
.fa-lg { font-size: 1.25em; line-height: 0.05em; vertical-align: -0.075em; }"""


def _image_target(app: Sphinx, docname: str, uri: str) -> str | None:
    """Where the page's ``_images/`` copy of ``uri`` is; None if Sphinx copies no such file."""
    if uri not in app.env.images:
        return None
    images = relative_uri(app.builder.get_target_uri(docname), "_images")
    return posixpath.join(images, app.env.images[uri][1])


def link_full_size(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Wrap each image wider than the text column in a link to its full-size copy."""
    for image in list(doctree.findall(nodes.image)):
        target = _image_target(app, docname, image["uri"])
        size = get_image_size(str(Path(app.srcdir) / image["uri"])) if target else None
        if size and size[0] > COLUMN_PX and not isinstance(image.parent, nodes.reference):
            link = nodes.reference("", "", refuri=target, classes=["cvae-full-size"])
            image.replace_self(link)
            link += image


def _lead(paragraph: nodes.Element) -> nodes.Node | None:
    """The first child of ``paragraph`` that holds text (myst may open with an empty one)."""
    return next((node for node in paragraph.children if node.astext().strip()), None)


def number_shared_alts(_app: Sphinx, doctree: nodes.document) -> None:
    """Number the figures of one cell that share its alt text ("... (figure 2 of 2)").

    myst-nb gives every image of a cell the cell's one alt text; a screen reader should still
    tell two figures apart.
    """
    for cell in doctree.findall(lambda node: "cell_metadata" in getattr(node, "attributes", {})):
        images = [image for image in cell.findall(nodes.image) if image.get("alt")]
        for alt in {image["alt"] for image in images}:
            shared = [image for image in images if image["alt"] == alt]
            for i, image in enumerate(shared if len(shared) > 1 else [], start=1):
                image["alt"] = f"{alt} (figure {i} of {len(shared)})"


def quote_admonitions(_app: Sphinx, doctree: nodes.document) -> None:
    """A quote that opens with **Important** or **Did you know?** becomes that admonition.

    The notebooks keep a plain quote, which JupyterLab shows well; the book boxes it.
    """
    for block in list(doctree.findall(nodes.block_quote)):
        first = block.children[0] if block.children else None
        lead = _lead(first) if isinstance(first, nodes.paragraph) else None
        name = lead.astext().strip().rstrip(".:").lower() if isinstance(lead, nodes.strong) else ""
        if name not in ADMONITIONS:
            continue
        first.remove(lead)
        box = ADMONITIONS[name]("", *block.children)
        if name != "important":  # a generic admonition needs its title
            box.insert(0, nodes.title(text=lead.astext().strip().rstrip(".:")))
            box["classes"].append("tip")
        block.replace_self(box)


def _normal(text: str) -> str:
    """Lower case letters and digits only, to compare a title however it is typed."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _bib_titles(app: Sphinx) -> dict[str, str]:
    """Each bibliography entry's normalised title, by key."""
    entries = app.env.get_domain("cite").bibdata.data.entries
    return {key: _normal(entry.fields.get("title", "")) for key, entry in entries.items()}


def link_references(app: Sphinx, doctree: nodes.document) -> None:
    """Link the author-year opening of each lesson reference to its entry on the references page.

    ``bibtex_cite_id`` in ``_config.yml`` gives every entry the id ``cite-<key>``.
    """
    if not app.env.docname.startswith("lessons/"):
        return
    titles = _bib_titles(app)
    page = relative_uri(app.builder.get_target_uri(app.env.docname),
                        app.builder.get_target_uri("references"))
    for item in doctree.findall(nodes.list_item):
        text = _normal(item.astext())
        key = next((key for key, title in titles.items() if title and title in text), None)
        lead = _lead(item.children[0]) if item.children else None
        year = re.search(r"\(\d{4}\)", lead.astext()) if lead is not None else None
        if key is None or year is None or isinstance(lead, nodes.reference):
            continue
        opening, rest = lead.astext()[:year.end()], lead.astext()[year.end():]
        link = nodes.reference("", opening, refuri=f"{page}#cite-{key}")
        lead.parent.replace(lead, [link, *([nodes.Text(rest)] if rest else [])])


def unique_scripts(_app: Sphinx, _page: str, _template: str, context: dict, _doc: object) -> None:
    """Load each script once.

    Sphinx 7.4 keeps a script that an extension adds after the builder starts (sphinx-thebe's
    and sphinx-togglebutton's inline settings) twice: once named None, once named "" (its
    prepare_writing re-adds the registry's copy). The second ``const THEBE_JS_URL`` then fails.
    """
    seen, scripts = set(), []
    for script in context["script_files"]:
        key = (script.filename or "", script.priority, tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            scripts.append(script)
    context["script_files"] = scripts


def solid_icons(bundle: str) -> dict[str, tuple[str, str, str]]:
    """Font Awesome's solid icons in the theme's bundle: name -> (width, height, SVG path).

    The bundle defines the brands, regular and solid packs in that order, then registers the
    solid one ("fas"): the last definition of a name before that is its solid icon.
    """
    solid_end = bundle.index('("fas",')
    return {match[1]: (match[2], match[3], match[4]) for match in ICON.finditer(bundle)
            if match.start() < solid_end}


def icon_css(icons: dict[str, tuple[str, str, str]], names: set[str]) -> str:
    """CSS that draws each named icon as a mask in the text colour, for ``<i class="fa-…">``."""
    rules = [ICON_BASE]
    for name in sorted(names & icons.keys()):
        width, height, path = icons[name]
        svg = quote(f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}'>"
                    f"<path d='{path}'/></svg>")
        rules.append(f'.fa-{name} {{ --cvae-icon: url("data:image/svg+xml,{svg}"); }}')
    return "\n".join(rules) + "\n"


def fix_theme_html(app: Sphinx, exception: Exception | None) -> None:
    """Apply ``THEME_FIXES`` to every page the build wrote, and draw its icons with CSS.

    The theme loads 1.49 MB of Font Awesome JavaScript on every page to draw about a dozen
    icons: ``_static/icons.css`` draws the ones the pages use in a few kilobytes instead.
    """
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    pages = {page: page.read_text(encoding="utf-8") for page in Path(app.outdir).rglob("*.html")}
    names = {name for text in pages.values() for name in re.findall(r"\bfa-([a-z0-9-]+)", text)}
    bundle = (static / "scripts" / "fontawesome.js").read_text(encoding="utf-8")
    (static / "icons.css").write_text(icon_css(solid_icons(bundle), names), encoding="utf-8")
    for page, original in pages.items():
        text = original
        for pattern, replacement in THEME_FIXES:
            text = re.sub(pattern, replacement, text)
        if text != original:
            page.write_text(text, encoding="utf-8")


def setup(app: Sphinx) -> dict[str, bool]:
    """The extension's hooks."""
    app.connect("doctree-read", quote_admonitions)
    app.connect("doctree-read", number_shared_alts, priority=600)  # after the widget pictures
    app.connect("doctree-read", link_references)
    app.connect("doctree-resolved", link_full_size)
    app.connect("html-page-context", unique_scripts, priority=900)  # after others add scripts
    app.connect("build-finished", fix_theme_html)
    return {"parallel_read_safe": False, "parallel_write_safe": True, "env_version": 1}
