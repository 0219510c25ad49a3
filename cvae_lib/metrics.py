"""Every evaluation figure of a trained model at once: what the main job writes to metrics.json.

Written by the main job (``make demo``; the book's page "The main job, the tests and the
code"); the figures here (the IWAE bound and the two diversity measures) serve that job and the
benchmarks, which call them with values of their own, so they trust their callers. The
notebooks use ``cvae_lib.evaluate``'s figures one at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from cvae_lib.classifier import DigitClassifier, features, load_or_train_classifier
from cvae_lib.data import load_dataset
from cvae_lib.evaluate import (active_units, batches, conditional_accuracy, evaluating,
                               is_digit_model, kl_per_dimension, label_leakage)
from cvae_lib.generation import samples_per_class
from cvae_lib.infra.trainings import shares_cores
from cvae_lib.models import CVAE


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, exp(logvar)) summed over the last dimension."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


@shares_cores
@torch.no_grad()
def importance_weighted_bound(model: CVAE, x: torch.Tensor, labels: torch.Tensor,
                              extra: torch.Tensor | None = None, k: int = 100,
                              batch_size: int | None = None, seed: int = 0) -> float:
    """Negative log-likelihood estimate -log p(x | y) in nats per image (lower is better).

    The importance-weighted bound of Burda et al. (2016) with ``k`` samples of q(z | x, y):
    log p(x | y) >= E[log (1/k) sum_i p(x | z_i, y) p(z_i) / q(z_i | x, y)]. With k = 1 it is
    the ELBO; it tightens as k grows, so it is <= the test loss. ``batch_size``: images a step.
    """
    batch_size = max(1, 20_000 // k) if batch_size is None else batch_size
    total = 0.0
    with evaluating(model, seed):
        for xb, y_onehot in batches(model, x, labels, extra, batch_size):
            mu, logvar = model.encode(xb, y_onehot)
            z = mu + (0.5 * logvar).exp() * torch.randn(k, *mu.shape, device=mu.device)
            logits = model.decode_logits(z.reshape(-1, model.latent_dim),
                                         y_onehot.repeat(k, 1)).reshape(k, len(xb), -1)
            log_px = -F.binary_cross_entropy_with_logits(
                logits, xb.expand(k, -1, -1), reduction="none").sum(-1)
            log_w = log_px + _log_normal(z, torch.zeros_like(z), torch.zeros_like(z)) \
                - _log_normal(z, mu, logvar)
            total += (torch.logsumexp(log_w, dim=0) - math.log(k)).sum().item()
    return -total / len(x)


def spread(images: torch.Tensor) -> float:
    """Mean Euclidean distance between two different images of the set, in pixel space."""
    images = images.float()
    return (torch.cdist(images, images).sum() / (len(images) * (len(images) - 1))).item()


@shares_cores
def _spread_ratios(model: CVAE, x: torch.Tensor, labels: torch.Tensor, n_per_class: int,
                   seed: int, space: Callable[[torch.Tensor], torch.Tensor]) -> dict:
    """Per digit: ``spread`` of samples over that of real images, both mapped by ``space``."""
    real = [x[labels == digit][:n_per_class] for digit in range(10)]
    real_spread = [spread(space(images)) for images in real]
    fake = samples_per_class(model, n_per_class, seed=seed).cpu().split(n_per_class)
    per_label = {d: spread(space(fake[d])) / real_spread[d] for d in range(10)}
    return {"overall": sum(per_label.values()) / 10, "per_label": per_label}


def diversity_ratio(model: CVAE, x: torch.Tensor, labels: torch.Tensor,
                    n_per_class: int = 100, seed: int = 0) -> dict:
    """Within-class variety of samples from the prior relative to real images of that class.

    Per digit, ``spread`` of ``n_per_class`` samples over that of as many real ones from ``x``;
    0 is one image over and over. Samples are pixel means, smoother than real strokes, so even a
    good model stays below 1. Returns ``{"overall": mean ratio, "per_label": {...}}``.
    """
    return _spread_ratios(model, x, labels, n_per_class, seed, space=lambda images: images)


def feature_diversity(model: CVAE, classifier: DigitClassifier, x: torch.Tensor,
                      labels: torch.Tensor, n_per_class: int = 100, seed: int = 0) -> dict:
    """``diversity_ratio`` in the classifier's feature space (``features``) instead of pixels.

    Two samples count as different when they differ in what a reader of digits notices
    (slant, loops, stroke shapes), not merely in where their pixels lie: a second opinion.
    """
    return _spread_ratios(model, x, labels, n_per_class, seed,
                          space=lambda images: features(classifier, images))


@shares_cores
def evaluate_model(model: CVAE, classifier: DigitClassifier | None = None,
                   dataset: str = "mnist", num_images: int = 1000, k: int = 100,
                   n_per_class: int = 100) -> dict:
    """Every evaluation figure of a trained model, as JSON-friendly values for metrics.json.

    The IWAE bound, active units, KL per dimension and label leakage use the first
    ``num_images`` test images; conditional accuracy and diversity use ``n_per_class``
    samples per digit (skipped, as None, for models not conditioned on the MNIST digit alone).
    """
    x, labels = load_dataset(dataset, train=False)
    x, labels = x[:num_images], labels[:num_images]
    kl = kl_per_dimension(model, x, labels)
    result = {"eval_images": len(x), "iwae_k": k,
              "iwae_nll": importance_weighted_bound(model, x, labels, k=k),
              "active_units": active_units(model, x, labels),
              "kl_per_dim": [round(v, 4) for v in kl.tolist()],
              "label_leakage": label_leakage(model, x, labels),
              "conditional_accuracy": None, "conditional_accuracy_per_label": None,
              "diversity_ratio": None, "feature_diversity": None, "samples_per_class": n_per_class}
    if is_digit_model(model):
        diversity = diversity_ratio(model, x, labels, n_per_class=n_per_class)
        result["diversity_ratio"] = diversity["overall"]
        if dataset == "mnist":
            classifier = classifier or load_or_train_classifier(progress=False)
            accuracy = conditional_accuracy(model, classifier, n_per_class=n_per_class)
            result["conditional_accuracy"] = accuracy["overall"]
            result["conditional_accuracy_per_label"] = accuracy["per_label"]
            result["feature_diversity"] = feature_diversity(
                model, classifier, x, labels, n_per_class=n_per_class)["overall"]
    return result
