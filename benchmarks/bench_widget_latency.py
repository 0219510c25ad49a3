"""How long one slider move takes: ``cvae_lib.widgets.render`` on a trained model.

Run: ``.venv/bin/python benchmarks/bench_widget_latency.py [--calls 500]``. It uses the
course's ``cvae`` model (trained once and cached; ``CVAE_FAST=1`` gives the small one — the
decoder's size, and so the timing, is the same) and prints p50 / p95 / max of

- the reference: the plain way, ``model.generate`` then the same PNG encoding, at torch's
  default thread count;
- ours: ``render``, which decodes on one thread;

beside the 30 ms a slider needs to feel live. On an idle machine both are about 1 ms; on a
busy one (another notebook training) the multi-threaded decode waits for a free core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from cvae_lib.course import course_model
from cvae_lib.widgets import png_bytes, render

TARGET_MS = 30.0


def time_calls(draw: Callable[[int, torch.Tensor], bytes], z: torch.Tensor) -> list[float]:
    """Sorted milliseconds of ``draw(label, z[i])`` for every row of ``z``, after a warm-up."""
    for i in range(20):
        draw(i % 10, z[i])
    times = []
    for i, code in enumerate(z):
        start = time.perf_counter()
        draw(i % 10, code)
        times.append((time.perf_counter() - start) * 1000)
    return sorted(times)


def summary(times: list[float]) -> dict[str, float]:
    """p50, p95 and max of sorted timings."""
    return {"p50": statistics.median(times),
            "p95": times[min(len(times) - 1, round(0.95 * len(times)))], "max": times[-1]}


def main() -> None:
    """Time the reference and ``render`` and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="redraws to time (default 500)")
    args = parser.parse_args()
    if args.calls < 20:
        parser.error(f"--calls must be at least 20 for a p95, not {args.calls}")
    model, _ = course_model("cvae", progress=False)
    model = model.to("cpu").eval()
    z = torch.randn(args.calls, model.latent_dim, generator=torch.Generator().manual_seed(0))

    def plain(label: int, code: torch.Tensor) -> bytes:
        return png_bytes(model.generate([label], z=code.reshape(1, -1)), nrow=1)

    reference = summary(time_calls(plain, z))
    ours = summary(time_calls(lambda label, code: render(model, label, code), z))
    print(f"{args.calls} redraws; torch threads {torch.get_num_threads()}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; target {TARGET_MS:.0f} ms")
    print(f"{'':5} {'reference':>10} {'render':>10} {'ref/render':>11} {'target/render':>14}")
    for name in ("p50", "p95", "max"):
        print(f"{name:5} {reference[name]:8.2f}ms {ours[name]:8.2f}ms "
              f"{reference[name] / ours[name]:10.1f}x {TARGET_MS / ours[name]:13.1f}x")


if __name__ == "__main__":
    main()
