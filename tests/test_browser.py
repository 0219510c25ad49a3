"""The course in a real browser: JupyterLab, its slideshow and the voila presenter in Chromium.

Each test starts its server on 127.0.0.1 (a temporary copy of the notebooks, so the repo's
files are never saved with outputs), drives the generation widget like a student would and
checks that the digit is redrawn. The presenter's server is also checked for what a class needs:
token, local Host header, a cap on kernels, idle kernels shut down. Screenshots go to
screenshots/ (gitignored).
"""

from __future__ import annotations

import importlib.util
import re
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from browser import (BIN, ROOT, WIDGET_TIMEOUT_MS, check_generation_widget, chromium_page,
                     free_port, require_browser, running_server, screenshot,
                     screenshot_on_failure, with_one_retry, write_lab_settings)

SLIDESHOW = importlib.util.find_spec("jupyterlab_slideshow") is not None
# Space presses allowed to reach notebook 04's generation widget from its title slide.
MAX_SLIDE_STEPS = 15


@contextmanager
def lab_page(notebooks: Path, notebook: str, workdir: Path, name: str) -> Iterator[object]:
    """JupyterLab serving a copy of ``notebooks``, with ``notebook`` open and all of it run."""
    shutil.copytree(notebooks, workdir / "notebooks")
    write_lab_settings(workdir / "settings")
    port, token = free_port(), secrets.token_hex(16)
    cmd = [str(BIN / "jupyter"), "lab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={workdir / 'notebooks'}"]
    base = f"http://127.0.0.1:{port}"
    with running_server(cmd, workdir, f"{base}/api/status?token={token}"), \
            chromium_page() as page, screenshot_on_failure(page, name):
        page.goto(f"{base}/lab/tree/{notebook}?token={token}")
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=120_000)
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        yield page


def run_in_jupyterlab_and_as_slides(notebooks: Path, notebook: str, workdir: Path,
                                    attempt: int) -> None:
    """Run ``notebook`` in JupyterLab and drive its widget; then present it from the title,
    step to the widget's slide and drive it there (one server, one run of the notebook)."""
    from playwright.sync_api import expect

    with lab_page(notebooks, notebook, workdir / f"lab-{attempt}", "jupyterlab") as page:
        check_generation_widget(page, "jupyterlab")
        if not SLIDESHOW:
            return
        digit, cells = page.locator("img.cvae-digit").first, page.locator(".jp-Notebook .jp-Cell")
        cells.first.click()
        page.locator(".jp-NotebookPanel-toolbar [data-command='deck:toggle']").click()
        expect(page.locator("body")).to_have_attribute("data-jp-deck-mode", "presenting")
        expect(cells.first).to_be_visible()
        expect(digit).to_be_hidden()
        screenshot(page, "slides-0-title")
        for _ in range(MAX_SLIDE_STEPS):
            if digit.is_visible():
                break
            page.keyboard.press("Space")
            page.wait_for_timeout(300)
        expect(cells.first).to_be_hidden()
        check_generation_widget(page, "slides", label="3", key="ArrowLeft")
        expect(digit).to_be_visible()
        expect(page.locator("body")).to_have_attribute("data-jp-deck-mode", "presenting")


def voila_kernels(server: subprocess.Popen) -> int:
    """How many ipykernel processes the voila server has started and not yet shut down."""
    found = subprocess.run(["pgrep", "-P", str(server.pid), "-f", "ipykernel"],
                           capture_output=True, text=True).stdout
    return len(found.split())


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Report a redirect (to the login page) as it is, instead of following it."""

    def redirect_request(self, *args: object) -> None:
        return None


def http_status(url: str, host: str | None = None) -> int:
    """HTTP status of one GET of ``url``, optionally with a forged Host header."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=300) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def check_presenter_page(page, base: str, token: str,  # noqa: ANN001 - a playwright Page
                         server: subprocess.Popen) -> None:
    """Open the presenter page, drive its widget; while it is open, a second page gets 503."""
    page.goto(f"{base}/?token={token}", timeout=WIDGET_TIMEOUT_MS)
    check_generation_widget(page, "voila")
    for source in ("generation_widget(model)", "import"):
        assert page.get_by_text(source).count() == 0, f"the page shows code: {source!r}"
    for css in (".cvae-same-z img", "img.cvae-interpolation"):
        assert page.locator(css).count() == 1, f"{css} is missing from the presenter view"
    page.locator("img.cvae-interpolation").scroll_into_view_if_needed()
    screenshot(page, "voila-4-interpolation")
    assert voila_kernels(server) == 1
    assert http_status(f"{base}/?token={token}") == 503  # the cap: one page at a time here


def run_presenter(notebook: Path, workdir: Path, attempt: int) -> None:
    """Serve ``notebook`` as `make present` does, capped at one kernel: check who gets in,
    drive the widget in Chromium, and see the closed page's idle kernel shut down."""
    workdir = workdir / f"voila-{attempt}"
    workdir.mkdir()
    copy = shutil.copy(notebook, workdir / notebook.name)
    port, token = free_port(), secrets.token_hex(16)
    cmd = [str(BIN / "voila"), str(copy), f"--Voila.config_file_paths={ROOT / 'presenter'}",
           f"--port={port}", f"--token={token}"]  # the settings of `make present`
    base = f"http://127.0.0.1:{port}"
    with running_server(cmd, workdir, f"{base}/voila/static/") as server:
        assert http_status(f"{base}/") == 302  # to the login page
        assert http_status(f"{base}/?token={token}", host=f"classroom.example:{port}") == 403
        assert voila_kernels(server) == 0
        require_browser()
        with chromium_page() as page, screenshot_on_failure(page, "voila"):
            check_presenter_page(page, base, token, server)
        for _ in range(60):  # the page is closed: its kernel goes idle and is shut down
            if voila_kernels(server) == 0:
                break
            time.sleep(1)
        assert voila_kernels(server) == 0


def test_generation_widget_in_jupyterlab_and_in_the_slideshow(tmp_path, notebook_cache) -> None:
    require_browser()
    with_one_retry(run_in_jupyterlab_and_as_slides, ROOT / "notebooks", "04_generation.ipynb",
                   tmp_path)
    if not SLIDESHOW:
        pytest.skip("the slideshow extension is missing: `pip install -e '.[dev]'` (make test "
                    "does it); the JupyterLab part passed")


def test_presenter_view_in_voila(tmp_path, notebook_cache, monkeypatch) -> None:
    """The presenter needs the token and a local Host, caps its kernels, culls idle ones, and
    shows the widgets without code."""
    monkeypatch.setenv("CVAE_PRESENTER_MAX_KERNELS", "1")
    # Long enough for the page to connect to its kernel once the notebook has run, even on a
    # busy machine; after the page closes, the kernel is shut down within twice this.
    monkeypatch.setenv("CVAE_PRESENTER_IDLE_SECONDS", "6")
    with_one_retry(run_presenter, ROOT / "presenter" / "cvae_presenter.ipynb", tmp_path)
