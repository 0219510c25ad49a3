"""The kernel a submission runs in: bubblewrap (or, by the instructor's choice, none), rlimits.

Each kernel starts in a fresh temporary folder with a minimal environment and a cap on its
address space; in bubblewrap it also sees a read-only system, no home folders and no network,
and can write only inside its temporary folder. The folders Python needs are bound in by their
real paths, so a venv reached through a symlink into /tmp still starts.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from traitlets import List, Unicode
from traitlets.config import Config

REPO = Path(__file__).resolve().parents[3]
# Starts ipykernel after capping the address space (argv: limit in bytes, then -f FILE).
LAUNCH = ("import resource, sys\n"
          "limit = int(sys.argv.pop(1))\n"
          "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n"
          "sys.path = [p for p in sys.path if p]\n"
          "from ipykernel.kernelapp import launch_new_instance\n"
          "launch_new_instance()\n")
HIDDEN = ("/tmp", "/home", "/root")  # replaced by empty folders in the sandbox


@dataclass(frozen=True)
class Limits:
    """What one submission may use: seconds of running cells, MiB of address space, threads."""

    seconds: float
    memory_mb: int = 8192
    threads: int = 1  # torch's threads: the cores divided among the kernels running at once


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel started by a fixed command line (the sandbox wrapped around ipykernel)."""

    launch_argv = List(Unicode()).tag(config=True)

    @property
    def kernel_spec(self) -> KernelSpec:
        """The spec of the sandboxed kernel, whatever kernel the notebook names."""
        return KernelSpec(argv=list(self.launch_argv), display_name="grading sandbox",
                          language="python")


@dataclass(frozen=True)
class Sandbox:
    """How kernels are isolated: bubblewrap, or only the limits (``problem`` says why)."""

    bwrap: str | None
    problem: str = ""  # why bubblewrap cannot run here and how to fix it; "" if not tried

    @property
    def note(self) -> str:
        """The report's line on how student code was isolated."""
        if self.bwrap is None:
            return ("NO SANDBOX (--no-sandbox): student code runs with the time and memory "
                    "limits only, and can reach the network and write where you can.")
        return ("Sandbox: bubblewrap (read-only system, home folders and /tmp hidden, no "
                "network, writable temporary folder only).")

    def wrap(self, root: Path, work: Path, argv: list[str]) -> list[str]:
        """``argv`` run inside the sandbox, seeing ``root`` as its only writable folder."""
        if self.bwrap is None:
            return argv
        return [self.bwrap, *_bwrap_options(root, work), *argv]


def _python_executable() -> str:
    """This Python by its real folder: a venv symlinked into a hidden /tmp still starts.

    Only the folder is resolved: the venv's ``bin/python`` is itself a link to the base
    Python, and Python finds its venv by the ``pyvenv.cfg`` beside the path it was started by.
    """
    folder, name = os.path.split(sys.executable)
    return os.path.join(os.path.realpath(folder), name)


def _is_hidden(path: str) -> bool:
    """True for a folder below /tmp, /home or /root (not one of them itself)."""
    return any(Path(path).is_relative_to(hidden) and path != hidden for hidden in HIDDEN)


def _kept_paths() -> list[str]:
    """Real paths of what the kernel needs where /tmp and home folders are hidden.

    The repository, the venv, its site-packages, and the base Python the venv links to; a
    folder inside another of them is bound with it.
    """
    paths = [REPO, sys.prefix, sys.base_prefix, _python_executable(),
             Path(os.path.realpath(sys.executable)).parent.parent,
             *(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))]
    real = {os.path.realpath(path) for path in paths}
    return sorted(p for p in real if _is_hidden(p)
                  and not any(p != q and Path(p).is_relative_to(q) for q in real))


def _bwrap_options(root: Path, work: Path) -> list[str]:
    """Read-only system, home folders and /tmp hidden, no network, no capabilities."""
    options = ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for hidden in HIDDEN:
        if Path(hidden).is_dir():
            options += ["--tmpfs", hidden]
    for kept in _kept_paths():
        options += ["--ro-bind", kept, kept]
    # In its own PID namespace the kernel's parent is PID 1, which ipykernel would take for
    # an orphaned kernel: --die-with-parent ends it with the grader instead.
    return [*options, "--bind", str(root), str(root), "--chdir", str(work), "--unshare-all",
            "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--unsetenv", "JPY_PARENT_PID"]


def _cannot_start(reason: object) -> Sandbox:
    """No sandbox: bubblewrap is there but cannot start Python, for ``reason``."""
    return Sandbox(None, f"bubblewrap cannot start Python in the sandbox ({reason}); make bwrap "
                         "work here (it needs unprivileged user namespaces)")


def find_sandbox() -> Sandbox:
    """Bubblewrap if it is installed and can start Python here; otherwise why not and the fix."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Sandbox(None, "bubblewrap (bwrap) is not installed; install it "
                             "(apt-get install -y bubblewrap)")
    with tempfile.TemporaryDirectory(prefix="cvae-grade-probe-") as tmp:
        root = Path(os.path.realpath(tmp))
        argv = [bwrap, *_bwrap_options(root, root), _python_executable(), "-c",
                "import ipykernel"]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            return _cannot_start(err)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no message"])[-1]
        return _cannot_start(reason)
    return Sandbox(bwrap)


def make_workspace(root: Path, notebook: Path) -> Path:
    """Lay out ``root`` for one kernel, with a copy of ``notebook``; return its work folder."""
    work = root / "work"
    for folder in (work, root / "run", root / "home", root / "tmp"):
        folder.mkdir()
    _copy_font_cache(root / "home" / ".matplotlib")
    shutil.copyfile(notebook, work / notebook.name)
    return work


def _data_folder(root: Path) -> Path:
    """The instructor's MNIST folder when it is prepared, else a scratch one per submission."""
    prepared = Path(os.environ.get("CVAE_DATA_DIR", REPO / "data"))
    return prepared if (prepared / "MNIST" / "raw").is_dir() else root / "data"


def _copy_font_cache(target: Path) -> None:
    """Give the kernel matplotlib's font list, which it would otherwise rebuild (seconds)."""
    cache = Path(os.environ.get("MPLCONFIGDIR") or Path(os.environ.get(
        "XDG_CACHE_HOME") or Path.home() / ".cache") / "matplotlib")
    target.mkdir(parents=True, exist_ok=True)
    for fontlist in cache.glob("fontlist-*.json"):
        shutil.copyfile(fontlist, target / fontlist.name)


def kernel_env(root: Path, threads: int) -> dict[str, str]:
    """A minimal environment (none of the instructor's variables): fast, offline, local."""
    home = root / "home"
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "OMP_NUM_THREADS": str(threads),
            "HOME": str(home), "TMPDIR": str(root / "tmp"), "PYTHONPATH": str(REPO),
            "CVAE_FAST": "1", "CVAE_OFFLINE": "1", "MPLBACKEND": "Agg",
            "CVAE_CACHE_DIR": str(root / "checkpoints"), "CVAE_DATA_DIR": str(_data_folder(root)),
            "MPLCONFIGDIR": str(home / ".matplotlib"), "IPYTHONDIR": str(home / ".ipython")}


def sandboxed_client(nb: nbformat.NotebookNode, root: Path, work: Path, limits: Limits,
                     sandbox: Sandbox) -> NotebookClient:
    """A notebook client whose kernel runs sandboxed and talks over IPC sockets in ``root``."""
    launch = [_python_executable(), "-c", LAUNCH, str(limits.memory_mb * 2 ** 20),
              "-f", "{connection_file}"]
    config = Config({"SandboxedKernelManager": {
        "launch_argv": sandbox.wrap(root, work, launch), "transport": "ipc",
        "connection_file": str(root / "run" / "kernel.json")}})
    return NotebookClient(nb, config=config, kernel_manager_class=SandboxedKernelManager,
                          allow_errors=True, shutdown_kernel="immediate",
                          startup_timeout=max(1, min(60, math.ceil(limits.seconds))))
