"""nbgitpuller in a student's server, pulling the course and nothing else.

A Jupyter server extension that the hub loads in place of nbgitpuller's own (``hub release``
copies this file into the release's Python). A pull link is an ordinary GET that runs in the
server of whoever opens it, so a classmate could mail one that clones their own repository
into the victim's ``~/.ipython/profile_default/startup`` (code that runs at the victim's next
kernel start), or that puts a script into nbgitpuller's status page, which does not escape
its parameters. Here every pull must name exactly the course's repository, branch and folder
(``CVAE_COURSE_REPO``, ``CVAE_COURSE_BRANCH``, ``CVAE_COURSE_FOLDER``, set by the hub), and
may only open the course folder or one of its notebooks; anything else gets 403.
"""

from __future__ import annotations

import os
import re

from jupyter_server.utils import url_path_join
from tornado import web

# Each pull's required parameter, and the variable the hub sets to the course's value.
ASKED = {"repo": "CVAE_COURSE_REPO", "branch": "CVAE_COURSE_BRANCH",
         "targetpath": "CVAE_COURSE_FOLDER"}
OPTIONAL = {"urlpath", "_xsrf"}  # where the page sends the student; its API call's xsrf token
NOTEBOOK = r"[A-Za-z0-9][A-Za-z0-9_.-]*\.ipynb"


def refusal(arguments: dict[str, list[bytes]]) -> str | None:
    """Why a pull with these query arguments is refused, or None for the course's own."""
    expected = {name: os.environ.get(variable, "") for name, variable in ASKED.items()}
    folder = re.escape(expected["targetpath"])
    if not all(expected.values()):
        return "this server was not started by the class hub"
    extra = set(arguments) - {*ASKED, *OPTIONAL}
    if extra:
        return f"unexpected parameters {sorted(extra)}"
    if any(len(values) != 1 for values in arguments.values()):
        return "each parameter may be given once"
    given = {name: values[0].decode(errors="replace") for name, values in arguments.items()}
    if any(given.get(name) != value for name, value in expected.items()):
        return "only the course's repository, branch and folder can be pulled here"
    urlpath = given.get("urlpath", f"lab/tree/{expected['targetpath']}")
    if not re.fullmatch(rf"lab/tree/{folder}(/{NOTEBOOK})?/?", urlpath):
        return "a pull may only open the course folder or one of its notebooks"
    return None


class Guarded:
    """Mixed into nbgitpuller's handlers: refuse any pull but the course's, before it starts."""

    def prepare(self):  # noqa: ANN201 - tornado's hook (it may return an awaitable)
        """Check the request's query before the handler reads it."""
        reason = refusal(self.request.query_arguments)
        if reason is not None:
            raise web.HTTPError(403, reason)
        return super().prepare()


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Where jupyter_server finds this extension."""
    return [{"module": "cvae_pullguard"}]


def _load_jupyter_server_extension(app) -> None:  # noqa: ANN001 - a jupyter_server ServerApp
    """Register nbgitpuller's pull page and pull API, each behind the guard."""
    from nbgitpuller._compat import get_base_handler

    get_base_handler(app)  # nbgitpuller picks its base class from the app before its handlers
    from nbgitpuller import handlers

    page = type("GuardedUIHandler", (Guarded, handlers.UIHandler), {})
    api = type("GuardedSyncHandler", (Guarded, handlers.SyncHandler), {})
    base = url_path_join(app.web_app.settings["base_url"], "git-pull")
    static = os.path.join(os.path.dirname(handlers.__file__), "static")
    app.web_app.settings["nbapp"] = app  # nbgitpuller's handlers find the server here
    app.web_app.add_handlers(".*", [
        (url_path_join(base, "api"), api),
        (base, page),
        (url_path_join(base, "static", "(.*)"), web.StaticFileHandler, {"path": static}),
    ])
