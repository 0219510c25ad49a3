"""Seconds per training epoch: the spec's recipe against cvae_lib's trainer.

Run: ``.venv/bin/python benchmarks/bench_train.py [--epochs 10]``. Both sides train the same
CVAE (784+10 -> 256 -> 256 -> 16, and back) with batch 128 and Adam at lr 1e-3 for
``--epochs`` epochs, in one process, alternating: after each epoch of cvae_lib's trainer,
its ``on_epoch`` callback trains one epoch of the spec's recipe, so background load hits both
alike and the models age together. The reference is the spec's loop (DataLoader over
torchvision MNIST, ``loss.item()`` each step); ours is ``cvae_lib.training.train`` with
``batch_size=128, lr=1e-3``, a constant lr and beta 1 (the data as one tensor, a random
permutation per epoch, fused Adam, tiny Adam moments set to zero). A third column, for
insight, runs the spec's own step on batches cut from one tensor: what the data pipeline
alone costs. Only training is timed, not the per-epoch test loss. Target: ours at least 3x
faster than the spec's recipe, median over the epochs.
"""

from __future__ import annotations

import argparse

from _common import SPEC_BATCH_SIZE, SPEC_LR, SpecRecipe, machine, median

from cvae_lib.data import load_mnist
from cvae_lib.training import History, TrainConfig, train

TARGET_SPEEDUP = 3.0


def main() -> None:
    """Train both recipes epoch by epoch, alternating, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs of each recipe")
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")
    print(f"machine: {machine()}")
    spec, tensor_spec = SpecRecipe(), SpecRecipe()
    images, labels = load_mnist(train=True)
    spec_times: list[float] = []
    tensor_times: list[float] = []
    course_times: list[float] = []

    def spec_epoch_after(history: History) -> None:
        """Record our epoch's training seconds, then train and time one epoch of the others."""
        course_times.append(history.seconds[-1] - sum(course_times))
        spec_times.append(spec.epoch())
        tensor_times.append(tensor_spec.epoch_from_tensors(images, labels))
        print(f"epoch {len(spec_times):2d}: spec recipe {spec_times[-1]:6.2f} s | "
              f"spec step on a tensor {tensor_times[-1]:6.2f} s | "
              f"cvae_lib {course_times[-1]:6.2f} s | "
              f"ratio {spec_times[-1] / course_times[-1]:.2f}x", flush=True)

    config = TrainConfig(num_epochs=args.epochs, batch_size=SPEC_BATCH_SIZE, lr=SPEC_LR,
                         schedule="constant", beta=1.0)
    train(config, progress=False, on_epoch=spec_epoch_after)
    ratio = median(spec_times) / median(course_times)
    verdict = "PASS" if ratio >= TARGET_SPEEDUP else "FAIL"
    print(f"median over {args.epochs} epochs: spec recipe {median(spec_times):.2f} s/epoch, "
          f"cvae_lib {median(course_times):.2f} s/epoch, speed-up {ratio:.2f}x "
          f"(target >= {TARGET_SPEEDUP:.0f}x): {verdict}")
    print(f"spec step on a tensor: {median(tensor_times):.2f} s/epoch, "
          f"{median(spec_times) / median(tensor_times):.2f}x faster than the spec recipe; "
          f"cvae_lib is {median(tensor_times) / median(course_times):.2f}x faster than that")
    print(f"first epoch alone: spec recipe {spec_times[0]:.2f} s, cvae_lib "
          f"{course_times[0]:.2f} s, {spec_times[0] / course_times[0]:.2f}x")


if __name__ == "__main__":
    main()
