"""How many students one class server holds: N students opening 04 at once, N training at once.

Run: ``.venv/bin/python benchmarks/bench_hub.py [--students 2,4,8]`` after ``make prepare``
(``--fast`` uses the tiny models of ``CVAE_FAST=1`` instead: the same architecture, so the
same work and memory per cell). Each simulated student is a kernel set up as the hub sets up a
student's server: an empty cache of their own, the prepared models read from the shared one.

1. Opening 04: N kernels start at once and each runs 04's cells as Run All does, up to its
   generation widget, then moves one slider. Printed per N: seconds from the start to each
   student's first redraw (median and slowest) against one student alone, as a ratio, the CPU
   seconds one opening costs, and each kernel's peak memory.
2. Training at once: N trainings started together with cvae_lib's fair sharing of the cores
   (every student in one registry, as on the hub), against the same N with sharing switched
   off (the reference): the slowest student's seconds per epoch, and slowest / fastest.

Last, what that means for a 16-core, 64 GB server: the students it holds by memory, and by
CPU if the whole class opens 04 within a minute of each other.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
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
SERVER_MB = 130  # a student's jupyterhub-singleuser, idle (tests/test_hub.py measures ~127)
SERVER_CORES, SERVER_GB, OPEN_WITHIN_S = 16, 64, 60.0
TRAIN = ("import json; from cvae_lib.training import TrainConfig, train; "
         "_, h = train(TrainConfig(num_epochs={epochs}, train_limit=12000), progress=False); "
         "print(json.dumps(h.seconds[-1] / len(h.seconds)))")


def cells_to_widget() -> list[str]:
    """04's code cells up to its generation widget, the widget cell made to move a slider."""
    cells = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells
             if c.cell_type == "code"]
    index = next(i for i, source in enumerate(cells) if WIDGET_CALL in source)
    return cells[:index] + [MOVE.format(call=cells[index].strip())]


def student_env(own_cache: Path, fast: bool) -> dict[str, str]:
    """A student's environment on the hub: the shared prepared cache, an own empty one."""
    env = {**os.environ, "CVAE_SHARED_CACHE_DIR": str(cache_dir()),
           "CVAE_CACHE_DIR": str(own_cache), "CVAE_OFFLINE": "1", "MPLBACKEND": "agg"}
    if fast:
        env["CVAE_FAST"] = "1"
    return env


def _proc_stat(pid: int) -> tuple[float, float]:
    """(CPU seconds used, peak resident MB) of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    status = Path(f"/proc/{pid}/status").read_text()
    peak_kb = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmHWM:"))
    return cpu, peak_kb / 1024


def open_04(start: float, cells: list[str], env: dict[str, str]) -> dict[str, float]:
    """One student: a kernel runs ``cells``; seconds from ``start`` to the slider's redraw."""
    manager, client = start_new_kernel(env=env, cwd=str(NOTEBOOK.parent),
                                       stderr=subprocess.DEVNULL)
    try:
        redraw_ms = None
        for source in cells:
            outputs = []
            reply = client.execute_interactive(source, timeout=900,
                                               output_hook=outputs.append)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"a cell of 04 failed: {reply['content'].get('evalue')}")
            for msg in outputs:
                text = msg["content"].get("text", "")
                if "REDRAW_MS" in text:
                    redraw_ms = float(text.split()[-1])
        seconds = time.perf_counter() - start
        cpu, peak_mb = _proc_stat(manager.provisioner.process.pid)
        return {"seconds": seconds, "redraw_ms": redraw_ms, "cpu_s": cpu, "peak_mb": peak_mb}
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def class_opens_04(n: int, fast: bool) -> list[dict[str, float]]:
    """``n`` students open 04 at the same moment; one record per student."""
    cells = cells_to_widget()
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(n) as pool:
        start = time.perf_counter()
        futures = [pool.submit(open_04, start, cells, student_env(Path(tmp) / f"s{i}", fast))
                   for i in range(n)]
        records = [f.result() for f in futures]
        trained = list(Path(tmp).rglob("*.pt"))
    if trained:
        raise RuntimeError(f"a student trained a course model: {trained}")
    return records


def class_trains(n: int, share: bool, epochs: int, registry: Path) -> list[float]:
    """``n`` trainings started together; each one's seconds per epoch."""
    env = {**os.environ, "CVAE_TRAININGS_DIR": str(registry),
           "CVAE_SHARE_CORES": "1" if share else "0"}
    children = [subprocess.Popen([sys.executable, "-c", TRAIN.format(epochs=epochs)],
                                 stdout=subprocess.PIPE, text=True, env=env) for _ in range(n)]
    return [seconds_per_epoch(child) for child in children]


def parse_args() -> argparse.Namespace:
    """The class sizes to simulate, and the mode."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", default="2,4,8", help="comma-separated class sizes")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each training")
    parser.add_argument("--fast", action="store_true", help="the tiny models of CVAE_FAST=1")
    args = parser.parse_args()
    try:
        args.sizes = sorted({int(s) for s in args.students.split(",")})
    except ValueError:
        parser.error(f"--students must be numbers separated by commas, not {args.students!r}")
    if not args.sizes or min(args.sizes) < 1 or max(args.sizes) > 16 or args.epochs < 1:
        parser.error("--students takes sizes from 1 to 16, --epochs at least 1")
    if args.fast:
        os.environ["CVAE_FAST"] = "1"
    missing = missing_models(cache_dir(), data_dir())
    if missing:
        parser.error(f"the prepared cache {cache_dir()} lacks {', '.join(missing)}: run "
                     f"`make prepare` first (or `CVAE_FAST=1 make prepare` with --fast)")
    return args


def main() -> None:
    """Simulate each class size, print both tables and the 16-core, 64 GB estimate."""
    args = parse_args()
    print(f"machine: {machine()}")
    print(f"models: {'tiny (CVAE_FAST=1)' if args.fast else 'the full course'}, shared from "
          f"{cache_dir()}")
    alone = class_opens_04(1, args.fast)[0]
    print(f"\n1. Opening 04 up to its first slider redraw (reference: one student alone, "
          f"{alone['seconds']:.1f} s)")
    print(f"{'students':>8} {'median s':>9} {'slowest s':>10} {'slowest/alone':>14} "
          f"{'CPU s each':>11} {'peak MB each':>13} {'slider ms':>10}")
    worst_mb, cpu_each = alone["peak_mb"], alone["cpu_s"]
    for n in args.sizes:
        records = class_opens_04(n, args.fast)
        slowest = max(r["seconds"] for r in records)
        worst_mb = max(worst_mb, *(r["peak_mb"] for r in records))
        cpu_each = statistics.median(r["cpu_s"] for r in records)
        print(f"{n:>8} {statistics.median(r['seconds'] for r in records):>9.1f} "
              f"{slowest:>10.1f} {slowest / alone['seconds']:>13.2f}x {cpu_each:>11.1f} "
              f"{max(r['peak_mb'] for r in records):>13.0f} "
              f"{max(r['redraw_ms'] for r in records):>10.1f}")
    print(f"\n2. Trainings at once ({args.epochs} epochs of 12,000 digits each): slowest "
          f"student's s/epoch, fair sharing against none (reference)")
    print(f"{'students':>8} {'shared':>8} {'unshared':>9} {'unshared/shared':>16} "
          f"{'slowest/fastest shared':>23}")
    with tempfile.TemporaryDirectory() as registry:
        for n in args.sizes:
            shared = class_trains(n, True, args.epochs, Path(registry))
            unshared = class_trains(n, False, args.epochs, Path(registry))
            print(f"{n:>8} {max(shared):>8.2f} {max(unshared):>9.2f} "
                  f"{max(unshared) / max(shared):>15.2f}x {max(shared) / min(shared):>22.2f}x")
    by_memory = int(SERVER_GB * 1024 * 0.9 // (worst_mb + SERVER_MB))
    by_cpu = int(SERVER_CORES * OPEN_WITHIN_S // cpu_each)
    print(f"\nA {SERVER_CORES}-core, {SERVER_GB} GB server: {by_memory} students by memory "
          f"({worst_mb:.0f} MB kernel + {SERVER_MB} MB server each, 90% of the memory), "
          f"{by_cpu} by CPU if all open 04 within {OPEN_WITHIN_S:.0f} s ({cpu_each:.1f} CPU s "
          f"each): about {min(by_memory, by_cpu)} students.")


if __name__ == "__main__":
    main()
