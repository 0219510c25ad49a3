"""Files that must never be half-written: one atomic writer, the cache folder and its lock.

On a class server the prepared models sit in one read-only cache that every student reads
(``$CVAE_SHARED_CACHE_DIR``); what a student trains goes to their own ``$CVAE_CACHE_DIR``.

Introduced in 03_training. A write goes to a temporary file beside the target, is flushed to
disk (fsync), and only then renamed over the target: a crash or Ctrl-C leaves the old file
or the new one, never a mix. A whole folder of outputs is built beside its target and then
swapped in with one rename. Temporary files and folders carry their writer's process id;
those of a writer that died are removed on the next write.

Trainings running at once count each other in a registry folder (``FairShare``) that no other
user can turn against them: nothing in it is opened, followed or locked, only listed and lstat-ed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import re
import shutil
import socket
import stat
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

import torch

from cvae_lib.infra.runtime import env_flag

TEMP_SUFFIX = ".tmp"
STALE_AFTER = 24 * 3600.0  # older than this, a temp is stale even if its pid was reused
RENAME_EXCHANGE = 2  # renameat2 flag: swap two paths in one step (Linux >= 3.15)
AT_FDCWD = -100
T = TypeVar("T")


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


def _pid_alive(pid: int) -> bool:
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
    if pid.isdigit() and not _pid_alive(int(pid)):
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


def _open_folder(folder: Path) -> int:
    """Open ``folder`` without following a link; PermissionError if it is a link or a file."""
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            raise PermissionError(f"{folder} is a link or a file, not a folder (someone may have "
                                  f"planted it): remove it, or choose another folder") from err
        raise


def make_registry(folder: Path, shared: bool = False) -> Path:
    """Create the trainings folder ``folder``, or take it if this user made it, and lock it down.

    ``shared`` (a class hub's, for every student): mode 1777, so anyone registers and nobody
    removes another's entry; otherwise 0700. A link, a file or a folder another user made is
    refused with a PermissionError naming it: it may have been planted to misdirect trainings.
    The hub calls this for ``$CVAE_TRAININGS_DIR`` before any student runs.
    """
    folder = Path(folder)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    fd = _open_folder(folder)
    try:
        owner = os.fstat(fd).st_uid
        if owner != os.geteuid():
            raise PermissionError(f"{folder} was made by another user (uid {owner}), not by this "
                                  f"one: remove it, or choose another folder")
        os.fchmod(fd, 0o1777 if shared else 0o700)
    finally:
        os.close(fd)
    return folder


def check_registry(folder: Path) -> Path:
    """Raise PermissionError unless ``folder`` is a shared trainings folder as the hub makes it.

    That is a real folder (not a link) of root's or this user's, where nobody can remove another
    user's entry (only its owner may write, or the sticky bit is set).
    """
    try:
        fd = _open_folder(folder)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"CVAE_TRAININGS_DIR={folder} does not exist: the class hub "
                                f"makes it when it starts; unset CVAE_TRAININGS_DIR to train "
                                f"on your own") from err
    try:
        info = os.fstat(fd)
    finally:
        os.close(fd)
    loose = info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX
    if info.st_uid not in (0, os.geteuid()) or loose:
        raise PermissionError(f"CVAE_TRAININGS_DIR={folder} is not a trainings folder made by "
                              f"the class hub (owner uid {info.st_uid}, mode "
                              f"{stat.S_IMODE(info.st_mode):o}): ask the instructor to restart "
                              f"the hub, or unset CVAE_TRAININGS_DIR to train on your own")
    return Path(folder)


def _registry() -> Path:
    """Folder where each running training leaves an entry, so trainings can count each other.

    ``$CVAE_TRAININGS_DIR`` when set (a class hub's, shared by every student: checked with
    ``check_registry``). Otherwise a private one, ``$TMPDIR/cvae_lib-trainings-<uid>``, made
    0700 by this user; if another user planted something of that name first, it is never
    used: the registry moves to this user's own ``~/.cache/cvae_lib``, with a warning, so a
    planted folder can neither stop nor misdirect this user's trainings.
    """
    shared = os.environ.get("CVAE_TRAININGS_DIR")
    if shared:
        return check_registry(Path(shared))
    private = Path(tempfile.gettempdir()) / f"cvae_lib-trainings-{os.geteuid()}"
    try:
        return make_registry(private)
    except PermissionError as err:
        fallback = Path.home() / ".cache" / "cvae_lib" / f"trainings-{socket.gethostname()}"
        warnings.warn(f"{err}. Registering trainings in {fallback} instead.", stacklevel=3)
        fallback.parent.mkdir(parents=True, exist_ok=True)
        return make_registry(fallback)


def _process(pid: int) -> tuple[int | None, str] | None:
    """(effective uid, start time) of the live process ``pid``; None once it has exited.

    Read from /proc on Linux: the start time tells a reused pid apart. Without /proc (macOS)
    only whether it lives is known, and the answer is (None, "0").
    """
    try:
        started = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return None
        return (None, "0") if _pid_alive(pid) else None
    except OSError:  # it exited while being read
        return None
    fields = started.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    if fields[0] in ("Z", "X"):  # exited, not yet reaped
        return None
    uid = next(line.split()[2] for line in status.splitlines() if line.startswith("Uid:"))
    return int(uid), fields[19]


ENTRY = re.compile(r"(\d+)-(\d+)-\w+\.training")  # pid, start time, random part


def _entry_state(entry: os.DirEntry) -> tuple[int, bool] | None:
    """(owner uid, alive) of a registry entry a training wrote; None for anything else.

    Only the name and ``lstat`` are read: nothing is opened or followed. An entry is alive while
    the process it names runs, started when the name says, as the user who owns the file.
    """
    found = ENTRY.fullmatch(entry.name)
    if found is None:
        return None
    try:
        info = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    process = _process(int(found[1]))
    alive = (process is not None and process[1] == found[2]
             and process[0] in (None, info.st_uid))
    return info.st_uid, alive


class FairShare:
    """Share the CPU cores fairly among the users training on this machine at once.

    Two processes that each run two OpenMP threads on two cores spin-wait for each other's
    cores: each ran 6x slower instead of 2x (``benchmarks/bench_contention.py``). Each training
    leaves an entry (an empty file named after its process) in a registry folder; ``adjust()``
    counts the live ones per user and gives this process cores // users threads, split again
    among this user's own trainings. A lone run keeps every core; a user who starts 50
    trainings, or plants 50 files, still counts as one user. Only processes this one can see
    in /proc are counted: servers in separate containers (or behind ``hidepid``) share nothing.
    """

    held = 0  # the entries this process holds: a step inside a training takes no second one

    def __init__(self) -> None:
        self.threads = torch.get_num_threads()
        self.cores = max(self.threads, os.cpu_count() or 1)
        self._folder = _registry()
        pid = os.getpid()
        fd, name = tempfile.mkstemp(prefix=f"{pid}-{_process(pid)[1]}-", suffix=".training",
                                    dir=self._folder)  # O_EXCL, no link followed, mode 0600
        os.close(fd)
        self._path = Path(name)
        FairShare.held += 1
        self.adjust()

    def trainings(self) -> Counter[int]:
        """Live trainings per user id, this one included; stale entries of ours are removed."""
        live: Counter[int] = Counter()
        with os.scandir(self._folder) as entries:
            for entry in entries:
                state = _entry_state(entry)
                if state is not None and state[1]:
                    live[state[0]] += 1
                elif state is not None and state[0] == os.geteuid():  # never another's file
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        return live

    def running(self) -> int:
        """How many trainings are running right now, of every user (this one included)."""
        return sum(self.trainings().values())

    def adjust(self) -> None:
        """Set this process's thread count to its fair share of the cores."""
        if not env_flag("CVAE_SHARE_CORES", default=True):
            return
        live, me = self.trainings(), os.geteuid()
        per_user = self.cores // len(live.keys() | {me})
        share = max(1, min(self.threads, per_user // max(1, live[me])))
        if torch.get_num_threads() != share:  # setting it is not free
            torch.set_num_threads(share)

    def close(self) -> None:
        """Give the threads back and leave the registry."""
        torch.set_num_threads(self.threads)
        self._path.unlink(missing_ok=True)
        FairShare.held -= 1


def shares_cores(step: Callable[..., T]) -> Callable[..., T]:
    """Make the CPU-heavy function ``step`` run on this process's fair share of the cores.

    An evaluation or a batch of samples counts as a training does (``FairShare``) while it
    runs, so two kernels never run more threads than there are cores, which spin-wait for each
    other. Inside a training, or another such step, the process is already counted.
    """
    @functools.wraps(step)
    def shared(*args: object, **kwargs: object) -> T:
        if FairShare.held:
            return step(*args, **kwargs)
        share = FairShare()
        try:
            return step(*args, **kwargs)
        finally:
            share.close()
    return shared
