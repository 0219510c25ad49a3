"""cvae_lib: the helper package of the Conditional VAE course.

Each module matches one idea of the course: ``data``, ``models``, ``losses``, ``training``,
``checkpoints``, ``evaluate``, ``generation``, ``plots``, ``widgets``, ``checks``; the
friendly errors for callers live in ``validate``.
"""

from cvae_lib.checkpoints import load_model, load_or_train
from cvae_lib.infra.runtime import pick_device, setup_notebook
from cvae_lib.models import CVAE
from cvae_lib.training import TrainConfig, train

__version__ = "0.2.0"

__all__ = ["CVAE", "TrainConfig", "load_model", "load_or_train", "pick_device",
           "setup_notebook", "train"]
