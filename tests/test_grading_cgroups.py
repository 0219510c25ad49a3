"""Each submission in a cgroup of its own (as root, with cgroup-tools): a CPU hog does not slow
the classmate graded beside it, children that together pass the memory limit end their
submission, and nothing of a submission (process or group) outlives it.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import threading
import uuid
from pathlib import Path

import nbformat
import pytest
from test_grading import SOLUTION, printed_rows, skip_without_sandbox
from test_grading_sandbox import STUDENT_COPY

from cvae_lib.classroom import limits as cgroups
from cvae_lib.classroom.grading import grade as grading
from cvae_lib.classroom.grading import run as submission_run
from cvae_lib.classroom.grading import sandbox

HOG_SECONDS = 30  # the hog's time limit, and the honest submission's
MARKER = f"hog{uuid.uuid4().hex[:8]}"  # the hog's processes name themselves this (comm)
# 62 children, each in a session of its own, spinning; then the parent spins too. Placed
# before the setup's imports, so it is spinning while its classmate still starts.
HOG = ("import os\nopen('/proc/self/comm', 'w').write(%r)\nfor _ in range(62):\n    try:\n"
       "        if os.fork() == 0:\n            os.setsid()\n            while True:\n"
       "                pass\n    except OSError:\n        break\nwhile True:\n    pass\n"
       % MARKER)
# A sleeper in a session of its own, its output elsewhere: its shell can end before it.
DAEMON = "setsid sleep 300 >/dev/null 2>&1 & echo $!"
# Three fresh Pythons, each holding 2 GiB (under the 4096 MiB each may map), all kept alive.
MEMORY_HOG = ("import subprocess, sys\nheld = [subprocess.Popen([sys.executable, '-I', '-c', "
              "'import time; b = b\"1\" * 2 ** 31; time.sleep(120)']) for _ in range(3)]\n"
              "for child in held:\n    child.wait()\n")


def grouped_sandbox() -> sandbox.Sandbox:
    """The grader's sandbox, or a skip saying why a submission gets no cgroup here."""
    found = sandbox.find_sandbox()
    skip_without_sandbox(found.problem)
    if not found.grouped:
        pytest.skip(f"no cgroup per submission here: {found.no_groups}")
    return found


def hostile(code: str) -> nbformat.NotebookNode:
    """The 06 student copy with ``code`` at the start of its setup cell."""
    nb = nbformat.read(STUDENT_COPY, as_version=4)
    setup = next(cell for cell in nb.cells if cell.cell_type == "code")
    setup.source = f"{code}\n{setup.source}"
    return nb


def grade(folder: Path, notebooks: dict[str, nbformat.NotebookNode], *options: str) -> dict:
    """Rows of the class of ``notebooks`` graded in ``folder`` as root would grade it (06)."""
    folder.mkdir()
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / name)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(io.StringIO()):
        code = grading.main([str(folder), "--exercise", "06", "--out",
                             str(folder.parent / f"{folder.name}-grades"), *options])
    assert code == 0, printed.getvalue()
    return printed_rows(printed.getvalue())


def running(pid: int) -> bool:
    """True while process ``pid`` runs (a zombie waiting to be reaped does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def marked() -> list[int]:
    """The running processes that named themselves ``MARKER``, on the whole machine."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == MARKER and running(int(comm.parent.name)):
                found.append(int(comm.parent.name))
    return found


def hog_cpu_caps() -> list[tuple[int, int, int]]:
    """(quota, period, times throttled) of each CPU cgroup the hog's processes run in now (a
    process being killed is already back in the root group: it is left out)."""
    found = set()
    for pid in marked():
        with contextlib.suppress(OSError, StopIteration):
            line = next(line for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
                        if line.split(":")[1].split(",").count("cpu"))
            path = line.split(":", 2)[2].strip("/")
            if not path:
                continue
            group = cgroups.CGROUP_ROOT / "cpu" / path
            stat = dict(line.split() for line in (group / "cpu.stat").read_text().splitlines())
            found.add((int((group / "cpu.cfs_quota_us").read_text()),
                       int((group / "cpu.cfs_period_us").read_text()), int(stat["nr_throttled"])))
    return sorted(found)


def our_groups() -> list[Path]:
    """This grader's submission cgroups still there, under any controller."""
    return [group for controller in cgroups.CONTROLLERS
            for group in (cgroups.CGROUP_ROOT / controller / sandbox.GROUPS).glob(
                f"{os.getpid()}-*")]


@pytest.fixture(scope="module")
def hogged(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The correct solution graded alone, then beside the CPU hog (2 jobs on the same caps);
    the most hog processes seen at once, and those and the groups left once grading ends."""
    grouped_sandbox()
    base = tmp_path_factory.mktemp("hogged")
    solution = nbformat.read(SOLUTION, as_version=4)
    options = ("--timeout", str(HOG_SECONDS), "--jobs", "2")
    alone = grade(base / "alone", {"correct.ipynb": solution}, *options)
    seen, caps, done = [0], [], threading.Event()

    def count() -> None:
        """Sample how many hog processes run and their CPU cap, until grading ends."""
        while not done.wait(0.5):
            seen[0] = max(seen[0], len(marked()))
            caps.extend(hog_cpu_caps())

    sampler = threading.Thread(target=count, daemon=True)
    sampler.start()
    try:
        beside = grade(base / "beside", {"correct.ipynb": solution, "hog.ipynb": hostile(HOG)},
                       *options)
    finally:
        done.set()
        sampler.join()
    return {"alone": alone, "beside": beside, "most_seen": seen[0], "caps": caps,
            "left": marked(), "groups": our_groups()}


def test_a_cpu_hog_is_held_to_its_share_of_the_cores(hogged: dict) -> None:
    """The kernel holds the hog to its one core of two (its group's quota, and it was
    throttled), so the classmate beside it still gets OK; the hog runs out of time. Per-process
    limits alone let it take the machine (5.0 s alone, 12.9 s beside it on a 2-core AMD EPYC;
    a timeout under heavier load): the seconds vary with the machine's load, so the test reads
    the kernel's enforcement, not a stopwatch."""
    ok = [submission_run.OK] * 3
    assert hogged["alone"]["correct.ipynb"][1:] == hogged["beside"]["correct.ipynb"][1:] == ok
    assert hogged["beside"]["hog.ipynb"][1:] == [submission_run.TIMED_OUT] * 3
    assert hogged["most_seen"] >= 20, "the hog hardly forked: it tested nothing"
    cores = max(1, (os.cpu_count() or 1) // 2)  # --jobs 2 splits the cores
    assert hogged["caps"], "no sample found the hog's CPU group"
    assert {(quota, period) for quota, period, _ in hogged["caps"]} == {
        (cores * cgroups.PERIOD_US, cgroups.PERIOD_US)}
    assert max(throttled for *_, throttled in hogged["caps"]) > 0


def test_nothing_of_a_submission_outlives_it(hogged: dict) -> None:
    """The hog's children left their session and their parent, yet none survives its end,
    and every submission's cgroup is removed."""
    assert hogged["left"] == []
    assert hogged["groups"] == []


def test_children_over_the_memory_limit_together_end_their_submission(tmp_path: Path) -> None:
    """Each child fits under the per-process cap, but together they pass the submission's
    4096 MiB: the kernel kills one, the grader ends the rest (the old grader let them hold
    6 GB until the time limit: a timed-out row)."""
    grouped_sandbox()
    rows = grade(tmp_path / "class", {"memory.ipynb": hostile(MEMORY_HOG)},
                 "--memory-mb", "4096", "--timeout", "60")
    assert rows["memory.ipynb"][1:] == [submission_run.ENDED] * 3
    assert our_groups() == []


def test_a_daemon_in_a_submission_group_dies_with_it() -> None:
    """Outside bubblewrap's own process namespace too, a process that left its session and
    its parent is killed when the submission's lease ends, and its group removed."""
    found = grouped_sandbox()
    with found.lease(sandbox.Limits(10.0)) as uid:
        started = subprocess.run(cgroups.wrap(sandbox.group_of(uid), ["sh", "-c", DAEMON],
                                              sandbox.GROUPS),
                                 capture_output=True, text=True, check=True)
        daemon = int(started.stdout)
        assert daemon in cgroups.processes(sandbox.group_of(uid), sandbox.GROUPS)
    assert not running(daemon)
    assert our_groups() == []


@pytest.mark.parametrize("grouped, says", [
    (True, "in a cgroup of its own: the kernel caps the memory of all its processes together"),
    (False, "memory and process limits per process only (cgcreate not found: install"),
], ids=["grouped", "not grouped"])
def test_the_sandbox_note_says_where_the_caps_hold(grouped: bool, says: str) -> None:
    """The report's sandbox line says whether the caps hold per submission or per process."""
    found = sandbox.Sandbox("/usr/bin/bwrap", grouped=grouped,
                            no_groups="cgcreate not found: install Debian's cgroup-tools")
    assert says in found.note


def test_without_cgroup_tools_the_limits_hold_per_process_and_the_note_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A libcgroup tool missing: still sandboxed, no groups, and the note says why."""
    skip_without_sandbox(sandbox.find_sandbox().problem)
    monkeypatch.setattr(cgroups, "TOOLS", (*cgroups.TOOLS, "cgabsent"))
    found = sandbox.find_sandbox()
    assert found.bwrap and not found.grouped
    assert "memory and process limits per process only (" in found.note
    assert ("cgabsent not found: install Debian's cgroup-tools" in found.note
            if os.geteuid() == 0 else "run as root for a cgroup per submission" in found.note)
