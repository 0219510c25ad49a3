"""Files that must never be half-written: one atomic writer, the cache folder and its lock.

Introduced in 03_training. A write goes to a temporary file beside the target, is flushed to
disk (fsync), and only then renamed over the target: a crash or Ctrl-C leaves the old file
or the new one, never a mix. Temporary files of a killed writer are removed on the next write.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from filelock import FileLock, Timeout

TEMP_SUFFIX = ".tmp"
STALE_AFTER = 3600.0  # a temp file older than this belongs to a writer that died


def cache_dir() -> Path:
    """Folder of cached checkpoints: ``$CVAE_CACHE_DIR`` or ``checkpoints/`` beside the package."""
    default = Path(__file__).resolve().parents[1] / "checkpoints"
    return Path(os.environ.get("CVAE_CACHE_DIR", default))


def _temp_prefix(path: Path) -> str:
    """Name prefix of the temporary files written on the way to ``path``."""
    return f".{path.name}."


def remove_stale_temps(path: Path, older_than: float = STALE_AFTER) -> list[Path]:
    """Delete our temporary files for ``path`` left by a writer killed mid-write."""
    removed = []
    now = time.time()
    for temp in path.parent.glob(f"{_temp_prefix(path)}*{TEMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            if now - temp.stat().st_mtime > older_than:
                temp.unlink()
                removed.append(temp)
    return removed


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, fsync it, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def check_writable(folder: Path) -> Path:
    """Raise a clear error now, before any training, if files cannot be written in ``folder``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder: choose another output "
                                 f"folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise PermissionError(f"cannot write in {folder} ({err.strerror}): choose a folder you "
                              f"can write to, or free some space") from err
    return folder


@contextlib.contextmanager
def exclusive(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the lock file ``path``.lock; if another process holds it, call ``on_wait`` and wait."""
    lock = FileLock(f"{path}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait()
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
