"""Peak memory of a training run: the spec's recipe against the course's default recipe.

Run: ``.venv/bin/python benchmarks/bench_memory.py [--spec-epochs 1]``. Each run happens in a
fresh child process, so its resident-set high-water mark (``ru_maxrss`` from ``os.wait4``)
holds that run alone: imports, MNIST in memory, model, optimizer and the per-epoch test
evaluation. Target: the default run stays at or below 1.5 GB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from _common import machine

TARGET_BYTES = 1.5e9
BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_RUN = ("from cvae_lib.training import TrainConfig, train; "
               "train(TrainConfig(), progress=False)")
SPEC_RUN = ("import sys; sys.path.insert(0, {dir!r}); from _common import SpecRecipe; "
            "recipe = SpecRecipe(); [recipe.epoch() for _ in range({epochs})]")


def peak_rss(code: str) -> float:
    """Peak resident memory in bytes of a child Python process running ``code``."""
    child = subprocess.Popen([sys.executable, "-c", code])
    _, status, usage = os.wait4(child.pid, 0)  # this child's own figures, no other's
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"the measured run failed with exit code {child.returncode}")
    return usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024  # KiB


def main() -> None:
    """Measure both runs, each in its own child process, and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec-epochs", type=int, default=1)
    args = parser.parse_args()
    if args.spec_epochs < 1:
        parser.error("--spec-epochs must be at least 1")
    print(f"machine: {machine()}")
    spec = peak_rss(SPEC_RUN.format(dir=str(BENCH_DIR), epochs=args.spec_epochs))
    default = peak_rss(DEFAULT_RUN)
    verdict = "PASS" if default <= TARGET_BYTES else "FAIL"
    print(f"peak RSS: spec recipe ({args.spec_epochs} epoch(s)) {spec / 1e9:.2f} GB | "
          f"default recipe (full run) {default / 1e9:.2f} GB | ratio {default / spec:.2f} | "
          f"target <= {TARGET_BYTES / 1e9:.1f} GB: {verdict}")


if __name__ == "__main__":
    main()
