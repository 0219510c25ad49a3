"""Evaluation figures on real MNIST: KL per dimension, active units, the IWAE bound, the
classifier, conditional accuracy, diversity and label leakage."""

from __future__ import annotations

import copy

import pytest
import torch

from cvae_lib import classifier as classifier_module
from cvae_lib.classifier import (DigitClassifier, classifier_accuracy, load_or_train_classifier,
                                 train_classifier)
from cvae_lib.data import load_mnist
from cvae_lib.evaluate import (active_units, conditional_accuracy, dataset_loss, diversity_ratio,
                               evaluate_model, importance_weighted_bound, kl_per_dimension,
                               label_leakage, spread)
from cvae_lib.storage import cache_dir
from cvae_lib.training import TrainConfig, train

SMALL = dict(num_epochs=4, train_limit=4096, batch_size=64, lr=2e-3, schedule="constant",
             beta=1.0)


@pytest.fixture(scope="module")
def test_images() -> tuple[torch.Tensor, torch.Tensor]:
    """500 real MNIST test images and their labels."""
    return load_mnist(train=False, limit=500)


@pytest.fixture(scope="module")
def trained():
    """A CVAE trained briefly on 4096 real MNIST images."""
    return train(TrainConfig(**SMALL), progress=False)[0]


@pytest.fixture(scope="module")
def collapsed():
    """The same CVAE trained with a huge KL weight: its posterior collapses onto the prior."""
    return train(TrainConfig(**{**SMALL, "beta": 100.0}), progress=False)[0]


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


@pytest.fixture(scope="module")
def classifier() -> DigitClassifier:
    """The CNN judge, trained for two epochs on 8192 real MNIST images."""
    return train_classifier(num_epochs=2, train_limit=8192, progress=False)


@pytest.fixture(scope="module")
def vae():
    """An unconditional VAE trained like ``trained``: it gets no label at all."""
    return train(TrainConfig(**SMALL, architecture="vae"), progress=False)[0]


def test_classifier_reads_real_test_digits(classifier, test_images):
    assert classifier_accuracy(classifier, *test_images) > 0.93


def test_classifier_is_cached_and_loaded_safely(monkeypatch):
    monkeypatch.setattr(classifier_module, "FAST_TRAIN_LIMIT", 512)
    monkeypatch.setattr(classifier_module, "FAST_EPOCHS", 1)
    first = load_or_train_classifier(progress=False)
    [path] = cache_dir().glob("classifier-*.pt")
    assert path.name.endswith("-fast.pt")  # fast mode never overwrites the real classifier
    second = load_or_train_classifier(progress=False)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="delete it"):
        load_or_train_classifier(progress=False)


def test_conditional_accuracy_beats_chance_and_untrained_models(trained, classifier):
    result = conditional_accuracy(trained, classifier, n_per_class=50)
    assert set(result["per_label"]) == set(range(10))
    assert result["overall"] == pytest.approx(sum(result["per_label"].values()) / 10)
    untrained = TrainConfig().build_model()
    chance_like = conditional_accuracy(untrained, classifier, n_per_class=50)["overall"]
    assert chance_like < 0.2 and result["overall"] > chance_like + 0.1


def test_diversity_is_zero_for_one_repeated_image_and_positive_for_samples(trained,
                                                                           test_images):
    assert spread(test_images[0][:1].repeat(5, 1)) == 0
    result = diversity_ratio(trained, *test_images, n_per_class=30)
    assert 0.05 < result["overall"] < 1.5 and len(result["per_label"]) == 10
    with pytest.raises(ValueError, match="at least two real images of every digit"):
        diversity_ratio(trained, test_images[0][:5], test_images[1][:5])


def test_label_leakage_sees_what_mu_holds(trained, vae, test_images):
    label_only, blind = copy.deepcopy(trained), copy.deepcopy(trained)
    with torch.no_grad():
        label_only.encoder[0].weight[:, :784] = 0  # mu depends on the label alone
        blind.encoder[0].weight.zero_()  # mu is the same for every image
    assert label_leakage(label_only, *test_images) > 0.95
    assert label_leakage(blind, *test_images) < 0.2
    assert label_leakage(vae, *test_images) > 0.3  # a VAE's code tells digits apart unasked
    with pytest.raises(ValueError, match="at least 20 images"):
        label_leakage(trained, test_images[0][:10], test_images[1][:10])


def test_conditional_figures_need_a_digit_model(vae, classifier):
    with pytest.raises(ValueError, match="conditioned on the digit alone"):
        conditional_accuracy(vae, classifier)
    with pytest.raises(ValueError, match="n_per_class"):
        conditional_accuracy(TrainConfig().build_model(), classifier, n_per_class=1)
    with pytest.raises(TypeError, match="DigitClassifier"):
        conditional_accuracy(TrainConfig().build_model(), torch.nn.Linear(784, 10))


def test_evaluate_model_gathers_every_figure(trained, classifier):
    metrics = evaluate_model(trained, classifier, num_images=200, k=10, n_per_class=20)
    assert metrics["eval_images"] == 200 and len(metrics["kl_per_dim"]) == 16
    assert 0 <= metrics["active_units"] <= 16 and 0 <= metrics["label_leakage"] <= 1
    assert 0 < metrics["conditional_accuracy"] <= 1 and metrics["diversity_ratio"] > 0
    assert metrics["iwae_nll"] < dataset_loss(trained, *load_mnist(train=False, limit=200))[
        "total"]
