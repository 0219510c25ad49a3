"""How good is a trained CVAE? Test loss in nats per image, and more.

Introduced in 03_training. All figures follow the convention of ``cvae_lib.losses``:
nats per image, summed over pixels and latent dimensions, averaged over images.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from cvae_lib.classifier import (DigitClassifier, features, predict)
from cvae_lib.generation import samples_per_class
from cvae_lib.infra.trainings import shares_cores
from cvae_lib.losses import kl_divergence, reconstruction_loss
from cvae_lib.models import CVAE
from cvae_lib.thickness import ThicknessCVAE, condition
from cvae_lib.validate import (as_images, as_labels, check_model, label_classes, model_device,
                               positive_int)


@shares_cores
@torch.no_grad()
def dataset_loss(model: CVAE, x: torch.Tensor, labels: torch.Tensor,
                 extra: torch.Tensor | None = None, batch_size: int = 2000,
                 seed: int = 0) -> dict[str, float]:
    """Negative ELBO of a dataset in nats per image: ``{"total", "recon", "kl"}``.

    z is drawn with its own fixed seed: the figure repeats, the caller's random stream is kept.
    """
    x, labels = _check_data(model, x, labels)
    batch_size = positive_int(batch_size, "batch_size")
    was_training = model.training
    model.eval()
    device = model_device(model)
    recon = kl = 0.0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device)
            eb = None if extra is None else extra[start:start + batch_size].to(device)
            y_onehot = condition(model, labels[start:start + batch_size].to(device), eb)
            mu, logvar = model.encode(xb, y_onehot)
            logits = model.decode_logits(model.reparameterize(mu, logvar), y_onehot)
            recon += reconstruction_loss(logits, xb).item()
            kl += kl_divergence(mu, logvar).item()
    model.train(was_training)
    n = len(x)
    return {"total": (recon + kl) / n, "recon": recon / n, "kl": kl / n}


def _check_data(model: CVAE, x: torch.Tensor, labels: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the model and the data before any work; return x flattened and labels as ids."""
    check_model(model)
    if not isinstance(x, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError("x and labels must be torch tensors (e.g. from load_mnist())")
    if len(x) == 0:
        raise ValueError("cannot evaluate an empty dataset: pass at least one image")
    if len(x) != len(labels):
        raise ValueError(f"{len(x)} images but {len(labels)} labels: give every image its label")
    return as_images(x), as_labels(labels, label_classes(model))


@shares_cores
@torch.no_grad()
def posterior_params(model: CVAE, x: torch.Tensor, labels: torch.Tensor,
                     extra: torch.Tensor | None = None, batch_size: int = 2000
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu, logvar)`` of q(z | x, y) for every image, in batches, on the CPU."""
    x, labels = _check_data(model, x, labels)
    batch_size = positive_int(batch_size, "batch_size")
    device = model_device(model)
    mus, logvars = [], []
    for start in range(0, len(x), batch_size):
        eb = None if extra is None else extra[start:start + batch_size].to(device)
        y_onehot = condition(model, labels[start:start + batch_size].to(device), eb)
        mu, logvar = model.encode(x[start:start + batch_size].to(device), y_onehot)
        mus.append(mu.float().cpu())
        logvars.append(logvar.float().cpu())
    return torch.cat(mus), torch.cat(logvars)


def kl_per_dimension(model: CVAE, x: torch.Tensor, labels: torch.Tensor,
                     extra: torch.Tensor | None = None) -> torch.Tensor:
    """Mean KL(q(z_d | x, y) || N(0, 1)) of each latent dimension d, in nats: (latent_dim,).

    The entries add up to the KL term of ``dataset_loss``. A dimension whose KL stays near 0
    carries no information about the image: the posterior has collapsed onto the prior there.
    """
    mu, logvar = posterior_params(model, x, labels, extra)
    return (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).mean(dim=0)


def active_units(model: CVAE, x: torch.Tensor, labels: torch.Tensor,
                 extra: torch.Tensor | None = None, threshold: float = 0.1) -> int:
    """How many latent dimensions the model actually uses (Burda et al., 2016).

    Dimension d is active when its posterior mean moves with the data: Var_x[mu_d] > threshold.
    A collapsed dimension gives every image the same mu_d, however different the images are.
    Burda et al. used 0.01; the course uses 0.1, because under a strong KL weight dead
    dimensions still wobble above 0.01 (03_training, section 4).
    """
    if not (isinstance(threshold, (int, float)) and threshold >= 0):
        raise ValueError(f"threshold must be a number >= 0, not {threshold!r}")
    mu, _ = posterior_params(model, x, labels, extra)
    return int((mu.var(dim=0, unbiased=False) > threshold).sum())


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
    k = positive_int(k, "k")
    x, labels = _check_data(model, x, labels)
    batch_size = max(1, 20_000 // k) if batch_size is None else positive_int(batch_size,
                                                                            "batch_size")
    was_training = model.training
    model.eval()
    device = model_device(model)
    total = 0.0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device)
            eb = None if extra is None else extra[start:start + batch_size].to(device)
            y_onehot = condition(model, labels[start:start + batch_size].to(device), eb)
            mu, logvar = model.encode(xb, y_onehot)
            z = mu + (0.5 * logvar).exp() * torch.randn(k, *mu.shape, device=device)
            logits = model.decode_logits(z.reshape(-1, model.latent_dim),
                                         y_onehot.repeat(k, 1)).reshape(k, len(xb), -1)
            log_px = -F.binary_cross_entropy_with_logits(
                logits, xb.expand(k, -1, -1), reduction="none").sum(-1)
            log_w = log_px + _log_normal(z, torch.zeros_like(z), torch.zeros_like(z)) \
                - _log_normal(z, mu, logvar)
            total += (torch.logsumexp(log_w, dim=0) - math.log(k)).sum().item()
    model.train(was_training)
    return -total / len(x)


def is_digit_model(model: CVAE) -> bool:
    """True for a model conditioned on the ten digits and nothing else."""
    return (isinstance(model, CVAE) and model.num_classes == 10
            and not isinstance(model, ThicknessCVAE))


def check_digit_model(model: CVAE, n_per_class: int) -> None:
    """Raise unless ``model`` draws digits on demand and ``n_per_class`` is usable."""
    if not isinstance(model, CVAE):
        raise TypeError(f"model must be a cvae_lib CVAE, not {type(model).__name__}")
    if not is_digit_model(model):
        raise ValueError(f"this needs a CVAE conditioned on the digit alone; this model has "
                         f"num_classes={model.num_classes} and a condition of "
                         f"{model.decoder[0].in_features - model.latent_dim} entries")
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 2:
        raise ValueError(f"n_per_class must be an integer >= 2, not {n_per_class!r}")


@shares_cores
def conditional_accuracy(model: CVAE, classifier: torch.nn.Module, n_per_class: int = 100,
                         temperature: float = 1.0, seed: int = 0) -> dict:
    """How often a sample asked for digit d is read as d by the classifier.

    For each label, ``n_per_class`` codes z ~ N(0, temperature^2 I) are decoded and classified.
    Returns ``{"overall": share, "per_label": {digit: share}}``.
    """
    check_digit_model(model, n_per_class)
    images = samples_per_class(model, n_per_class, temperature=temperature, seed=seed)
    labels = torch.arange(10).repeat_interleave(n_per_class)
    hits = (predict(classifier, images) == labels).float()
    return {"overall": hits.mean().item(),
            "per_label": {d: hits[labels == d].mean().item() for d in range(10)}}


def spread(images: torch.Tensor) -> float:
    """Mean Euclidean distance between two different images of the set, in pixel space."""
    if len(images) < 2:
        raise ValueError("spread needs at least two images")
    images = images.float()
    return (torch.cdist(images, images).sum() / (len(images) * (len(images) - 1))).item()


@shares_cores
def _spread_ratios(model: CVAE, x: torch.Tensor, labels: torch.Tensor, n_per_class: int,
                   seed: int, space: Callable[[torch.Tensor], torch.Tensor]) -> dict:
    """Per digit: ``spread`` of samples over that of real images, both mapped by ``space``."""
    x, labels = _check_data(model, x, labels)
    check_digit_model(model, n_per_class)
    real = [x[labels == digit][:n_per_class] for digit in range(10)]
    if min(map(len, real)) < 2:
        raise ValueError(f"x holds {[len(r) for r in real]} images of the digits 0-9; diversity"
                         f" needs at least two real images of every digit")
    real_spread = [spread(space(images)) for images in real]  # a bad ``space`` fails here
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
def label_leakage(model: CVAE, x: torch.Tensor, labels: torch.Tensor,
                  extra: torch.Tensor | None = None, steps: int = 100) -> float:
    """How well the digit can be read from mu: test accuracy of a logistic regression.

    The regression is fitted on mu of the first half of ``x`` and scored on the second half
    (chance is 0.1). A CVAE gets the label for free, so its z need not encode the digit: a low
    figure means z holds style, not identity. An unconditional VAE's mu leaks a lot.
    """
    x, labels = _check_data(model, x, labels)
    if len(x) < 20:
        raise ValueError(f"label_leakage needs at least 20 images, got {len(x)}")
    mu, _ = posterior_params(model, x, labels, extra)
    labels = labels.cpu()
    half = len(mu) // 2
    mean, std = mu[:half].mean(0), mu[:half].std(0) + 1e-6
    features = (mu - mean) / std
    with torch.enable_grad():
        linear = torch.nn.Linear(mu.shape[1], 10)
        optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=steps,
                                      line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(linear(features[:half]), labels[:half]) \
                + 1e-3 * linear.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
    with torch.no_grad():
        predicted = linear(features[half:]).argmax(1)
    return (predicted == labels[half:]).float().mean().item()
