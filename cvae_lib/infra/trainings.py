"""Trainings that run at once share the cores fairly, through a folder nobody can turn on them.

Introduced in 03_training. Two processes that each run two OpenMP threads on two cores spin
against each other. Each training leaves an entry in a registry folder; ``FairShare`` counts
the live ones and gives this process its share of the cores. Nothing in that folder is opened,
followed or locked, only listed and lstat-ed, so no other user can stall or misdirect a training.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import socket
import stat
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from cvae_lib.infra.runtime import env_flag
from cvae_lib.infra.storage import pid_alive

T = TypeVar("T")
ADJUST_EVERY = 100  # optimizer steps between two counts of the trainings running beside this one


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
        return (None, "0") if pid_alive(pid) else None
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

    It wraps a training from outside: ``with FairShare(): ...`` recounts every ``ADJUST_EVERY``
    optimizer steps through torch's global step hook, so the training step knows nothing of it.
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
        self._steps = 0
        # Called in the thread that steps, the one whose OpenMP thread count adjust() sets.
        self._hook = register_optimizer_step_post_hook(self._after_step)
        self.adjust()

    def __enter__(self) -> FairShare:
        """The share itself; leaving the block gives the threads back."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Give the threads back and leave the registry, however the block ended."""
        self.close()

    def _after_step(self, *hook_args: object) -> None:
        """Recount every ``ADJUST_EVERY`` optimizer steps: other trainings start and stop."""
        self._steps += 1
        if self._steps % ADJUST_EVERY == 0:
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
        self._hook.remove()
        torch.set_num_threads(self.threads)
        self._path.unlink(missing_ok=True)
        FairShare.held -= 1


def shares_cores(work: Callable[..., T]) -> Callable[..., T]:
    """Make the CPU-heavy function ``work`` run on this process's fair share of the cores.

    An evaluation or a batch of samples counts as a training does (``FairShare``) while it
    runs, so two kernels never run more threads than there are cores, which spin-wait for each
    other. Inside a training, or another such function, the process is already counted.
    ``train`` and the classifier's training wear it too: it wraps them from outside.
    """
    @functools.wraps(work)
    def shared(*args: object, **kwargs: object) -> T:
        if FairShare.held:
            return work(*args, **kwargs)
        with FairShare():
            return work(*args, **kwargs)
    return shared
