"""The book's launch button: one click opens a lesson on the class hub, in the student's copy.

Introduced in the book's hub guide. A book built for a class (``make book HUB_URL=https://...``,
``python -m cvae_lib.classroom.book --hub-url ...``, or ``cvae_hub_url`` in the ``sphinx:
config:`` of ``book/_config.yml``) shows on every lesson page a button whose link signs the
student in on that hub, pulls the course there with nbgitpuller (their own edits kept) and
opens that lesson in JupyterLab. The link names the course repository of the release the hub
serves (``CVAE_HUB_RELEASE``, default ``/srv/cvae-course``): see ``coursegit``. Without a hub
URL there is no button.

Jupyter Book's own ``launch_buttons: jupyterhub_url`` cannot make this link: it only knows
repositories named like ``https://github.com/org/repo``, and it puts the book's folder
(``lessons/``) into the notebook's path, where the course repository has none.
"""

from __future__ import annotations

import os
from pathlib import Path

from sphinx.application import Sphinx

from cvae_lib.classroom.coursegit import launch_link
from cvae_lib.classroom.release import release_dir

HUB_URL_VARIABLE = "CVAE_BOOK_HUB_URL"  # how ``python -m cvae_lib.classroom.book`` passes it


def add_launch_button(app: Sphinx, pagename: str, _template: str, context: dict,
                      _doctree: object) -> None:
    """On a lesson page, the theme's launch menu with one entry: open it on the class hub."""
    hub_url = app.config.cvae_hub_url
    if not hub_url or not pagename.startswith("lessons/") or "header_buttons" not in context:
        return
    link = {"type": "link", "text": "Class hub", "label": "launch-hub",
            "tooltip": "Open this lesson in JupyterLab on the class hub",
            "icon": "_static/images/logo_jupyterhub.svg",
            "url": launch_link(hub_url, release_dir(), f"{Path(pagename).name}.ipynb")}
    context["header_buttons"].append({"type": "group", "label": "launch-buttons",
                                      "tooltip": "Open this lesson on the class hub",
                                      "icon": "fas fa-rocket", "buttons": [link]})


def setup(app: Sphinx) -> dict[str, bool]:
    """The Sphinx extension: the ``cvae_hub_url`` setting and the button it turns on."""
    app.add_config_value("cvae_hub_url", os.environ.get(HUB_URL_VARIABLE, ""), "html")
    # After the theme has made the page's header buttons (its handlers run at 500 and 501).
    app.connect("html-page-context", add_launch_button, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
