"""How good is a trained CVAE? Test loss in nats per image, and the figures the lessons read.

Introduced in 03_training. All figures follow the convention of ``cvae_lib.losses``:
nats per image, summed over pixels and latent dimensions, averaged over images. The figures
only the main job and the benchmarks use (IWAE bound, diversity) are in ``cvae_lib.metrics``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from cvae_lib.classifier import predict
from cvae_lib.generation import samples_per_class
from cvae_lib.infra.trainings import shares_cores
from cvae_lib.losses import kl_divergence, reconstruction_loss
from cvae_lib.models import CVAE
from cvae_lib.thickness import ThicknessCVAE, condition
from cvae_lib.validate import (as_images, as_labels, check_model, finite_number, integer,
                               label_classes, model_device)


@contextmanager
def evaluating(model: CVAE, seed: int) -> Iterator[None]:
    """Eval mode and a random stream of its own seeded with ``seed``, both undone afterwards.

    The figure repeats, and the caller's random stream and train/eval mode are kept.
    """
    was_training = model.training
    model.eval()
    device = model_device(model)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            yield
    finally:
        model.train(was_training)


def batches(model: CVAE, x: torch.Tensor, labels: torch.Tensor, extra: torch.Tensor | None,
            batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x, y_onehot)`` of consecutive batches of the dataset, on the model's device."""
    device = model_device(model)
    for start in range(0, len(x), batch_size):
        rows = slice(start, start + batch_size)
        eb = None if extra is None else extra[rows].to(device)
        yield x[rows].to(device), condition(model, labels[rows].to(device), eb)


@shares_cores
@torch.no_grad()
def dataset_loss(model: CVAE, x: torch.Tensor, labels: torch.Tensor,
                 extra: torch.Tensor | None = None, batch_size: int = 2000,
                 seed: int = 0) -> dict[str, float]:
    """Negative ELBO of a dataset in nats per image: ``{"total", "recon", "kl"}``.

    z is drawn with its own fixed seed: the figure repeats, the caller's random stream is kept.
    """
    x, labels = check_data(model, x, labels)
    batch_size = integer(batch_size, "batch_size")
    recon = kl = 0.0
    with evaluating(model, seed):
        for xb, y_onehot in batches(model, x, labels, extra, batch_size):
            mu, logvar = model.encode(xb, y_onehot)
            logits = model.decode_logits(model.reparameterize(mu, logvar), y_onehot)
            recon += reconstruction_loss(logits, xb).item()
            kl += kl_divergence(mu, logvar).item()
    n = len(x)
    return {"total": (recon + kl) / n, "recon": recon / n, "kl": kl / n}


def check_data(model: CVAE, x: torch.Tensor, labels: torch.Tensor
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
    x, labels = check_data(model, x, labels)
    batch_size = integer(batch_size, "batch_size")
    mus, logvars = [], []
    for xb, y_onehot in batches(model, x, labels, extra, batch_size):
        mu, logvar = model.encode(xb, y_onehot)
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
    threshold = finite_number(threshold, "threshold")
    mu, _ = posterior_params(model, x, labels, extra)
    return int((mu.var(dim=0, unbiased=False) > threshold).sum())


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
    integer(n_per_class, "n_per_class", minimum=2)


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


@shares_cores
def label_leakage(model: CVAE, x: torch.Tensor, labels: torch.Tensor,
                  extra: torch.Tensor | None = None, steps: int = 100) -> float:
    """How well the digit can be read from mu: test accuracy of a logistic regression.

    The regression is fitted on mu of the first half of ``x`` and scored on the second half
    (chance is 0.1). A CVAE gets the label for free, so its z need not encode the digit: a low
    figure means z holds style, not identity. An unconditional VAE's mu leaks a lot.
    """
    x, labels = check_data(model, x, labels)
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
