"""The models the notebooks use, by name, each trained once and then loaded from the cache.

Introduced in 01_vae_fundamentals. ``CVAE_FAST=1`` shrinks every config (a data subset and
few epochs) so the notebooks run as tests in seconds; students get the full configs, and no
notebook needs to know which it got.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cvae_lib.checkpoints import cache_path, load_or_train, save_or_warn
from cvae_lib.data import FAST_TRAIN_LIMIT
from cvae_lib.models import CVAE
from cvae_lib.infra.runtime import fast_mode
from cvae_lib.infra.storage import find_cached
from cvae_lib.training import History, TrainConfig

FAST_EPOCHS = 2

# Side models train only as long as their lesson needs: three epochs show collapse, latent size
# and thickness control, so a classroom is prepared in under twice the default model's time.
SIDE_EPOCHS = 3

COURSE_CONFIGS: dict[str, TrainConfig] = {
    # 01_vae_fundamentals: the unconditional baseline.
    "vae": TrainConfig(architecture="vae", num_epochs=SIDE_EPOCHS),
    # 03_training and 04_generation: the course's default recipe.
    "cvae": TrainConfig(),
    # 03_training: too much KL pressure, and the warm-up remedy (over half the run).
    "collapse": TrainConfig(beta=8.0, num_epochs=SIDE_EPOCHS),
    "warmup": TrainConfig(beta=8.0, warmup_epochs=SIDE_EPOCHS / 2, num_epochs=SIDE_EPOCHS),
    # 05_modify_parameters: latent sizes 2 / 16 / 64 on one equal budget of epochs (the
    # student's own experiment changes one setting of "latent16").
    "latent2": TrainConfig(latent_dim=2, num_epochs=SIDE_EPOCHS),
    "latent16": TrainConfig(latent_dim=16, num_epochs=SIDE_EPOCHS),
    "latent64": TrainConfig(latent_dim=64, num_epochs=SIDE_EPOCHS),
    # 05_modify_parameters: the course model trained 10 epochs further (see CONTINUES), in a
    # new cycle whose peak is a third of the default's, so it starts by barely disturbing it.
    "long": TrainConfig(num_epochs=10, lr=1e-3),
    "fashion": TrainConfig(dataset="fashion-mnist", num_epochs=SIDE_EPOCHS),
    # 07_challenge_thickness: digit and stroke thickness.
    "thickness": TrainConfig(condition="digit+thickness", num_epochs=SIDE_EPOCHS),
}


# A model named here starts from the named course model instead of from scratch.
CONTINUES = {"long": "cvae"}


def course_config(name: str) -> TrainConfig:
    """The config of the named course model, shrunk when ``CVAE_FAST=1``."""
    if name not in COURSE_CONFIGS:
        raise KeyError(f"no course model named {name!r}; choose one of {sorted(COURSE_CONFIGS)}")
    config = COURSE_CONFIGS[name]
    if fast_mode():
        limit = min(config.train_limit or FAST_TRAIN_LIMIT, FAST_TRAIN_LIMIT)
        config = dataclasses.replace(config, train_limit=limit,
                                     num_epochs=min(config.num_epochs, FAST_EPOCHS),
                                     warmup_epochs=min(config.warmup_epochs, 1.0))
    if name in CONTINUES:
        config = dataclasses.replace(config, continues=course_config(CONTINUES[name]).key())
    return config


def course_model(name: str, progress: bool = True) -> tuple[CVAE, History]:
    """The named course model: loaded from the cache, or trained once and cached."""
    start = course_model(CONTINUES[name], progress) if name in CONTINUES else None
    return load_or_train(course_config(name), progress=progress, start=start)


def cache_if_course_model(model: CVAE, config: TrainConfig, history: History
                          ) -> tuple[str, Path] | None:
    """Cache a finished run whose config is a course model's, unless that model is cached.

    ``make demo`` trains the default recipe: cached here, ``make prepare`` and the notebooks
    load it instead of training the same 50 epochs again. Returns the name and file written.
    """
    name = next((name for name in COURSE_CONFIGS if course_config(name) == config), None)
    path = cache_path(config)
    if name is None or history.interrupted or find_cached(path).is_file():
        return None
    return (name, path) if save_or_warn(path, model, config, history) else None
