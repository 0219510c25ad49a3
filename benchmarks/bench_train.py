"""Seconds per training epoch: the spec's recipe against cvae_lib's trainer.

Run: ``.venv/bin/python benchmarks/bench_train.py [--rounds 5]``. Both sides train the same
CVAE (784+10 -> 256 -> 256 -> 16, and back) with batch 128 and Adam at lr 1e-3, in one
process, alternating one epoch of each per round so that any background load hits both
alike. The reference is the spec's loop (DataLoader over torchvision MNIST, ``loss.item()``
each step); ours is ``cvae_lib.train.train`` with ``batch_size=128, lr=1e-3``, a constant lr
and beta 1 (the data as one tensor, a random permutation per epoch, fused Adam). Target: ours
at least 3x faster. The first round also pays one-time start-up costs on both sides.
"""

from __future__ import annotations

import argparse

from _common import SPEC_BATCH_SIZE, SPEC_LR, SpecRecipe, machine, median

from cvae_lib.train import TrainConfig, train

TARGET_SPEEDUP = 3.0


def course_epoch_seconds(seed: int) -> float:
    """Training seconds of one epoch of cvae_lib's trainer on the spec's model and optimizer."""
    config = TrainConfig(num_epochs=1, batch_size=SPEC_BATCH_SIZE, lr=SPEC_LR, seed=seed,
                         schedule="constant", beta=1.0)
    return train(config, progress=False)[1].seconds[-1]


def main() -> None:
    """Alternate the two recipes for ``--rounds`` rounds and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="epochs of each recipe")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    print(f"machine: {machine()}")
    spec = SpecRecipe()
    course_epoch_seconds(seed=99)  # warm-up: first allocations and data loading, not timed
    spec_times, course_times = [], []
    for round_ in range(1, args.rounds + 1):
        spec_times.append(spec.epoch())
        course_times.append(course_epoch_seconds(seed=round_))
        print(f"round {round_}: spec recipe {spec_times[-1]:6.2f} s/epoch | "
              f"cvae_lib {course_times[-1]:6.2f} s/epoch | "
              f"ratio {spec_times[-1] / course_times[-1]:.2f}x", flush=True)
    ratio = median(spec_times) / median(course_times)
    verdict = "PASS" if ratio >= TARGET_SPEEDUP else "FAIL"
    print(f"median over {args.rounds} rounds: spec recipe {median(spec_times):.2f} s/epoch, "
          f"cvae_lib {median(course_times):.2f} s/epoch, speed-up {ratio:.2f}x "
          f"(target >= {TARGET_SPEEDUP:.0f}x): {verdict}")


if __name__ == "__main__":
    main()
