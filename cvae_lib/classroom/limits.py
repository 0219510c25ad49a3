"""Each student's server in its own cgroup: a memory cap, a CPU share, a process cap.

Introduced in the book's hub guide. The kernel enforces the caps, not Python: the hub makes a
cgroup per student with libcgroup's tools (Debian's ``cgroup-tools``: ``cgcreate``, ``cgset``,
``cgexec``, ``cgdelete``), starts the student's server through ``cgexec`` so that everything it
starts (kernels, terminals, ``setsid`` daemons) is in that group, and at the server's stop
freezes the group, kills every process in it and removes it. A process cannot leave its group:
only root may write another group's task list. The grader puts each submission in a group of
the same kind below another parent, with a CPU quota as well (``grading/sandbox.py``).
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
PERIOD_US = 100_000  # the CPU cap's period: a capped group runs cpus x 100 ms of each 100 ms


@dataclass(frozen=True)
class Caps:
    """What one student's server and everything it starts may use."""

    memory: str = "2G"  # RAM and swap together; the course needs about 1 GB (see the guide)
    cpu_shares: int = 1024  # equal weights: under contention each student gets the same CPU
    processes: int = 512  # tasks (threads count too): the server and a kernel use about 80
    cpus: float = 0.0  # cores it may use at most, even on an idle machine; 0: no such cap

    @property
    def memory_bytes(self) -> int:
        """The memory cap in bytes."""
        return to_bytes(self.memory)

    def describe(self) -> str:
        """One line for the instructor: the caps in force."""
        cores = f", at most {self.cpus:g} cores" if self.cpus else ""
        return (f"memory {self.memory} (RAM and swap), CPU weight {self.cpu_shares} "
                f"(equal shares){cores}, {self.processes} processes and threads")


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


def group_name(user: str, parent: str = PARENT) -> str:
    """The cgroup path of ``user``'s server (or ``parent``'s other group), below every root."""
    return f"{parent}/{user}"


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


def create_group(user: str, group: str | None, caps: Caps, parent: str = PARENT) -> str:
    """Make ``user``'s cgroup with ``caps``; only they may join it, only root may change it.

    With ``group`` None, ``user`` is only a name (the grader's numeric uids have no account)
    and only root may join: the grader starts ``cgexec`` as root.
    """
    name, controllers = group_name(user, parent), ",".join(CONTROLLERS)
    stop_group(user, parent=parent)  # a group left by a crash: nothing of it survives
    owner = ["-t", f"{user}:{group}"] if group is not None else []
    _run("cgcreate", "-a", "root:root", *owner, "-g", f"{controllers}:{name}")
    absent = [c for c in CONTROLLERS if not (CGROUP_ROOT / c / name / "tasks").is_file()]
    if absent:  # cgcreate can fail with exit status 0
        raise RuntimeError(f"cgcreate made no {', '.join(absent)} group {name} for {user}")
    limit = str(caps.memory_bytes)
    swap = CGROUP_ROOT / "memory" / name / "memory.memsw.limit_in_bytes"
    settings = ["-r", f"memory.limit_in_bytes={limit}", "-r", f"cpu.shares={caps.cpu_shares}",
                "-r", f"pids.max={caps.processes}"]
    if swap.exists():  # swap accounting on: cap RAM and swap together
        settings += ["-r", f"memory.memsw.limit_in_bytes={limit}"]
    if caps.cpus:  # shares only weigh groups against each other; a quota caps even when idle
        settings += ["-r", f"cpu.cfs_quota_us={round(caps.cpus * PERIOD_US)}",
                     "-r", f"cpu.cfs_period_us={PERIOD_US}"]
    _run("cgset", *settings, name)
    return name


def wrap(user: str, argv: list[str], parent: str = PARENT) -> list[str]:
    """``argv`` started inside ``user``'s cgroup (run as the student: cgexec joins, then execs)."""
    controllers, name = ",".join(CONTROLLERS), group_name(user, parent)
    return [shutil.which("cgexec") or "cgexec", "-g", f"{controllers}:{name}", *argv]


def processes(user: str, parent: str = PARENT) -> list[int]:
    """The process ids in ``user``'s cgroup now (empty when it has none or does not exist)."""
    procs = CGROUP_ROOT / "pids" / group_name(user, parent) / "cgroup.procs"
    try:
        return [int(pid) for pid in procs.read_text().split()]
    except FileNotFoundError:
        return []


def stop_group(user: str, timeout: float = 10.0, parent: str = PARENT) -> None:
    """Kill every process in ``user``'s cgroup (frozen first, so none can fork away), remove it."""
    name = group_name(user, parent)
    folder = CGROUP_ROOT / "freezer" / name
    if not folder.is_dir():
        return
    state = folder / "freezer.state"
    state.write_text("FROZEN")
    deadline = time.monotonic() + timeout
    while processes(user, parent) and time.monotonic() < deadline:
        for pid in processes(user, parent):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        state.write_text("THAWED")  # a frozen process dies of SIGKILL once it is thawed
        time.sleep(0.05)
        state.write_text("FROZEN")
    state.write_text("THAWED")
    if processes(user, parent):
        raise RuntimeError(f"processes {processes(user, parent)} of {user} survived SIGKILL "
                           f"for {timeout:.0f} s; their cgroup {name} is kept")
    for controller in CONTROLLERS:  # one at a time: cgdelete -g a,b:... removes only a's
        if (CGROUP_ROOT / controller / name).is_dir():
            _run("cgdelete", "-g", f"{controller}:{name}")


def usage(user: str, parent: str = PARENT) -> dict[str, int]:
    """The group's peak memory (bytes) and tasks, the kernel's kills and refusals at its caps."""
    memory = CGROUP_ROOT / "memory" / group_name(user, parent)
    pids = CGROUP_ROOT / "pids" / group_name(user, parent)
    events = (pids / "pids.events").read_text().split()
    peak = pids / ("pids.peak" if (pids / "pids.peak").exists() else "pids.current")
    return {"memory_peak": int((memory / "memory.max_usage_in_bytes").read_text()),
            "tasks_peak": int(peak.read_text()),
            "memory_cap_hits": int((memory / "memory.failcnt").read_text()),
            "oom_kills": oom_kills(user, parent),
            "process_refusals": int(events[events.index("max") + 1])}


def oom_kills(user: str, parent: str = PARENT) -> int:
    """How many processes the kernel killed for the group's memory cap (0 where not counted)."""
    control = CGROUP_ROOT / "memory" / group_name(user, parent) / "memory.oom_control"
    try:
        lines = control.read_text().splitlines()
    except FileNotFoundError:  # the group is already gone
        return 0
    for line in lines:
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return int(value)
    return 0
