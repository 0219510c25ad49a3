"""cvae_lib: the helper package of the Conditional VAE course.

Each module matches one idea of the course: ``data``, ``models``, ``losses``, ``training``,
``checkpoints``, ``evaluate``, ``generation``, ``plots``, ``widgets``, ``checks``; the
friendly errors for callers live in ``validate``.
"""

import torch

from cvae_lib.checkpoints import load_model, load_or_train
from cvae_lib.checks.base import show_checks_briefly
from cvae_lib.infra import runtime
from cvae_lib.infra.runtime import pick_device
from cvae_lib.models import CVAE
from cvae_lib.training import TrainConfig, train

__version__ = "0.2.0"


def setup_notebook(seed: int = 0) -> torch.device:
    """The notebooks' setup call: ``infra.runtime.setup_notebook``, and in IPython a failed
    check is shown in a few lines (``checks.base.show_checks_briefly``)."""
    device = runtime.setup_notebook(seed)
    show_checks_briefly()
    return device
__all__ = ["CVAE", "TrainConfig", "load_model", "load_or_train", "pick_device",
           "setup_notebook", "train"]
