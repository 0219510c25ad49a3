"""Sample grids: the same picture as torchvision's make_grid, without importing torchvision."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torchvision.utils import make_grid

from cvae_lib.plots import image_grid

# What a kernel running 04 imports and calls; torchvision would add about 80 MB to each one.
KERNEL = ("import sys, torch; import cvae_lib.plots, cvae_lib.widgets, cvae_lib.evaluate; "
          "from cvae_lib.data import load_mnist; load_mnist(train=False, limit=10); "
          "cvae_lib.plots.image_grid(torch.zeros(4, 784), 2); "
          "print(sorted(m for m in ('torchvision', 'torch._dynamo') if m in sys.modules))")


@pytest.mark.parametrize("count, nrow", [(1, 10), (2, 10), (10, 10), (11, 10), (25, 3),
                                         (7, 1), (100, 10)])
def test_image_grid_matches_torchvision(count, nrow):
    images = torch.rand(count, 784, generator=torch.Generator().manual_seed(count))
    expected = make_grid(images.reshape(-1, 1, 28, 28), nrow=nrow, padding=2, pad_value=0.0)[0]
    assert torch.equal(image_grid(images, nrow), expected)


def test_a_kernel_showing_digits_does_not_import_torchvision():
    result = subprocess.run([sys.executable, "-c", KERNEL], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
