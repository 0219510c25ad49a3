"""cvae_lib: the helper package of the Conditional VAE course.

Each module matches one idea of the course: ``data``, ``models``, ``losses``, ``train``,
``evaluate``, ``generation``, ``plots``, ``widgets``, ``checks``.
"""

__version__ = "0.1.0"

from cvae_lib.models import CVAE, SimpleCVAE  # noqa: E402
from cvae_lib.setup import pick_device, setup_notebook  # noqa: E402
from cvae_lib.train import TrainConfig, load_model, load_or_train, train  # noqa: E402

__all__ = ["CVAE", "SimpleCVAE", "TrainConfig", "load_model", "load_or_train", "pick_device",
           "setup_notebook", "train"]
