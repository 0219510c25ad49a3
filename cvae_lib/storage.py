"""Files that must never be half-written: one atomic writer, the cache folder and its lock.

Introduced in 03_training. A write goes to a temporary file beside the target, is flushed to
disk (fsync), and only then renamed over the target: a crash or Ctrl-C leaves the old file
or the new one, never a mix. Temporary files of a killed writer are removed on the next write.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import torch
from filelock import FileLock, Timeout

from cvae_lib.runtime import env_flag

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


def _registry() -> Path:
    """Folder where each running training holds a lock file, so trainings can count each other."""
    return Path(tempfile.gettempdir()) / f"cvae_lib-trainings-{getpass.getuser()}"


class FairShare:
    """Share the CPU cores fairly among the trainings running on this machine at once.

    Two processes that each run two OpenMP threads on two cores spin-wait for each other's
    cores: each ran 6x slower instead of 2x (``benchmarks/bench_contention.py``). Each training
    holds a lock file in a shared folder; ``adjust()`` counts the live ones and gives this
    process cores // count threads, so a lone run keeps every core.
    """

    def __init__(self) -> None:
        self.threads = torch.get_num_threads()
        self.cores = max(self.threads, os.cpu_count() or 1)
        _registry().mkdir(exist_ok=True)
        self._path = _registry() / f"{os.getpid()}.lock"
        self._lock = FileLock(self._path)
        self._lock.acquire()
        self.adjust()

    def running(self) -> int:
        """How many trainings hold their lock file right now (this one included)."""
        count = 0
        for path in _registry().glob("*.lock"):
            if path == self._path:
                count += 1
                continue
            probe = FileLock(path)
            try:
                probe.acquire(timeout=0)
            except Timeout:
                count += 1  # held: that training is alive
            else:
                probe.release()
                path.unlink(missing_ok=True)  # its owner has exited
        return count

    def adjust(self) -> None:
        """Set this process's thread count to its fair share of the cores."""
        if not env_flag("CVAE_SHARE_CORES", default=True):
            return
        share = max(1, min(self.threads, self.cores // self.running()))
        if torch.get_num_threads() != share:  # setting it is not free
            torch.set_num_threads(share)

    def close(self) -> None:
        """Give the threads back and leave the registry."""
        torch.set_num_threads(self.threads)
        self._lock.release()
        self._path.unlink(missing_ok=True)

