"""How long one slider move takes: the time of ``cvae_lib.widgets.render`` on a trained model.

Run: ``.venv/bin/python benchmarks/bench_widget_latency.py [--calls 500]``. It uses the
course's ``cvae`` model (trained once and cached; ``CVAE_FAST=1`` gives the small one — the
decoder's size, and so the timing, is the same) and prints p50 / p95 / max against the
30 ms a slider needs to feel live, once with torch's default thread count and once with
one thread (a single digit is too small to gain from threads; on a busy machine the default
can wait for a descheduled thread, which shows in p95 and max).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from cvae_lib.course import course_model
from cvae_lib.widgets import render

TARGET_MS = 30.0


def time_render(calls: int, seed: int = 0) -> list[float]:
    """Milliseconds of ``calls`` renders, each with a new label and z, on the CPU."""
    model, _ = course_model("cvae", progress=False)
    model = model.to("cpu").eval()
    z = torch.randn(calls, model.latent_dim, generator=torch.Generator().manual_seed(seed))
    for i in range(20):  # warm-up
        render(model, i % model.num_classes, z[i])
    times = []
    for i in range(calls):
        start = time.perf_counter()
        render(model, i % model.num_classes, z[i])
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    """Time the renders and print them beside the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="renders to time (default 500)")
    args = parser.parse_args()
    if args.calls < 20:
        parser.error(f"--calls must be at least 20 for a p95, not {args.calls}")
    print(f"render() over {args.calls} calls; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    for threads in (torch.get_num_threads(), 1):
        torch.set_num_threads(threads)
        times = sorted(time_render(args.calls))
        p95 = times[min(len(times) - 1, round(0.95 * len(times)))]
        print(f"\ntorch threads: {threads}")
        print(f"{'':6} {'target':>10} {'ours':>10} {'target/ours':>12}")
        for name, value in (("p50", statistics.median(times)), ("p95", p95),
                            ("max", times[-1])):
            print(f"{name:6} {TARGET_MS:8.1f}ms {value:8.2f}ms {TARGET_MS / value:11.1f}x")


if __name__ == "__main__":
    main()
