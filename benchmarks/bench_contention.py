"""Two trainings at once: how much slower is each than one alone?

Run: ``.venv/bin/python benchmarks/bench_contention.py [--epochs 2]``. In one run it times the
default ``TrainConfig`` (``--epochs`` epochs) in a child process alone, then two such children
started together, and prints seconds per epoch and the slowdown. Sharing two cores should
cost about 2x; target: <= 2.5x. ``--no-share`` switches cvae_lib's fair thread sharing off
(every process keeps all its threads), to show what it saves.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _common import machine

TARGET = 2.5
RUN = ("import json, sys; from cvae_lib.training import TrainConfig, train; "
       "_, h = train(TrainConfig(num_epochs={epochs}), progress=False); "
       "print(json.dumps(h.seconds[-1] / len(h.seconds)))")


def start(epochs: int, share: bool) -> subprocess.Popen:
    """A child process training the default recipe for ``epochs`` epochs."""
    env = dict(os.environ)
    if not share:
        env["CVAE_SHARE_CORES"] = "0"
    return subprocess.Popen([sys.executable, "-c", RUN.format(epochs=epochs)],
                            stdout=subprocess.PIPE, text=True, env=env)


def seconds_per_epoch(child: subprocess.Popen) -> float:
    """Wait for a child and return the seconds per epoch it reported."""
    out, _ = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"a training child failed with exit code {child.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Time one training alone, then two at once, and print the slowdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-share", action="store_true", help="switch thread sharing off")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    share = not args.no_share
    print(f"machine: {machine()} | thread sharing: {'on' if share else 'off'}")
    alone = seconds_per_epoch(start(args.epochs, share))
    pair = [start(args.epochs, share) for _ in range(2)]
    together = [seconds_per_epoch(child) for child in pair]
    slowdown = max(together) / alone
    verdict = "PASS" if slowdown <= TARGET else "FAIL"
    print(f"s/epoch alone {alone:.2f} | two at once {together[0]:.2f} and {together[1]:.2f} | "
          f"slowdown {slowdown:.2f}x | target <= {TARGET}x: {verdict}")


if __name__ == "__main__":
    main()
