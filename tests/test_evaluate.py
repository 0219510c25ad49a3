"""Evaluation figures on real MNIST: KL per dimension, active units, the IWAE bound."""

from __future__ import annotations

import pytest
import torch

from cvae_lib.data import load_mnist
from cvae_lib.evaluate import (active_units, dataset_loss, importance_weighted_bound,
                               kl_per_dimension)
from cvae_lib.train import TrainConfig, train

SMALL = dict(num_epochs=3, train_limit=2048, batch_size=64, lr=2e-3)


@pytest.fixture(scope="module")
def test_images() -> tuple[torch.Tensor, torch.Tensor]:
    """500 real MNIST test images and their labels."""
    return load_mnist(train=False, limit=500)


@pytest.fixture(scope="module")
def trained():
    """A CVAE trained briefly on 2048 real MNIST images."""
    return train(TrainConfig(**SMALL), progress=False)[0]


@pytest.fixture(scope="module")
def collapsed():
    """The same CVAE trained with a huge KL weight: its posterior collapses onto the prior."""
    return train(TrainConfig(**SMALL, beta=100.0), progress=False)[0]


def test_kl_per_dimension_adds_up_to_the_kl_term(trained, test_images):
    kl = kl_per_dimension(trained, *test_images)
    assert kl.shape == (16,) and (kl >= 0).all()
    assert kl.sum().item() == pytest.approx(dataset_loss(trained, *test_images)["kl"], rel=1e-4)


def test_active_units_drop_to_zero_when_the_posterior_collapses(trained, collapsed, test_images):
    assert active_units(trained, *test_images) >= 8
    assert active_units(collapsed, *test_images) == 0
    assert kl_per_dimension(collapsed, *test_images).max() < 0.01
    assert active_units(trained, *test_images, threshold=1e9) == 0


def test_iwae_bound_is_tighter_than_the_elbo(trained, test_images):
    x, labels = test_images
    elbo = dataset_loss(trained, x, labels)["total"]
    bound = importance_weighted_bound(trained, x, labels, k=100)
    assert bound < elbo - 0.5
    assert importance_weighted_bound(trained, x, labels, k=1) == pytest.approx(elbo, abs=1.0)
    assert importance_weighted_bound(trained, x, labels, k=100) == bound  # seeded: repeatable


def test_iwae_bound_does_not_depend_on_the_batching(trained, test_images):
    x, labels = test_images[0][:40], test_images[1][:40]
    a = importance_weighted_bound(trained, x, labels, k=20, batch_size=7)
    b = importance_weighted_bound(trained, x, labels, k=20, batch_size=40)
    assert a == pytest.approx(b, abs=2.0)


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_iwae_rejects_bad_sample_counts(trained, test_images, k):
    with pytest.raises(ValueError, match="k must be a positive integer"):
        importance_weighted_bound(trained, *test_images, k=k)


def test_bad_inputs_are_explained(trained, test_images):
    x, labels = test_images
    with pytest.raises(ValueError, match="empty dataset"):
        kl_per_dimension(trained, x[:0], labels[:0])
    with pytest.raises(ValueError, match="500 images but 499 labels"):
        active_units(trained, x, labels[:-1])
    with pytest.raises(TypeError, match="model must be a cvae_lib CVAE"):
        importance_weighted_bound(torch.nn.Linear(784, 10), x, labels)
    with pytest.raises(ValueError, match="threshold"):
        active_units(trained, x, labels, threshold=-1)
