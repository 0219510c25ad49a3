"""Training: a config, and a fast loop over the whole training set held in memory.

Introduced in 03_training. ``training_step`` below is the step 03 writes by hand, with the
KL weight of its section 6; ``train`` adds what a 50-epoch run needs: that section's KL
warm-up, a one-cycle learning-rate schedule (05_modify_parameters, section 5), a test loss
after every epoch, and Ctrl-C keeping what was learned. The loop holds the training set as
one tensor and walks a random permutation of it, several times faster on a CPU than a
DataLoader over PIL images. Saving, loading and the cache are in ``checkpoints``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from cvae_lib import validate
from cvae_lib.data import load_dataset
from cvae_lib.evaluate import dataset_loss
from cvae_lib.losses import cvae_loss, kl_weight
from cvae_lib.models import CVAE, VAE
from cvae_lib.infra.runtime import pick_device, seed_everything
from cvae_lib.infra.trainings import shares_cores
from cvae_lib.thickness import ThicknessCVAE, condition, thickness_labels

TINY_MOMENT = 1e-30  # Adam moments below this are set to 0, every FLUSH_EVERY steps
FLUSH_EVERY = 100  # a moment needs 175 steps of decay by 0.9 to fall from 1e-30 to 1e-38


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; two equal configs give equal weights.

    The defaults are the course's recipe, measured by ``benchmarks/bench_quality.py``: the
    spec's architecture and batch size, 50 epochs of Adam under a one-cycle schedule peaking
    at lr 3e-3, and a KL weight of 1.1: over 3 seeds, weight 1 left samples from z ~ N(0, I)
    no more recognisable than the spec's, and 1.2 made them less varied than the spec's.
    """

    dataset: str = "mnist"
    architecture: str = "cvae"
    condition: str = "digit"
    latent_dim: int = 16
    num_epochs: int = 50
    batch_size: int = 128
    lr: float = 3e-3
    schedule: str = "onecycle"
    beta: float = 1.1
    warmup_epochs: float = 0.0
    train_limit: int | None = None
    seed: int = 0
    continues: str | None = None  # key() of the model this run starts from (None: from scratch)

    def __post_init__(self) -> None:
        """Check every field now, before any data is loaded or any step is taken."""
        for name, value in validate.plain_numbers(self).items():  # np.int64(3) -> 3
            object.__setattr__(self, name, value)
        validate.train_config(self)

    def to_dict(self) -> dict:
        """The config as plain JSON-friendly values."""
        return dataclasses.asdict(self)

    def key(self) -> str:
        """A short name unique to this config, used for the cache file."""
        digest = hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()
        return (f"{self.dataset}-{self.architecture}-z{self.latent_dim}-e{self.num_epochs}-"
                f"{digest[:10]}")

    def build_model(self) -> CVAE:
        """A freshly initialised model of this config's architecture."""
        if self.architecture == "vae":
            return VAE(latent_dim=self.latent_dim)
        if self.condition == "digit+thickness":
            return ThicknessCVAE(latent_dim=self.latent_dim)
        return CVAE(latent_dim=self.latent_dim)

    def load_data(self, train: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(x, labels, extra)`` of one split; ``extra`` holds thickness labels or is None."""
        x, labels = load_dataset(self.dataset, train=train,
                                 limit=self.train_limit if train else None)
        extra = thickness_labels(x, labels) if self.condition == "digit+thickness" else None
        return x, labels, extra


@dataclass
class History:
    """Per-epoch figures in nats per image, and the training time so far."""

    epoch: list[int] = field(default_factory=list)
    train_total: list[float] = field(default_factory=list)
    train_recon: list[float] = field(default_factory=list)
    train_kl: list[float] = field(default_factory=list)
    test_total: list[float] = field(default_factory=list)
    test_recon: list[float] = field(default_factory=list)
    test_kl: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    interrupted: bool = False

    def to_dict(self) -> dict:
        """Plain lists and numbers, for JSON and for checkpoints."""
        return dataclasses.asdict(self)


def flush_tiny_moments(optimizer: torch.optim.Optimizer) -> None:
    """Set Adam's moment estimates below ``TINY_MOMENT`` to exactly zero.

    A weight that stops getting gradient (one reading a pixel that is almost always black,
    or feeding a ReLU that went silent) keeps a momentum shrinking by 0.9 per step until it
    is subnormal (below 1.2e-38), where a CPU computes many times slower: without this,
    epochs took 60% longer after the first few. Such a moment moves its weight by less than
    1e-20. ``torch.set_flush_denormal`` is no substitute: it covers only the calling thread.
    """
    with torch.no_grad():
        for state in optimizer.state.values():
            for name in ("exp_avg", "exp_avg_sq"):
                moment = state.get(name)
                if moment is not None:
                    moment.masked_fill_(moment.abs() < TINY_MOMENT, 0.0)


def training_step(model: CVAE, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                  y_onehot: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """03_training's step on one batch: encode, sample z, decode, loss, backward, update.

    The one-hot labels come in ready-made (built once per run, not once per step), and the
    (reconstruction, KL) sums come back as a tensor: no ``.item()``, so no wait each step.
    """
    mu, logvar = model.encode(x, y_onehot)
    z = model.reparameterize(mu, logvar)
    logits = model.decode_logits(z, y_onehot)
    terms = cvae_loss(logits, x, mu, logvar, beta)
    optimizer.zero_grad(set_to_none=True)
    (terms.total / len(x)).backward()  # nats per image: the step size ignores batch size
    optimizer.step()
    return torch.stack((terms.recon, terms.kl)).detach()


def train_one_epoch(model: CVAE, optimizer: torch.optim.Optimizer, scheduler, x: torch.Tensor,
                    y_onehot: torch.Tensor, config: TrainConfig, step: int,
                    generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """One pass over a random permutation of the data; returns summed (recon, KL) and the step."""
    warmup_steps = round(config.warmup_epochs * math.ceil(len(x) / config.batch_size))
    sums = torch.zeros(2, device=x.device)
    model.train()
    for idx in torch.randperm(len(x), generator=generator).to(x.device).split(config.batch_size):
        sums += training_step(model, optimizer, x.index_select(0, idx),
                              y_onehot.index_select(0, idx),
                              kl_weight(step, warmup_steps, config.beta))
        if scheduler is not None:
            scheduler.step()
        step += 1
        if step % FLUSH_EVERY == 0:
            flush_tiny_moments(optimizer)
    return sums, step


@shares_cores  # while it trains, this process takes only its fair share of the cores
def train(config: TrainConfig = TrainConfig(), device: torch.device | None = None,
          progress: bool = True, on_epoch: Callable[[History], None] | None = None,
          start: tuple[CVAE, History] | None = None) -> tuple[CVAE, History]:
    """Train a CVAE as ``config`` says; Ctrl-C stops early and returns what was learned.

    ``on_epoch(history)`` is called after every epoch (the benchmarks time epochs with it).
    ``start`` = (model, history) continues that model: its weights are the starting point and
    its history the first epochs of the returned one (``config.continues`` names it).
    """
    validate.train_inputs(validate.instance_of(config, TrainConfig, "config"), on_epoch, start)
    device = pick_device() if device is None else torch.device(device)
    x, labels, extra = config.load_data(train=True)
    test_x, test_labels, test_extra = config.load_data(train=False)
    seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = config.build_model().to(device)
    history, step, elapsed = History(), 0, 0.0
    if start is not None:
        model.load_state_dict(start[0].state_dict())
        history = History(**start[1].to_dict())
        history.interrupted, elapsed = False, (history.seconds or [0.0])[-1]
    first_epoch = len(history.epoch) + 1
    x = x.to(device)
    y_onehot = condition(model, labels.to(device), None if extra is None else extra.to(device))
    # The fused Adam updates all weights in one kernel instead of a dozen small ones per step.
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 fused=device.type in ("cpu", "cuda"))
    steps_per_epoch = math.ceil(len(x) / config.batch_size)
    scheduler = (torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.num_epochs * steps_per_epoch)
        if config.schedule == "onecycle" else None)
    bar = tqdm(range(first_epoch, first_epoch + config.num_epochs), desc="training",
               unit="epoch", disable=not progress)
    try:
        for epoch in bar:
            began = time.perf_counter()
            sums, step = train_one_epoch(model, optimizer, scheduler, x, y_onehot, config,
                                         step, generator)
            elapsed += time.perf_counter() - began
            recon, kl = (sums / len(x)).tolist()
            test_terms = dataset_loss(model, test_x, test_labels, test_extra)
            history.epoch.append(epoch)
            for name, value in zip(("total", "recon", "kl"), (recon + kl, recon, kl)):
                getattr(history, f"train_{name}").append(value)
                getattr(history, f"test_{name}").append(test_terms[name])
            history.seconds.append(elapsed)
            bar.set_postfix(test=f"{test_terms['total']:.1f} nats",
                            kl=f"{test_terms['kl']:.1f}")
            if on_epoch is not None:
                on_epoch(history)
    except KeyboardInterrupt:
        history.interrupted = True
        print(f"Interrupted after {len(history.epoch)} full epoch(s): returning the model "
              f"trained so far (it keeps every step it took).")
    finally:
        bar.close()
    model.eval()
    return model, history
