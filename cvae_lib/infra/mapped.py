"""Pixel arrays that every process maps read-only from one file, so a machine holds them once.

Introduced in the book's hub guide. The images of an IDX file, as float32 in [0, 1], are
written once beside it (``*.f32``; ``make prepare`` does) and every process maps that file: on
a class server 30 kernels hold one copy of the training set in the page cache, not 30 private
ones. A copy-on-write map: a student who changes a pixel changes it in their own process only,
never the file. Where the copy is missing and cannot be written (a read-only data folder), the
images are decoded into the process's own memory instead.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from cvae_lib.infra.storage import atomic_write

FLOAT_SUFFIX = ".f32"


def idx_payload(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """The bytes of a checked IDX file after its header, as a read-only uint8 array."""
    return np.memmap(path, dtype=np.uint8, mode="r", offset=4 + 4 * len(shape), shape=shape)


def float_images_path(images: Path) -> Path:
    """The float32 copy of the IDX image file ``images`` that every process maps."""
    return images.with_name(f"{images.name}{FLOAT_SUFFIX}")


def _map_floats(path: Path, shape: tuple[int, int]) -> torch.Tensor | None:
    """The float32 array of ``path`` mapped copy-on-write; None if it is not complete."""
    try:
        if path.stat().st_size != math.prod(shape) * 4:
            return None
        return torch.from_numpy(np.memmap(path, dtype=np.float32, mode="c", shape=shape))
    except FileNotFoundError:
        return None


def mapped_images(path: Path, shape: tuple[int, ...]) -> torch.Tensor:
    """The images of the IDX file ``path`` (``shape``: count, rows, columns), flattened."""
    flat = (shape[0], math.prod(shape[1:]))
    floats = float_images_path(path)
    mapped = _map_floats(floats, flat)
    if mapped is not None:
        return mapped
    images = torch.from_numpy(np.array(idx_payload(path, shape))).reshape(flat).float()
    images.div_(255.0)
    try:
        atomic_write(floats, lambda f: f.write(images.numpy().data))
    except OSError:
        return images
    return _map_floats(floats, flat)
