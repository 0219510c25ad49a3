"""How many students one class server holds: N students opening 04 at once, N training at once.

Run: ``.venv/bin/python benchmarks/bench_hub.py [--students 2,4,8]`` after ``make prepare``
(``--fast`` uses the tiny models of ``CVAE_FAST=1`` instead: the same architecture, so the
same work and memory per cell; ``--env OMP_WAIT_POLICY=PASSIVE`` adds a variable to every
kernel and training). Each simulated student is a kernel set up as the hub sets up a student's
server: an empty cache of their own, the prepared models read from the shared one.

1. Opening 04: N kernels start at once and each runs 04's cells as Run All does, up to its
   generation widget, then moves one slider. Printed per N: seconds from the start to each
   student's first redraw, the CPU seconds one opening costs against one student alone, the
   slowest against N openings' CPU time divided over the cores, and each kernel's memory
   after 04 while all N are open: resident (RSS), proportional (PSS: a page shared by k
   processes counts 1/k) and private (USS: the pages no other process has).
2. A student's JupyterLab server, idle after start, two at once: the same three figures.
3. Training at once: N trainings started together with cvae_lib's fair sharing of the cores
   (every student in one registry, as on the hub), against the same N with sharing switched
   off (the reference): the slowest student's seconds per epoch, and slowest / fastest.
4. The main job (``make demo``'s recipe) alone, then beside a kernel that executes 04 again
   and again: seconds per epoch and the slowdown.

Last, what that means for a 16-core, 64 GB server: the students it holds by memory (each
student's private memory, the shared pages once) and by CPU if the whole class opens 04
within a minute of each other.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
from jupyter_client.manager import start_new_kernel

from _common import machine
from bench_contention import seconds_per_epoch
from cvae_lib.classroom.hub import missing_models
from cvae_lib.data import data_dir
from cvae_lib.infra.storage import cache_dir

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "04_generation.ipynb"
WIDGET_CALL = "generation_widget(model"
MOVE = ("import time as _t\nw = {call}\n_s = _t.perf_counter()\n"
        "w.sliders[0].value = w.sliders[0].value + 0.5\n"
        "print('REDRAW_MS', (_t.perf_counter() - _s) * 1000)")
SERVER_CORES, SERVER_GB, OPEN_WITHIN_S = 16, 64, 60.0
TRAIN = ("import json; from cvae_lib.training import TrainConfig, train; "
         "_, h = train(TrainConfig(num_epochs={epochs}, train_limit={limit}), progress=False); "
         "print(json.dumps(h.seconds[-1] / len(h.seconds)))")
SERVER = ["-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
          "--IdentityProvider.token=bench", "--ServerApp.open_browser=False"]
EXTRA_ENV: dict[str, str] = {}  # --env KEY=VALUE: for every kernel, server and training


def cells_to_widget() -> list[str]:
    """04's code cells up to its generation widget, the widget cell made to move a slider."""
    cells = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells
             if c.cell_type == "code"]
    index = next(i for i, source in enumerate(cells) if WIDGET_CALL in source)
    return cells[:index] + [MOVE.format(call=cells[index].strip())]


def student_env(own_cache: Path, fast: bool) -> dict[str, str]:
    """A student's environment on the hub: the shared prepared cache, an own empty one."""
    env = {**os.environ, "CVAE_SHARED_CACHE_DIR": str(cache_dir()),
           "CVAE_CACHE_DIR": str(own_cache), "CVAE_OFFLINE": "1", "MPLBACKEND": "agg",
           **EXTRA_ENV}
    if fast:
        env["CVAE_FAST"] = "1"
    return env


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """Resident, proportional and private (unique) MB of process ``pid``, and its peak RSS."""
    rollup = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in
              Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]}
    status = Path(f"/proc/{pid}/status").read_text()
    peak = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return {"rss": rollup["Rss"], "pss": rollup["Pss"], "peak": peak / 1024,
            "uss": rollup["Private_Clean"] + rollup["Private_Dirty"]}


def run_cells(client: object, cells: list[str]) -> float | None:
    """Execute ``cells`` in a kernel; the slider's redraw milliseconds if a cell printed them."""
    redraw_ms = None
    for source in cells:
        outputs = []
        reply = client.execute_interactive(source, timeout=900, output_hook=outputs.append)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"a cell of 04 failed: {reply['content'].get('evalue')}")
        for msg in outputs:
            text = msg["content"].get("text", "")
            if "REDRAW_MS" in text:
                redraw_ms = float(text.split()[-1])
    return redraw_ms


def open_04(start: float, cells: list[str], env: dict[str, str],
            all_open: threading.Barrier | None = None) -> dict[str, float]:
    """One student: a kernel runs ``cells``; seconds from ``start`` to the slider's redraw.

    Its memory is read once every student's kernel is open (``all_open``), as on a hub.
    """
    manager, client = start_new_kernel(env=env, cwd=str(NOTEBOOK.parent),
                                       stderr=subprocess.DEVNULL)
    try:
        redraw_ms = run_cells(client, cells)
        seconds = time.perf_counter() - start
        pid = manager.provisioner.process.pid
        cpu = cpu_seconds(pid)
        if all_open is not None:
            all_open.wait()
        record = {"seconds": seconds, "redraw_ms": redraw_ms, "cpu_s": cpu, **memory_mb(pid)}
        if all_open is not None:
            all_open.wait()  # nobody leaves before every kernel is measured
        return record
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def class_opens_04(n: int, fast: bool) -> list[dict[str, float]]:
    """``n`` students open 04 at the same moment; one record per student."""
    cells = cells_to_widget()
    all_open = threading.Barrier(n)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(n) as pool:
        start = time.perf_counter()
        futures = [pool.submit(open_04, start, cells, student_env(Path(tmp) / f"s{i}", fast),
                               all_open) for i in range(n)]
        records = [f.result() for f in futures]
        trained = list(Path(tmp).rglob("*.pt"))
    if trained:
        raise RuntimeError(f"a student trained a course model: {trained}")
    return records


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_server(port: int, child: subprocess.Popen) -> None:
    """Wait until the server on ``port`` answers with JupyterLab's page."""
    for _ in range(240):
        if child.poll() is not None:
            raise RuntimeError(f"a JupyterLab server exited with code {child.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token=bench", timeout=5)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"no JupyterLab server answered on port {port}")


def servers_memory(n: int = 2) -> list[dict[str, float]]:
    """Memory of ``n`` JupyterLab servers running at once, each idle after serving its page."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HOME": home, "JUPYTER_RUNTIME_DIR": home, **EXTRA_ENV}
        ports = [_free_port() for _ in range(n)]
        children = [subprocess.Popen([sys.executable, *SERVER, f"--ServerApp.port={port}"],
                                     cwd=home, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
                    for port in ports]
        try:
            for port, child in zip(ports, children):
                _wait_for_server(port, child)
            time.sleep(2)
            return [memory_mb(child.pid) for child in children]
        finally:
            for child in children:
                child.terminate()
                child.wait(timeout=30)


def beside_a_notebook(epochs: int) -> tuple[float, float]:
    """The main job's seconds per epoch alone, and while a kernel executes 04 again and again."""
    alone = seconds_per_epoch(start_training(epochs, None, True, limit=None))
    cells = cells_to_widget()
    with tempfile.TemporaryDirectory() as tmp:
        env = student_env(Path(tmp), False)
        training = start_training(epochs, None, True, limit=None)
        while training.poll() is None:
            open_04(time.perf_counter(), cells, env)
        return alone, seconds_per_epoch(training)


def start_training(epochs: int, registry: Path | None, share: bool,
                   limit: int | None = 12000) -> subprocess.Popen:
    """A child process training ``epochs`` epochs on ``limit`` digits (None: all of them)."""
    env = {**os.environ, "CVAE_SHARE_CORES": "1" if share else "0", **EXTRA_ENV}
    if registry is not None:
        env["CVAE_TRAININGS_DIR"] = str(registry)
    return subprocess.Popen([sys.executable, "-c", TRAIN.format(epochs=epochs, limit=limit)],
                            stdout=subprocess.PIPE, text=True, env=env)


def class_trains(n: int, share: bool, epochs: int, registry: Path | None) -> list[float]:
    """``n`` trainings started together; each one's seconds per epoch."""
    children = [start_training(epochs, registry, share) for _ in range(n)]
    return [seconds_per_epoch(child) for child in children]


def parse_args() -> argparse.Namespace:
    """The class sizes to simulate, and the mode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", default="2,4,8", help="comma-separated class sizes")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each training")
    parser.add_argument("--fast", action="store_true", help="the tiny models of CVAE_FAST=1")
    parser.add_argument("--no-trainings", action="store_true",
                        help="skip table 3, the N trainings at once")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="a variable for every kernel, server and training (repeatable)")
    args = parser.parse_args()
    try:
        args.sizes = sorted({int(s) for s in args.students.split(",")})
    except ValueError:
        parser.error(f"--students must be numbers separated by commas, not {args.students!r}")
    if not args.sizes or min(args.sizes) < 1 or max(args.sizes) > 16 or args.epochs < 1:
        parser.error("--students takes sizes from 1 to 16, --epochs at least 1")
    if any("=" not in pair for pair in args.env):
        parser.error("--env takes KEY=VALUE")
    EXTRA_ENV.update(pair.split("=", 1) for pair in args.env)
    if args.fast:
        os.environ["CVAE_FAST"] = "1"
    missing = missing_models(cache_dir(), data_dir())
    if missing:
        parser.error(f"the prepared cache {cache_dir()} lacks {', '.join(missing)}: run "
                     f"`make prepare` first (or `CVAE_FAST=1 make prepare` with --fast)")
    return args


def print_openings(sizes: list[int], fast: bool) -> dict[str, float]:
    """Table 1; returns the figures of one student alone and the largest class's worst ones."""
    alone = class_opens_04(1, fast)[0]
    cores = os.cpu_count() or 1
    print(f"\n1. Opening 04 up to its first slider redraw; one student alone: "
          f"{alone['seconds']:.1f} s, {alone['cpu_s']:.1f} CPU s, kernel RSS "
          f"{alone['rss']:.0f} MB, PSS {alone['pss']:.0f}, private {alone['uss']:.0f}")
    print(f"{'students':>8} {'median s':>9} {'slowest s':>10} {'CPU s each':>11} "
          f"{'CPU/alone':>10} {'slowest/(N*CPU alone/cores)':>28} {'RSS MB':>7} "
          f"{'PSS MB':>7} {'private MB':>11} {'peak RSS':>9} {'slider ms':>10}")
    worst = dict(alone)
    for n in sizes:
        records = class_opens_04(n, fast)
        slowest = max(r["seconds"] for r in records)
        cpu_each = statistics.median(r["cpu_s"] for r in records)
        top = {key: max(r[key] for r in records) for key in ("rss", "pss", "uss", "peak")}
        worst.update({key: max(worst[key], value) for key, value in top.items()},
                     cpu_s=cpu_each)
        print(f"{n:>8} {statistics.median(r['seconds'] for r in records):>9.1f} "
              f"{slowest:>10.1f} {cpu_each:>11.1f} {cpu_each / alone['cpu_s']:>9.2f}x "
              f"{slowest / (n * alone['cpu_s'] / cores):>27.2f}x {top['rss']:>7.0f} "
              f"{top['pss']:>7.0f} {top['uss']:>11.0f} {top['peak']:>9.0f} "
              f"{max(r['redraw_ms'] for r in records):>10.1f}")
    return worst


def print_servers() -> dict[str, float]:
    """Table 2; returns the larger server's figures."""
    servers = servers_memory()
    server = {key: max(s[key] for s in servers) for key in servers[0]}
    print(f"\n2. A student's JupyterLab server, idle, two at once: RSS {server['rss']:.0f} MB, "
          f"PSS {server['pss']:.0f} MB, private {server['uss']:.0f} MB")
    return server


def print_trainings(sizes: list[int], epochs: int) -> None:
    """Table 3: trainings at once, fair sharing against none."""
    print(f"\n3. Trainings at once ({epochs} epochs of 12,000 digits each): slowest "
          f"student's s/epoch, fair sharing against none (reference)")
    print(f"{'students':>8} {'shared':>8} {'unshared':>9} {'unshared/shared':>16} "
          f"{'slowest/fastest shared':>23}")
    with tempfile.TemporaryDirectory() as registry:
        for n in sizes:
            shared = class_trains(n, True, epochs, Path(registry))
            unshared = class_trains(n, False, epochs, Path(registry))
            print(f"{n:>8} {max(shared):>8.2f} {max(unshared):>9.2f} "
                  f"{max(unshared) / max(shared):>15.2f}x {max(shared) / min(shared):>22.2f}x")


def print_capacity(kernel: dict[str, float], server: dict[str, float]) -> None:
    """What a 16-core, 64 GB server holds, by private memory and by CPU."""
    private = kernel["uss"] + server["uss"]
    shared_once = kernel["rss"] - kernel["uss"] + server["rss"] - server["uss"]
    by_memory = int((SERVER_GB * 1024 * 0.9 - shared_once) // private)
    by_rss = int(SERVER_GB * 1024 * 0.9 // (kernel["rss"] + server["rss"]))
    by_cpu = int(SERVER_CORES * OPEN_WITHIN_S // kernel["cpu_s"])
    print(f"\nA {SERVER_CORES}-core, {SERVER_GB} GB server (90% of the memory for students): "
          f"{by_memory} students by memory ({private:.0f} MB private each: {kernel['uss']:.0f} "
          f"kernel + {server['uss']:.0f} server; {shared_once:.0f} MB of shared pages once; "
          f"counting RSS instead, {kernel['rss'] + server['rss']:.0f} MB each, would say "
          f"{by_rss}), {by_cpu} by CPU if all open 04 within {OPEN_WITHIN_S:.0f} s "
          f"({kernel['cpu_s']:.1f} CPU s each): about {min(by_memory, by_cpu)} students.")


def main() -> None:
    """Simulate each class size, print the tables and the 16-core, 64 GB estimate."""
    args = parse_args()
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f} at the start")
    print(f"models: {'tiny (CVAE_FAST=1)' if args.fast else 'the full course'}, shared from "
          f"{cache_dir()}; extra environment: {EXTRA_ENV or 'none'}")
    kernel = print_openings(args.sizes, args.fast)
    server = print_servers()
    if not args.no_trainings:
        print_trainings(args.sizes, args.epochs)
    alone, beside = beside_a_notebook(args.epochs)
    print(f"\n4. The main job ({args.epochs} epochs of the default recipe): {alone:.2f} s/epoch "
          f"alone, {beside:.2f} beside a kernel executing 04: {beside / alone:.2f}x")
    print_capacity(kernel, server)


if __name__ == "__main__":
    main()
