"""Each student's server in its own cgroup: a memory cap, a CPU share, a process cap.

Introduced in the book's hub guide. The kernel enforces the caps, not Python: the hub makes a
cgroup per student with libcgroup's tools (Debian's ``cgroup-tools``: ``cgcreate``, ``cgset``,
``cgexec``, ``cgdelete``), starts the student's server through ``cgexec`` so that everything it
starts (kernels, terminals, ``setsid`` daemons) is in that group, and at the server's stop
freezes the group, kills every process in it and removes it. A process cannot leave its group:
only root may write another group's task list.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PARENT = "cvae-hub"  # every student's group lives under this one
CONTROLLERS = ("memory", "cpu", "pids", "freezer")
TOOLS = ("cgcreate", "cgset", "cgexec", "cgdelete")
SIZE = re.compile(r"(\d+(?:\.\d+)?)([KMG]?)")
UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}


@dataclass(frozen=True)
class Caps:
    """What one student's server and everything it starts may use."""

    memory: str = "2G"  # RAM and swap together; the course needs about 1 GB (see the guide)
    cpu_shares: int = 1024  # equal weights: under contention each student gets the same CPU
    processes: int = 512  # tasks (threads count too): the server and a kernel use about 80

    @property
    def memory_bytes(self) -> int:
        """The memory cap in bytes."""
        return to_bytes(self.memory)

    def describe(self) -> str:
        """One line for the instructor: the caps in force."""
        return (f"memory {self.memory} (RAM and swap), CPU weight {self.cpu_shares} "
                f"(equal shares), {self.processes} processes and threads")


def to_bytes(size: str) -> int:
    """``'2G'``, ``'1536M'`` or a number of bytes, as bytes; a clear error otherwise."""
    match = SIZE.fullmatch(str(size).strip().upper().removesuffix("B"))
    if match is None or float(match[1]) <= 0:
        raise ValueError(f"not a memory size: {size!r}; write it like 2G, 1536M or 800000000")
    return int(float(match[1]) * UNITS[match[2]])


def caps_from_env(env: dict[str, str] | None = None) -> Caps:
    """The caps set by ``CVAE_HUB_MEMORY``, ``CVAE_HUB_CPU_SHARES``, ``CVAE_HUB_PROCESSES``."""
    env = os.environ if env is None else env
    default = Caps()
    caps = Caps(memory=env.get("CVAE_HUB_MEMORY", default.memory),
                cpu_shares=_positive(env, "CVAE_HUB_CPU_SHARES", default.cpu_shares),
                processes=_positive(env, "CVAE_HUB_PROCESSES", default.processes))
    caps.memory_bytes  # noqa: B018 - refuse a bad size now, not at the first spawn
    return caps


def _positive(env: dict[str, str], name: str, default: int) -> int:
    """The whole number ``env[name]`` (``default`` if unset); a clear error if it is not one."""
    text = env.get(name, str(default))
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{name}={text!r} is not a whole number above 0")
    return int(text)


def group_name(user: str) -> str:
    """The cgroup path of ``user``'s server, below every controller's root."""
    return f"{PARENT}/{user}"


def problems() -> list[str]:
    """What stops this machine from capping each student, each with what to do instead."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return [f"{', '.join(missing)} not found: install Debian's cgroup-tools "
                f"(`apt-get install cgroup-tools`) so that each student's memory, CPU and "
                f"processes are capped by the kernel"]
    absent = [name for name in CONTROLLERS if not (CGROUP_ROOT / name / "tasks").is_file()]
    if absent:
        return [f"the cgroup v1 controllers {', '.join(absent)} are not mounted under "
                f"{CGROUP_ROOT}: on a systemd machine use jupyterhub-systemdspawner instead "
                f"(see the hub guide)"]
    return []


def _run(*argv: str) -> None:
    """Run one libcgroup tool; raise with its own message if it fails."""
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.stdout}")


def create_group(user: str, group: str, caps: Caps) -> str:
    """Make ``user``'s cgroup with ``caps``; only they may join it, only root may change it."""
    name, controllers = group_name(user), ",".join(CONTROLLERS)
    stop_group(user)  # a group left by a crash: nothing of it survives into the new server
    _run("cgcreate", "-a", "root:root", "-t", f"{user}:{group}", "-g", f"{controllers}:{name}")
    absent = [c for c in CONTROLLERS if not (CGROUP_ROOT / c / name / "tasks").is_file()]
    if absent:  # cgcreate can fail with exit status 0
        raise RuntimeError(f"cgcreate made no {', '.join(absent)} group {name} for {user}")
    limit = str(caps.memory_bytes)
    swap = CGROUP_ROOT / "memory" / name / "memory.memsw.limit_in_bytes"
    settings = ["-r", f"memory.limit_in_bytes={limit}", "-r", f"cpu.shares={caps.cpu_shares}",
                "-r", f"pids.max={caps.processes}"]
    if swap.exists():  # swap accounting on: cap RAM and swap together
        settings += ["-r", f"memory.memsw.limit_in_bytes={limit}"]
    _run("cgset", *settings, name)
    return name


def wrap(user: str, argv: list[str]) -> list[str]:
    """``argv`` started inside ``user``'s cgroup (run as the student: cgexec joins, then execs)."""
    controllers = ",".join(CONTROLLERS)
    return [shutil.which("cgexec") or "cgexec", "-g", f"{controllers}:{group_name(user)}", *argv]


def processes(user: str) -> list[int]:
    """The process ids in ``user``'s cgroup now (empty when it has none or does not exist)."""
    procs = CGROUP_ROOT / "pids" / group_name(user) / "cgroup.procs"
    try:
        return [int(pid) for pid in procs.read_text().split()]
    except FileNotFoundError:
        return []


def stop_group(user: str, timeout: float = 10.0) -> None:
    """Kill every process in ``user``'s cgroup (frozen first, so none can fork away), remove it."""
    folder = CGROUP_ROOT / "freezer" / group_name(user)
    if not folder.is_dir():
        return
    state = folder / "freezer.state"
    state.write_text("FROZEN")
    deadline = time.monotonic() + timeout
    while processes(user) and time.monotonic() < deadline:
        for pid in processes(user):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        state.write_text("THAWED")  # a frozen process dies of SIGKILL once it is thawed
        time.sleep(0.05)
        state.write_text("FROZEN")
    state.write_text("THAWED")
    if processes(user):
        raise RuntimeError(f"processes {processes(user)} of {user} survived SIGKILL for "
                           f"{timeout:.0f} s; their cgroup {group_name(user)} is kept")
    for controller in CONTROLLERS:  # one at a time: cgdelete -g a,b:... removes only a's
        if (CGROUP_ROOT / controller / group_name(user)).is_dir():
            _run("cgdelete", "-g", f"{controller}:{group_name(user)}")


def usage(user: str) -> dict[str, int]:
    """The group's peak memory (bytes) and tasks, the kernel's kills and refusals at its caps."""
    memory = CGROUP_ROOT / "memory" / group_name(user)
    pids = CGROUP_ROOT / "pids" / group_name(user)
    events = (pids / "pids.events").read_text().split()
    peak = pids / ("pids.peak" if (pids / "pids.peak").exists() else "pids.current")
    return {"memory_peak": int((memory / "memory.max_usage_in_bytes").read_text()),
            "tasks_peak": int(peak.read_text()),
            "memory_cap_hits": int((memory / "memory.failcnt").read_text()),
            "oom_kills": _oom_kills(memory),
            "process_refusals": int(events[events.index("max") + 1])}


def _oom_kills(memory: Path) -> int:
    """How many processes the kernel killed for the group's memory cap (0 where not counted)."""
    for line in (memory / "memory.oom_control").read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0
