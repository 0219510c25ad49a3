"""Files that must never be half-written: one atomic writer, the cache folder and its lock.

On a class server the prepared models sit in one read-only cache that every student reads
(``$CVAE_SHARED_CACHE_DIR``); what a student trains goes to their own ``$CVAE_CACHE_DIR``.

Introduced in 03_training. A write goes to a temporary file beside the target, is flushed to
disk (fsync), and only then renamed over the target: a crash or Ctrl-C leaves the old file
or the new one, never a mix. A whole folder of outputs is built beside its target and then
swapped in with one rename. Temporary files and folders carry their writer's process id;
those of a writer that died are removed on the next write.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import stat
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO



TEMP_SUFFIX = ".tmp"
STALE_AFTER = 24 * 3600.0  # older than this, a temp is stale even if its pid was reused
RENAME_EXCHANGE = 2  # renameat2 flag: swap two paths in one step (Linux >= 3.15)
AT_FDCWD = -100


def cache_dir() -> Path:
    """Folder of cached checkpoints: ``$CVAE_CACHE_DIR`` or ``checkpoints/`` beside the package."""
    default = Path(__file__).resolve().parents[2] / "checkpoints"
    return Path(os.environ.get("CVAE_CACHE_DIR", default))


def shared_cache_dir() -> Path | None:
    """A cache prepared once for a whole class and read-only (``$CVAE_SHARED_CACHE_DIR``)."""
    folder = os.environ.get("CVAE_SHARED_CACHE_DIR")
    return Path(folder) if folder else None


def find_cached(path: Path) -> Path:
    """``path`` if it is there; else the shared cache's file of that name, if it has one."""
    path, shared = Path(path), shared_cache_dir()
    if shared is None or path.is_file() or not (shared / path.name).is_file():
        return path
    return shared / path.name


def _temp_prefix(path: Path) -> str:
    """Name prefix of the temporary files written on the way to ``path``."""
    return f".{path.name}."


def pid_alive(pid: int) -> bool:
    """True while a process with this id exists (ours, or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, and belongs to another user
        pass
    return True


def _is_stale(temp: Path, prefix: str, older_than: float) -> bool:
    """True when the writer named in ``temp`` (prefix, pid, '.', ...) is dead, or it is old."""
    pid = temp.name[len(prefix):].split(".", 1)[0].split("-")[-1]
    if pid.isdigit() and not pid_alive(int(pid)):
        return True
    return time.time() - temp.stat().st_mtime > older_than


def remove_stale_temps(path: Path, older_than: float = STALE_AFTER) -> list[Path]:
    """Delete our temporary files for ``path`` left by a writer killed mid-write."""
    removed = []
    prefix = _temp_prefix(path)
    for temp in path.parent.glob(f"{prefix}*{TEMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            if _is_stale(temp, prefix, older_than):
                temp.unlink()
                removed.append(temp)
    return removed


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(file)`` on a temp file beside ``path``, fsync it, rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f"{_temp_prefix(path)}{os.getpid()}.",
                                suffix=TEMP_SUFFIX)
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


class CheckpointError(ValueError):
    """A file that is not a usable cvae_lib checkpoint."""


def write_payload(path: Path, payload: dict) -> Path:
    """Write a checkpoint's dict of tensors and plain values to ``path`` atomically."""
    # Imported when used: the hub's accounts and the grader import this module, and start
    # faster without torch.
    import torch

    return atomic_write(path, lambda f: torch.save(payload, f))


def write_or_warn(path: Path, payload: dict, what: str) -> bool:
    """``write_payload``; if that fails, warn with where and why, and keep going."""
    try:
        write_payload(path, payload)
        return True
    except OSError as err:
        warnings.warn(f"could not save {what} to {path} ({err.strerror or err}); it is still "
                      f"returned, but it will be trained again next time", stacklevel=3)
        return False


def read_payload(path: Path, version: int, repair: str) -> dict:
    """The checkpoint dict of ``version`` at ``path``, read without running any code in it.

    Anything else is a CheckpointError that ends with ``repair``: what to do about it.
    """
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch's own message suggests loading untrusted code: not shown
        raise CheckpointError(f"{path} is not a readable checkpoint (torch.load refused it "
                              f"safely: {type(err).__name__}). {repair}") from err
    if not isinstance(payload, dict) or payload.get("version") != version:
        raise CheckpointError(f"{path} is not a cvae_lib checkpoint of version {version}. "
                              f"{repair}")
    return payload


def staging_folder(target: Path) -> Path:
    """A new empty folder beside ``target`` to build its next contents in; old ones are removed."""
    target = Path(target)
    prefix = _temp_prefix(target)
    for old in target.parent.glob(f"{prefix}*-*{TEMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            if old.is_dir() and _is_stale(old, prefix, STALE_AFTER):
                shutil.rmtree(old, ignore_errors=True)
    folder = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{prefix}staging-{os.getpid()}.",
                                   suffix=TEMP_SUFFIX))
    folder.chmod(0o755)  # readable like any folder once swapped in (mkdtemp makes it 0o700)
    return folder


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one system call (Linux renameat2); False where that is unavailable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL):  # an old kernel or a filesystem without it
        return False
    raise OSError(err, os.strerror(err), str(b))


def publish_folder(staging: Path, target: Path) -> Path:
    """Replace the folder ``target`` by ``staging`` so that it holds the old set or the new one.

    Where the system cannot swap two folders in one step, the old folder is renamed away first;
    only then is there a moment without ``target``, and the old set waits beside it.
    """
    staging, target = Path(staging), Path(target)
    if not target.exists():
        os.rename(staging, target)
        return target
    if not _exchange(staging, target):
        old = target.with_name(f"{_temp_prefix(target)}old-{os.getpid()}{TEMP_SUFFIX}")
        os.rename(target, old)
        os.rename(staging, target)
        staging = old
    shutil.rmtree(staging, ignore_errors=True)
    return target


def check_writable(folder: Path, need_bytes: int = 0) -> Path:
    """Raise a clear error now, before any training, if ``need_bytes`` cannot go in ``folder``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder: choose another output "
                                 f"folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        free = shutil.disk_usage(folder).free
    except OSError as err:
        raise PermissionError(f"cannot write in {folder} ({err.strerror or err}): choose a "
                              f"folder you can write to, or free some space") from err
    if free < need_bytes:
        raise PermissionError(f"only {free / 1e6:.1f} MB free in {folder}, "
                              f"{need_bytes / 1e6:.0f} MB needed: free some space or choose "
                              f"another folder")
    return folder


def _open_lock(lock: Path) -> int:
    """Open this user's lock file ``lock`` (made 0600, never via a link); replace an old one."""
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise PermissionError(f"{lock} is a link, not a lock file: remove it") from err
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        raise PermissionError(f"{lock} is not a lock file of this user (owner uid "
                              f"{info.st_uid}): remove it")
    if info.st_mode & 0o077:  # an older version's 0644 lock: another user may hold it open
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        return _open_lock(lock)
    return fd


@contextlib.contextmanager
def exclusive(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold the lock file ``path``.lock; if another process holds it, call ``on_wait`` and wait.

    The lock file is readable by its owner alone, so no other user can open it to hold it and
    stall this user's cache writes.
    """
    fd = _open_lock(Path(f"{path}.lock"))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing it releases the lock
