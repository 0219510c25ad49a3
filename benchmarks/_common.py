"""What the benchmarks share: the spec's training recipe, written once, and small helpers.

The spec's recipe, as its tutorial gives it: a CVAE whose decoder ends in a sigmoid, MNIST
through ``torchvision.datasets.MNIST`` with ``transforms.ToTensor()``, a shuffling
``DataLoader`` of batch 128, Adam at lr 1e-3, binary cross-entropy summed plus the KL term,
and ``loss.item()`` after every step. Its weights have the same names and shapes as a
``cvae_lib.CVAE``, so every evaluation figure is computed by the same code for both recipes.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from cvae_lib.data import data_dir, ensure_dataset
from cvae_lib.models import CVAE

SPEC_BATCH_SIZE = 128
SPEC_LR = 1e-3
SPEC_EPOCHS = 50
LOSS_TARGET = 95.1  # nats per image: the spec recipe's test loss after 50 epochs


class SpecCVAE(nn.Module):
    """The spec's CVAE, layer for layer: 794 -> 256 -> 256 -> (mu, logvar); 26 -> ... -> 784."""

    def __init__(self, latent_dim: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.encoder = nn.Sequential(nn.Linear(784 + num_classes, 256), nn.ReLU(),
                                     nn.Linear(256, 256), nn.ReLU())
        self.fc_mu = nn.Linear(256, latent_dim)
        self.fc_logvar = nn.Linear(256, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim + num_classes, 256), nn.ReLU(),
                                     nn.Linear(256, 256), nn.ReLU(),
                                     nn.Linear(256, 784), nn.Sigmoid())

    def encode(self, x: torch.Tensor, labels_onehot: torch.Tensor):  # noqa: ANN201
        """Mean and log-variance of q(z | x, y)."""
        h = self.encoder(torch.cat([x, labels_onehot], dim=1))
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps."""
        std = torch.exp(0.5 * logvar)
        return mu + std * torch.randn_like(std)

    def decode(self, z: torch.Tensor, labels_onehot: torch.Tensor) -> torch.Tensor:
        """Pixel intensities in [0, 1]."""
        return self.decoder(torch.cat([z, labels_onehot], dim=1))


def spec_train_step(model: SpecCVAE, images: torch.Tensor, labels: torch.Tensor,
                    optimizer: torch.optim.Optimizer) -> float:
    """One step exactly as the spec writes it, returning ``loss.item()``."""
    optimizer.zero_grad()
    labels_onehot = torch.zeros(labels.size(0), 10)
    labels_onehot.scatter_(1, labels.unsqueeze(1), 1)
    mu, logvar = model.encode(images, labels_onehot)
    z = model.reparameterize(mu, logvar)
    reconstruction = model.decode(z, labels_onehot)
    recon_loss = F.binary_cross_entropy(reconstruction, images, reduction="sum")
    kl_loss = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    loss = recon_loss + kl_loss
    loss.backward()
    optimizer.step()
    return loss.item()


class SpecRecipe:
    """The spec's model, optimizer and DataLoader; ``epoch()`` trains one epoch, timed."""

    def __init__(self, seed: int = 0) -> None:
        torch.manual_seed(seed)
        root = ensure_dataset("mnist", data_dir())
        train_dataset = datasets.MNIST(root=str(root), train=True, download=False,
                                       transform=transforms.ToTensor())
        self.loader = DataLoader(train_dataset, batch_size=SPEC_BATCH_SIZE, shuffle=True)
        self.model = SpecCVAE()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=SPEC_LR)

    def epoch(self) -> float:
        """Train one epoch the spec's way; return its wall-clock seconds."""
        self.model.train()
        start = time.perf_counter()
        for images, labels in self.loader:
            spec_train_step(self.model, images.view(-1, 784), labels, self.optimizer)
        return time.perf_counter() - start

    def epoch_from_tensors(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One epoch of the same steps, batches cut from one tensor by a random permutation."""
        self.model.train()
        start = time.perf_counter()
        order = torch.randperm(len(images))
        for first in range(0, len(images), SPEC_BATCH_SIZE):
            idx = order[first:first + SPEC_BATCH_SIZE]
            spec_train_step(self.model, images[idx], labels[idx], self.optimizer)
        return time.perf_counter() - start

    def as_course_model(self) -> CVAE:
        """The same weights in a ``cvae_lib.CVAE`` (identical layers), for evaluation."""
        model = CVAE()
        model.load_state_dict(self.model.state_dict())
        return model.eval()


def median(values: list[float]) -> float:
    """The median of a non-empty list."""
    return statistics.median(values)


def cpu_name() -> str:
    """The CPU's model name, family and model, as /proc/cpuinfo gives them.

    "AMD EPYC" alone names both Zen 3 (family 25, model 1) and Zen 4 (family 25, model 17).
    """
    try:
        with open("/proc/cpuinfo") as info:
            fields = dict(line.split(":", 1) for line in info.read().split("\n\n")[0]
                          .splitlines() if ":" in line)
    except OSError:
        return platform.processor() or platform.machine()
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    return (f"{fields.get('model name', platform.machine())} (family {fields.get('cpu family')}"
            f" model {fields.get('model')})")


def machine() -> str:
    """One line naming the CPU, its vector kernels, cores, torch version and thread count."""
    return (f"{cpu_name()}, torch kernels {torch.backends.cpu.get_cpu_capability()}, "
            f"{os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")
