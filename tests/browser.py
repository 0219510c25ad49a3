"""Helpers of the real-browser tests: a local server by process id, and headless Chromium."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


WIDGET_TIMEOUT_MS = 180_000
# Test-only JupyterLab user settings: no news pop-up, and every cell kept in the page.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"checkForUpdates": False, "fetchNews": "false"},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def check_generation_widget(page, name: str, label: str = "7",  # noqa: ANN001 - a Page
                            key: str = "ArrowRight") -> None:
    """Pick ``label``, then move a latent slider with ``key``; the digit must be redrawn."""
    from playwright.sync_api import expect

    widget = page.locator(".widget-vbox:has(> .cvae-label):has(img.cvae-digit)").first
    digit = widget.locator("img.cvae-digit")
    digit.wait_for(state="visible", timeout=WIDGET_TIMEOUT_MS)
    widget.scroll_into_view_if_needed()
    expect(digit).to_have_attribute("src", re.compile(r"\S"))
    screenshot(page, f"{name}-1-widget")

    before = digit.get_attribute("src")
    widget.locator(".cvae-label").get_by_role("button", name=label, exact=True).click()
    expect(digit).not_to_have_attribute("src", before)
    screenshot(page, f"{name}-2-label-{label}")

    before = digit.get_attribute("src")
    readout = widget.locator(".cvae-latent-slider .widget-readout").first
    start_value = readout.inner_text()
    handle = widget.locator(".cvae-latent-slider .noUi-handle").first
    handle.focus()
    for _ in range(20):
        handle.press(key)
    expect(readout).not_to_have_text(start_value)
    expect(digit).not_to_have_attribute("src", before)
    screenshot(page, f"{name}-3-slider-moved")


def write_lab_settings(folder: Path) -> None:
    """Write the test's JupyterLab user settings into ``folder``."""
    for rel, values in LAB_SETTINGS.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def require_browser() -> None:
    """Skip the calling test, saying why, unless playwright and Chromium are both there."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed: "
                        "`pip install -e '.[dev]'` (make test does it)")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` "
                    f"(make test does it where apt-get exists)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(workdir: Path) -> dict[str, str]:
    """Environment of a test server: fast, offline, the repo's model cache, private config."""
    env = dict(os.environ)
    env.update(CVAE_FAST="1", CVAE_OFFLINE="1", CVAE_CACHE_DIR=str(ROOT / "checkpoints"),
               JUPYTER_CONFIG_DIR=str(workdir / "config"),
               JUPYTERLAB_SETTINGS_DIR=str(workdir / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(workdir / "workspaces"))
    return env


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll ``url`` until it answers (any HTTP status); fail with the log if it dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"server did not answer {url} in {timeout:.0f} s:\n{log.read_text()}")


def stop_server(proc: subprocess.Popen) -> None:
    """Stop the server by its process id, then anything left in its process group (kernels)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextmanager
def running_server(cmd: list[str], workdir: Path, probe: str,
                   timeout: float = 90) -> Iterator[subprocess.Popen]:
    """Start ``cmd`` in its own process group, wait for ``probe`` to answer, always stop it."""
    log = workdir / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=workdir, env=server_env(workdir), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_up(probe, proc, log, timeout)
        yield proc
    finally:
        stop_server(proc)


@contextmanager
def chromium_page(width: int = 1400, height: int = 1000) -> Iterator[object]:
    """A fresh headless Chromium page (playwright), closed afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:  # noqa: ANN001 - a playwright Page
    """Save a screenshot of the window to screenshots/<name>.png (gitignored)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@contextmanager
def screenshot_on_failure(page, name: str) -> Iterator[None]:  # noqa: ANN001 - a Page
    """On any failure inside, save screenshots/<name>-failed.png before re-raising."""
    try:
        yield
    except Exception:
        screenshot(page, f"{name}-failed")
        raise


def with_one_retry(check, *args) -> None:  # noqa: ANN001 - a callable and its arguments
    """Run ``check(*args, attempt)``; a cold first start may be slow, so retry once."""
    try:
        check(*args, 1)
    except Exception as err:  # noqa: BLE001 - any failure earns one retry
        print(f"first attempt failed ({type(err).__name__}: {err}); retrying once")
        check(*args, 2)
