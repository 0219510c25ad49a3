"""One call at the top of every notebook: seeds, device, mode, brief reports of failed checks;
and the course's switches.

Introduced in 01_vae_fundamentals.
"""

from __future__ import annotations

import importlib.metadata
import os
import random
import textwrap
import traceback
from types import TracebackType

import numpy as np
import torch

TRUE_WORDS = ("1", "true", "yes", "on")
REPORT_WIDTH, REPORT_LINES = 92, 8  # a failed check is shown in at most 8 lines this wide
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
    show_checks_briefly()
    device = pick_device()
    mode = "FAST (tiny models, for tests)" if fast_mode() else "full"
    print(f"cvae_lib {importlib.metadata.version('cvae-course')} | torch {torch.__version__} | "
          f"device: {device} | mode: {mode} | seed: {seed}")
    return device


def short_report(err: BaseException) -> list[str] | None:
    """A failed check in a few lines (which check, the mistake's label, the advice), or None
    if no ``check_*`` function raised ``err``."""
    names = [frame.f_code.co_name for frame, _ in traceback.walk_tb(err.__traceback__)]
    check = next((name for name in names if name.startswith("check_")), None)
    if check is None:
        return None
    label = getattr(err, "label", None)  # a cvae_lib.checks.CheckFailure names its mistake
    label = f" \x1b[1m({label})\x1b[0m" if isinstance(label, str) else ""
    advice = textwrap.wrap(str(err) or type(err).__name__, REPORT_WIDTH,
                           max_lines=REPORT_LINES - 1, placeholder=" …")
    return [f"\x1b[1;31m✗ {check} failed\x1b[0m{label}", *advice]


def _show(shell: object, etype: type, value: BaseException, tb: TracebackType | None,
          tb_offset: int | None = None) -> list[str]:
    """IPython's handler of an AssertionError: a short report if a check raised it."""
    report = short_report(value)
    if report is None:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return []
    shell._showtraceback(etype, value, report)
    return report


def show_checks_briefly() -> None:
    """In IPython, show a failed ``check_*`` (06's and 07's exercise checks) as a few lines
    naming the mistake, not a stack."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((AssertionError,), _show)
