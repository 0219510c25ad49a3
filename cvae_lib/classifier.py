"""An independent judge of generated digits: a small CNN trained by the project on MNIST.

Introduced in 04_generation. ``load_or_train_classifier()`` trains it once (about a minute on a
laptop CPU, >= 99% test accuracy) and afterwards loads it from the checkpoint cache. With
``CVAE_FAST=1`` it trains on a small subset for two epochs, so tests stay quick.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from cvae_lib.data import load_mnist
from cvae_lib.infra.runtime import fast_mode, pick_device
from cvae_lib.infra.storage import (CheckpointError, cache_dir, find_cached, read_payload,
                                    write_or_warn)
from cvae_lib.infra.trainings import shares_cores
from cvae_lib.validate import as_images, finite_weights, instance_of

CLASSIFIER_VERSION = 1
NUM_EPOCHS = 3
BATCH_SIZE = 256
PEAK_LR = 5e-3
FAST_TRAIN_LIMIT = 8192
FAST_EPOCHS = 2


class DigitClassifier(nn.Module):
    """Two 3x3 convolutions with max-pooling, then two linear layers: 28x28 image -> 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
        # Channels-last weights make the convolutions and pooling about 3x faster on a CPU.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (batch, 10) for images of shape (batch, 784) or (batch, 1, 28, 28)."""
        return self.head[-1](self.embed(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The 128 features the last layer reads the digit from: (batch, 128), all >= 0."""
        return self.head[:-1](self.features(as_images(x).reshape(-1, 1, 28, 28)))


def bf16_is_fast(device: torch.device) -> bool:
    """True where bfloat16 autocast speeds training up: CUDA, or a CPU with bf16 instructions."""
    if device.type == "cuda":
        return True
    try:
        return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@shares_cores
def train_classifier(num_epochs: int = NUM_EPOCHS, train_limit: int | None = None,
                     seed: int = 0, progress: bool = True) -> DigitClassifier:
    """Train the classifier on MNIST train: one-cycle Adam, bf16 where the hardware has it."""
    device = pick_device()
    x, labels = load_mnist(train=True, limit=train_limit)
    x, labels = x.to(device), labels.to(device)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DigitClassifier().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=PEAK_LR)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=PEAK_LR, total_steps=num_epochs * math.ceil(len(x) / BATCH_SIZE))
    use_bf16 = bf16_is_fast(device)
    model.train()
    for _ in tqdm(range(num_epochs), desc="classifier", unit="epoch", disable=not progress):
        for idx in torch.randperm(len(x), generator=generator).to(device).split(BATCH_SIZE):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(x[idx])
            loss = F.cross_entropy(logits.float(), labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return model.eval()


@shares_cores
@torch.no_grad()
def _in_batches(classifier: DigitClassifier, x: torch.Tensor,
                step: Callable[[torch.Tensor], torch.Tensor], batch_size: int) -> torch.Tensor:
    """``step`` (a reading of ``classifier``) of ``x`` in batches, in eval mode, on the CPU."""
    was_training = classifier.training
    classifier.eval()
    device = next(classifier.parameters()).device
    out = [step(batch.to(device)).float().cpu() for batch in x.split(batch_size)]
    classifier.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def predict(classifier: DigitClassifier, x: torch.Tensor, batch_size: int = BATCH_SIZE
            ) -> torch.Tensor:
    """The digit the classifier sees in each image: int64 tensor (batch,) on the CPU."""
    instance_of(classifier, DigitClassifier, "classifier",
                "load it with load_or_train_classifier()")
    return _in_batches(classifier, x, lambda b: classifier(b).argmax(1), batch_size).long()


def features(classifier: DigitClassifier, x: torch.Tensor, batch_size: int = BATCH_SIZE
             ) -> torch.Tensor:
    """The classifier's penultimate features of each image: float tensor (batch, 128)."""
    return _in_batches(classifier, x, classifier.embed, batch_size).reshape(-1, 128)


def classifier_accuracy(classifier: DigitClassifier, x: torch.Tensor,
                        labels: torch.Tensor) -> float:
    """Share of images whose predicted digit equals their label."""
    return (predict(classifier, x) == labels.cpu()).float().mean().item()


def classifier_path() -> Path:
    """Cache file of the classifier; fast mode has its own, so tests never clobber the real one."""
    name = f"classifier-v{CLASSIFIER_VERSION}-e{NUM_EPOCHS}"
    return cache_dir() / (f"{name}-fast.pt" if fast_mode() else f"{name}.pt")


# A classifier checkpoint costs only a minute to make again.
REPAIR = "The classifier is rebuilt on demand: delete it and it will be trained again."


def _read_classifier(path: Path) -> tuple[DigitClassifier, float]:
    """The cached classifier and its test accuracy, or a CheckpointError saying to delete it."""
    payload = read_payload(path, CLASSIFIER_VERSION, REPAIR)
    try:
        accuracy = float(payload["test_accuracy"])
        model = DigitClassifier()
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        reason = " ".join(str(err).split())[:200]
        raise CheckpointError(f"{path} is not a classifier checkpoint ({type(err).__name__}: "
                              f"{reason}). {REPAIR}") from err
    return finite_weights(model, str(path)), accuracy


def load_or_train_classifier(progress: bool = True) -> DigitClassifier:
    """The project's MNIST classifier: loaded from the cache, or trained once and cached."""
    path = classifier_path()
    if find_cached(path).is_file():
        model, accuracy = _read_classifier(find_cached(path))
        if progress:
            print(f"Loaded the cached classifier {path.name} (test accuracy {accuracy:.2%}).")
        return model.to(pick_device()).eval()
    start = time.perf_counter()
    model = train_classifier(num_epochs=FAST_EPOCHS if fast_mode() else NUM_EPOCHS,
                             train_limit=FAST_TRAIN_LIMIT if fast_mode() else None,
                             progress=progress)
    seconds = time.perf_counter() - start
    accuracy = classifier_accuracy(model, *load_mnist(train=False))
    payload = {"version": CLASSIFIER_VERSION, "test_accuracy": accuracy, "seconds": seconds,
               "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}
    write_or_warn(path, payload, "the classifier")
    if progress:
        print(f"Trained the classifier in {seconds:.0f} s: test accuracy {accuracy:.2%}.")
    return model
