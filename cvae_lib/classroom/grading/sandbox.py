"""Where a submission runs: a bubblewrap sandbox that sees only what grading needs, and its caps.

An allow-list: the sandbox holds the Python, its packages and the course package (read-only,
at their real paths, so a venv linked from elsewhere still starts), the prepared MNIST folder if
there is one, /dev and its own /proc, and a size-capped tmpfs as /tmp, its only writable
place. Not the repository, /etc, /var, /run, /home or any socket; no network. When the grader
runs as root, the runner drops to a uid of its own (one per submission running at once) with
no capabilities and no new privileges. The runner caps its address space, process count and
file size with rlimits before any student code runs (``runner._set_limits``).

Rlimits hold per process (or per uid), so a submission could still share its memory limit out
among fresh Pythons or take every core with spinning children. As root, with libcgroup's tools,
each submission therefore runs in a cgroup of its own (the class hub's ``limits`` module): the
kernel caps the memory of all its processes together at its limit, its CPU at the cores its
job was given (a quota, not only a weight) and its tasks; the group is frozen, killed and
removed when the submission ends, and ended whole as soon as the kernel kills any of it for
memory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cvae_lib.classroom import limits as cgroups

PACKAGE = Path(__file__).resolve().parents[2]  # cvae_lib/, the only part of the checkout bound
REPO = PACKAGE.parent
FIRST_UID = 61234  # uids no account uses: RLIMIT_NPROC counts per uid, so each has its own
PROCESSES = 64  # per submission, its threads included (torch's are a few)
TMP_MB = 256  # the sandbox's /tmp, all it can write
FILE_MB = 128  # the largest file it can write
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
INSIDE_TMP = Path("/tmp")  # the writable folder as the sandbox sees it
BOOT = "from cvae_lib.classroom.grading.runner import main; main()"
GROUPS = "cvae-grade"  # every submission's cgroup lives under this one (``group_of``)
WATCH_SECONDS = 0.2  # how often a submission's cgroup is checked for a kill at its memory cap


@dataclass(frozen=True)
class Limits:
    """What one submission may use: seconds of running, MiB of address space, threads."""

    seconds: float
    memory_mb: int = 8192
    threads: int = 1  # torch's threads: the cores divided among the submissions run at once

    def rlimits(self, sandboxed: bool) -> dict[str, int]:
        """The runner's rlimits; the process cap only under a uid of its own (as root)."""
        limits = {"RLIMIT_AS": self.memory_mb * 2 ** 20, "RLIMIT_CORE": 0,
                  "RLIMIT_FSIZE": FILE_MB * 2 ** 20}
        if sandboxed and os.geteuid() == 0:
            limits["RLIMIT_NPROC"] = PROCESSES
        return limits


class UidPool:
    """Unprivileged uids for the submissions running at once, one each."""

    def __init__(self) -> None:
        self._lock, self._used = threading.Lock(), set[int]()

    @contextmanager
    def lease(self) -> Iterator[int]:
        """A uid no other submission of this grader is using, until the block ends."""
        with self._lock:
            uid = next(u for u in range(FIRST_UID, FIRST_UID + 1000) if u not in self._used)
            self._used.add(uid)
        try:
            yield uid
        finally:
            with self._lock:
                self._used.discard(uid)


@dataclass(frozen=True)
class Sandbox:
    """How submissions are isolated: bubblewrap, or only the limits (``problem`` says why)."""

    bwrap: str | None
    problem: str = ""  # why bubblewrap cannot run here and how to fix it; "" if not tried
    uids: UidPool = field(default_factory=UidPool, compare=False)
    grouped: bool = False  # each submission in a cgroup of its own
    no_groups: str = "run as root with cgroup-tools"  # why not, when not grouped

    @property
    def note(self) -> str:
        """The report's line on how student code was isolated."""
        if self.bwrap is None:
            return ("NO SANDBOX (--no-sandbox): student code runs with the time, memory and "
                    "file-size limits only, as you, and can reach the network and your files.")
        who = ("a uid of its own" if os.geteuid() == 0
               else "your uid (run as root for a uid per submission and a process cap)")
        group = ("in a cgroup of its own: the kernel caps the memory of all its processes "
                 "together, its share of the cores and its processes, and kills them all at "
                 "its end" if self.grouped else
                 f"memory and process limits per process only ({self.no_groups})")
        return (f"Sandbox: bubblewrap (sees only Python, its packages and cvae_lib, read-only; "
                f"no network; a {TMP_MB} MiB /tmp; runs as {who}, {group}).")

    @contextmanager
    def lease(self, limits: Limits) -> Iterator[int]:
        """A uid for one submission and, when grouped, its cgroup, removed when the block ends."""
        with self.uids.lease() as uid:
            if not self.grouped:
                yield uid
                return
            cgroups.create_group(group_of(uid), None, group_caps(limits), GROUPS)
            done = threading.Event()
            watcher = threading.Thread(target=_end_at_memory_cap, args=(group_of(uid), done),
                                       daemon=True)
            watcher.start()
            try:
                yield uid
            finally:
                done.set()
                watcher.join()
                cgroups.stop_group(group_of(uid), parent=GROUPS)

    def command(self, argv: list[str], uid: int) -> list[str]:
        """``argv`` run inside the sandbox, as ``uid`` when the grader is root (and in its
        cgroup when grouped: ``cgexec`` joins it as root, then bubblewrap drops to ``uid``)."""
        if self.bwrap is None:
            return argv
        if os.geteuid() != 0:
            return [self.bwrap, *_bwrap_options(), "--unshare-user", "--uid", "65534",
                    "--gid", "65534", "--cap-drop", "ALL", *argv]
        drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        sandboxed = [self.bwrap, *_bwrap_options(), *drop, *argv]
        return cgroups.wrap(group_of(uid), sandboxed, GROUPS) if self.grouped else sandboxed


def group_of(uid: int) -> str:
    """The cgroup of the submission run as ``uid`` (below ``GROUPS``): graders running at once
    lease the same uids, so the name holds this grader's pid too."""
    return f"{os.getpid()}-{uid}"


def group_caps(limits: Limits) -> cgroups.Caps:
    """A submission's cgroup caps: its memory limit for all its processes, its cores, tasks."""
    return cgroups.Caps(memory=f"{limits.memory_mb}M", processes=PROCESSES,
                        cpus=limits.threads)


def _end_at_memory_cap(name: str, done: threading.Event) -> None:
    """End the whole submission once the kernel kills any of its processes for memory: the
    memory limit is the submission's, and what is left of it must not go on as if whole."""
    while not done.wait(WATCH_SECONDS):
        if cgroups.oom_kills(name, GROUPS):
            cgroups.stop_group(name, parent=GROUPS)
            return


def _group_problem() -> str:
    """Why each submission cannot have a cgroup of its own here ("" if it can), tried once."""
    if os.geteuid() != 0:
        return "run as root for a cgroup per submission"
    found = cgroups.problems()
    if found:
        return found[0]
    probe = f"probe-{os.getpid()}"
    try:
        cgroups.create_group(probe, None, group_caps(Limits(1.0)), GROUPS)
        cgroups.stop_group(probe, parent=GROUPS)
    except (OSError, RuntimeError) as err:
        return f"no cgroup per submission: {err}"
    return ""


def _python_executable() -> str:
    """This Python by its real folder: a venv symlinked into a hidden /tmp still starts.

    Only the folder is resolved: the venv's ``bin/python`` is itself a link to the base
    Python, and Python finds its venv by the ``pyvenv.cfg`` beside the path it was started by.
    """
    folder, name = os.path.split(sys.executable)
    return os.path.join(os.path.realpath(folder), name)


def _data_folder() -> Path | None:
    """The instructor's prepared MNIST folder, if there is one."""
    prepared = Path(os.environ.get("CVAE_DATA_DIR", REPO / "data"))
    return prepared if (prepared / "MNIST" / "raw").is_dir() else None


def _bound_paths() -> list[str]:
    """Real paths the sandbox sees: /usr, Python, its packages, cvae_lib, the MNIST folder.

    Only the entries of ``sys.path`` that hold packages (inside a prefix, or a site-packages
    folder) are taken: never the checkout, which ``sys.path`` holds under pytest.
    """
    prefixes = [sys.base_prefix, sys.prefix, os.path.dirname(_python_executable()),
                os.path.realpath(sys.executable)]
    packages = [p for p in sys.path if p and (Path(p).name in ("site-packages", "dist-packages")
                                              or any(Path(p).is_relative_to(q) for q in prefixes))]
    wanted = ["/usr", *prefixes, *packages, *sysconfig.get_paths().values(), PACKAGE,
              *[data for data in [_data_folder()] if data]]
    real = {os.path.realpath(p) for p in wanted if os.path.exists(p)}
    return sorted(p for p in real if not any(p != q and Path(p).is_relative_to(q) for q in real))


def _parents(paths: list[str]) -> list[str]:
    """The folders above ``paths`` that bubblewrap must create, outermost first."""
    parents = {str(parent) for path in paths for parent in Path(path).parents}
    return sorted(parents - {"/", str(INSIDE_TMP)}, key=lambda p: (p.count("/"), p))


def _bwrap_options() -> list[str]:
    """Namespaces, /dev, /proc, a capped /tmp, the system links and the allow-listed paths."""
    options = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
               "--unshare-cgroup-try", "--die-with-parent", "--new-session", "--dev", "/dev",
               "--proc", "/proc", "--perms", "1777", "--size", str(TMP_MB * 2 ** 20),
               "--tmpfs", str(INSIDE_TMP)]
    for link in SYSTEM_LINKS:
        if os.path.islink(link):
            options += ["--symlink", os.readlink(link), link]
    paths = _bound_paths()
    for parent in _parents(paths):
        options += ["--perms", "0755", "--dir", parent]
    for path in paths:
        options += ["--ro-bind", path, path]
    return [*options, "--chdir", str(INSIDE_TMP)]


def runner_env(root: Path, threads: int) -> dict[str, str]:
    """A minimal environment (none of the instructor's variables): fast, offline, local."""
    data = _data_folder()
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": str(threads),
            "HOME": str(root / "home"), "TMPDIR": str(root), "CVAE_FAST": "1",
            "CVAE_OFFLINE": "1", "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(root / "matplotlib"),
            "CVAE_CACHE_DIR": str(root / "checkpoints"),
            "CVAE_DATA_DIR": str(data if data else root / "data")}


def runner_argv() -> list[str]:
    """The runner's command line: this Python, isolated from the environment and the cwd."""
    return [_python_executable(), "-I", "-c", BOOT]


def _cannot_start(reason: object) -> Sandbox:
    """No sandbox: bubblewrap is there but cannot start Python, for ``reason``."""
    return Sandbox(None, f"bubblewrap cannot start Python in the sandbox ({reason}); make bwrap "
                         "work here (it needs unprivileged user namespaces, or root)")


def find_sandbox() -> Sandbox:
    """Bubblewrap if it is installed and can start Python here; otherwise why not and the fix."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Sandbox(None, "bubblewrap (bwrap) is not installed; install it "
                             "(apt-get install -y bubblewrap)")
    probe = Sandbox(bwrap)
    argv = [_python_executable(), "-I", "-c",
            "import importlib.util, sys; sys.exit(importlib.util.find_spec('cvae_lib') is None)"]
    try:
        result = subprocess.run(probe.command(argv, FIRST_UID), capture_output=True, text=True,
                                timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return _cannot_start(err)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["cvae_lib cannot be imported"])[-1]
        return _cannot_start(reason)
    problem = _group_problem()
    return Sandbox(bwrap, grouped=not problem, no_groups=problem or Sandbox.no_groups)
