"""One call at the top of every notebook: seeds, device, mode; and the course's switches.

Introduced in 01_vae_fundamentals.
"""

from __future__ import annotations

import importlib.metadata
import os
import random

import numpy as np
import torch

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


def env_flag(name: str, default: bool = False) -> bool:
    """Read a yes/no environment switch such as ``CVAE_FAST=1``; an unknown word is an error."""
    if name not in os.environ:
        return default
    value = os.environ[name].strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(f"{name}={os.environ[name]!r} is not a yes/no value: set it to 1 (on) or "
                     f"0 (off), or unset it")


def fast_mode() -> bool:
    """True under ``CVAE_FAST=1``: notebooks train tiny models so tests finish quickly."""
    return env_flag("CVAE_FAST")


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
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_notebook(seed: int = 0) -> torch.device:
    """Seed everything, pick the device and print what the notebook runs on."""
    # Checked here, not with cvae_lib.validate: infra stands below the modules that import it.
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer from 0 to 2**32 - 1, not {seed!r}")
    seed_everything(seed)
    device = pick_device()
    mode = "FAST (tiny models, for tests)" if fast_mode() else "full"
    print(f"cvae_lib {importlib.metadata.version('cvae-course')} | torch {torch.__version__} | "
          f"device: {device} | mode: {mode} | seed: {seed}")
    return device
