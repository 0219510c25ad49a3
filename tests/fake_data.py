"""Small MNIST files in torchvision's IDX layout, for the tests of bad and missing data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvae_lib import data
from cvae_lib.data import raw_dir


def small_mnist(root: Path, images: int = 10, labels: int = 10) -> Path:
    """Four small IDX files in torchvision's layout under ``root``; return their folder."""
    folder = raw_dir(root)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for is_train in (True, False):
        image_file, label_file = data.FILES[is_train]
        pixels = rng.integers(0, 256, (images, 28, 28), dtype=np.uint8)
        (folder / image_file).write_bytes(data._idx_bytes(pixels))
        (folder / label_file).write_bytes(data._idx_bytes(np.arange(labels, dtype=np.uint8)))
    return folder
