"""One call at the top of every notebook: seeds, device, versions.

Introduced in 01_vae_fundamentals.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def pick_device() -> torch.device:
    """The fastest device present: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so a rerun draws the same numbers."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, not {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fast_mode() -> bool:
    """True when ``CVAE_FAST=1``: notebooks train tiny models so tests finish quickly."""
    return os.environ.get("CVAE_FAST", "") not in ("", "0")


def setup_notebook(seed: int = 0) -> torch.device:
    """Seed everything, pick the device and print what the notebook runs on."""
    import cvae_lib

    seed_everything(seed)
    device = pick_device()
    mode = "FAST (tiny models, for tests)" if fast_mode() else "full"
    print(f"cvae_lib {cvae_lib.__version__} | torch {torch.__version__} | device: {device} "
          f"| mode: {mode} | seed: {seed}")
    return device
