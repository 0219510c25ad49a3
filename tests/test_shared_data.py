"""MNIST held once per machine: every kernel maps the same read-only float32 file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets

from cvae_lib import data
from cvae_lib.infra import mapped

IMAGES = 2000  # 6.3 MB of float32: many pages, so sharing shows in Pss
NOBODY = 65534
LOAD = ("import sys; from cvae_lib.data import load_dataset; "
        "x, _ = load_dataset('mnist', train=False, root=sys.argv[1]); "
        "print(float(x.sum()), flush=True); sys.stdin.read()")
# Run as another user by the system's Python: it opens the file, then tries to write it.
NOT_OWNER = ("import os, sys\n"
             "with open(sys.argv[1], 'rb') as f: f.read(16)\n"
             "try:\n"
             "    os.open(sys.argv[1], os.O_WRONLY)\n"
             "except PermissionError:\n"
             "    print('refused')\n")


@pytest.fixture
def small_mnist() -> Iterator[Path]:
    """A root with small random IDX files, in a folder any user may read."""
    root = Path(tempfile.mkdtemp(prefix="cvae-shared-data-"))
    root.chmod(0o755)
    rng = np.random.default_rng(0)
    folder = data.raw_dir(root)
    folder.mkdir(parents=True)
    for pair in data.FILES.values():
        pixels = rng.integers(0, 256, (IMAGES, 28, 28), dtype=np.uint8)
        (folder / pair[0]).write_bytes(data._idx_bytes(pixels))
        (folder / pair[1]).write_bytes(data._idx_bytes(np.arange(IMAGES) % 10))
    for path in (root / "MNIST", folder):
        path.chmod(0o755)
    yield root
    shutil.rmtree(root)


def _mapping(pid: int, path: Path) -> dict[str, int]:
    """Rss and Pss in kB of process ``pid``'s mapping of ``path`` (from /proc/PID/smaps)."""
    lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith(str(path)))
    fields = {}
    for line in lines[start + 1:]:
        key, _, value = line.partition(":")
        if not value.strip().endswith("kB"):
            break
        fields[key] = int(value.split()[0])
    return {"Rss": fields["Rss"], "Pss": fields["Pss"]}


def test_mapped_images_equal_the_decoded_ones(small_mnist):
    x, labels = data.load_dataset("mnist", train=False, root=small_mnist)
    reference = datasets.MNIST(small_mnist, train=False, download=False)
    assert torch.equal(x, reference.data.reshape(-1, 784).float().div(255.0))
    assert torch.equal(labels, reference.targets)
    assert mapped.float_images_path(data.raw_dir(small_mnist) / data.FILES[False][0]).is_file()


def test_a_change_to_the_images_stays_in_the_process(small_mnist):
    x, _ = data.load_dataset("mnist", train=True, root=small_mnist)
    x[0].fill_(7.0)  # a student's in-place edit: copy-on-write, never the file
    floats = mapped.float_images_path(data.raw_dir(small_mnist) / data.FILES[True][0])
    on_disk = np.fromfile(floats, dtype=np.float32, count=784)
    assert on_disk.max() <= 1.0


def test_an_unwritable_data_folder_gives_the_images_in_memory(small_mnist, monkeypatch):
    def refuse(path: Path, write: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(mapped, "atomic_write", refuse)
    x, _ = data.load_dataset("mnist", train=False, root=small_mnist)
    expected = datasets.MNIST(small_mnist, train=False, download=False).data
    assert torch.equal(x, expected.reshape(-1, 784).float().div(255.0))
    assert not mapped.float_images_path(data.raw_dir(small_mnist) / data.FILES[False][0]).exists()


def test_two_kernels_share_the_pages_of_one_file(small_mnist):
    data.load_dataset("mnist", train=False, root=small_mnist)  # writes the file, as prepare does
    floats = mapped.float_images_path(data.raw_dir(small_mnist) / data.FILES[False][0])
    kernels = [subprocess.Popen([sys.executable, "-c", LOAD, str(small_mnist)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for _ in range(2)]
    try:
        sums = [kernel.stdout.readline() for kernel in kernels]  # both have read every page
        assert sums[0] == sums[1] != ""
        for kernel in kernels:
            mapping = _mapping(kernel.pid, floats)
            assert mapping["Rss"] >= IMAGES * 784 * 4 // 1024 - 4  # the whole file resident
            assert mapping["Pss"] <= mapping["Rss"] * 0.6  # and half of it counted to each
    finally:
        for kernel in kernels:
            kernel.communicate("")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a check as another user")
def test_a_student_can_read_the_file_but_not_write_it(small_mnist):
    data.load_dataset("mnist", train=False, root=small_mnist)
    floats = mapped.float_images_path(data.raw_dir(small_mnist) / data.FILES[False][0])
    python = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
    result = subprocess.run([python, "-I", "-c", NOT_OWNER, str(floats)], user=NOBODY,
                            group=NOBODY, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "refused"
