"""Evaluation figures on real MNIST: the lessons' (KL per dimension, active units, conditional
accuracy, label leakage), the classifier that judges samples, and the main job's metrics (the
IWAE bound, the two diversities, ``evaluate_model``)."""

from __future__ import annotations

import pytest
import torch

from cvae_lib import classifier as classifier_module
from cvae_lib.classifier import (DigitClassifier, classifier_accuracy, features,
                                 load_or_train_classifier, predict, train_classifier)
from cvae_lib.data import load_mnist
from cvae_lib.evaluate import (active_units, conditional_accuracy, dataset_loss,
                               kl_per_dimension, label_leakage, posterior_params)
from cvae_lib.infra.storage import cache_dir
from cvae_lib.metrics import (diversity_ratio, evaluate_model, feature_diversity,
                              importance_weighted_bound, spread)
from cvae_lib.training import TrainConfig, train
from tests.learned import (CLASSIFIER_RECIPE, COLLAPSE_BETA, EVAL_IMAGES, EVAL_RECIPE, blinded,
                           check)


@pytest.fixture(scope="module")
def test_images() -> tuple[torch.Tensor, torch.Tensor]:
    """500 real MNIST test images and their labels."""
    return load_mnist(train=False, limit=EVAL_IMAGES)


@pytest.fixture(scope="module")
def trained():
    """A CVAE trained briefly on 4096 real MNIST images."""
    return train(TrainConfig(**EVAL_RECIPE), progress=False)[0]


@pytest.fixture(scope="module")
def collapsed():
    """The same CVAE trained with a huge KL weight: its posterior collapses onto the prior."""
    return train(TrainConfig(**{**EVAL_RECIPE, "beta": COLLAPSE_BETA}), progress=False)[0]


def test_kl_per_dimension_adds_up_to_the_kl_term(trained, test_images):
    kl = kl_per_dimension(trained, *test_images)
    assert kl.shape == (16,) and (kl >= 0).all()
    assert kl.sum().item() == pytest.approx(dataset_loss(trained, *test_images)["kl"], rel=1e-4)


def test_active_units_drop_to_zero_when_the_posterior_collapses(trained, collapsed, test_images):
    check("active_units", active_units(trained, *test_images))
    assert active_units(collapsed, *test_images) == 0
    variance = posterior_params(collapsed, *test_images)[0].var(dim=0, unbiased=False)
    check("collapsed_mu_variance", variance.max().item())
    check("collapsed_kl_max", kl_per_dimension(collapsed, *test_images).max().item())
    assert active_units(trained, *test_images, threshold=1e9) == 0


def test_iwae_bound_is_tighter_than_the_elbo(trained, test_images):
    x, labels = test_images
    elbo = dataset_loss(trained, x, labels)["total"]
    bound = importance_weighted_bound(trained, x, labels, k=100)
    check("iwae_gain", elbo - bound)
    check("iwae_k1_gap", abs(importance_weighted_bound(trained, x, labels, k=1) - elbo))
    assert importance_weighted_bound(trained, x, labels, k=100) == bound  # seeded: repeatable


def test_iwae_bound_does_not_depend_on_the_batching(trained, test_images):
    x, labels = test_images[0][:40], test_images[1][:40]
    a = importance_weighted_bound(trained, x, labels, k=20, batch_size=7)
    b = importance_weighted_bound(trained, x, labels, k=20, batch_size=40)
    check("iwae_batching_gap", abs(a - b))


def test_bad_inputs_are_explained(trained, test_images):
    x, labels = test_images
    with pytest.raises(ValueError, match="empty dataset"):
        kl_per_dimension(trained, x[:0], labels[:0])
    with pytest.raises(ValueError, match="500 images but 499 labels"):
        active_units(trained, x, labels[:-1])
    with pytest.raises(TypeError, match="model must be a cvae_lib CVAE"):
        dataset_loss(torch.nn.Linear(784, 10), x, labels)
    with pytest.raises(ValueError, match="threshold"):
        active_units(trained, x, labels, threshold=-1)


@pytest.fixture(scope="module")
def classifier() -> DigitClassifier:
    """The CNN judge, trained for two epochs on 16,384 real MNIST images."""
    return train_classifier(**CLASSIFIER_RECIPE, progress=False)


@pytest.fixture(scope="module")
def vae():
    """An unconditional VAE trained like ``trained``: it gets no label at all."""
    return train(TrainConfig(**EVAL_RECIPE, architecture="vae"), progress=False)[0]


def test_classifier_reads_real_test_digits(classifier, test_images):
    check("classifier_accuracy", classifier_accuracy(classifier, *test_images))


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
    check("untrained_accuracy", chance_like)
    check("conditional_gain", result["overall"] - chance_like)


def test_diversity_is_zero_for_one_repeated_image_and_positive_for_samples(trained,
                                                                           test_images):
    assert spread(test_images[0][:1].repeat(5, 1)) == 0
    result = diversity_ratio(trained, *test_images, n_per_class=30)
    check("diversity_ratio", result["overall"])
    assert len(result["per_label"]) == 10


def test_features_are_what_the_classifier_reads_its_digit_from(classifier, test_images):
    x = test_images[0][:300]
    read = features(classifier, x, batch_size=64)
    assert read.shape == (300, 128) and (read >= 0).all()  # after the penultimate ReLU
    assert torch.equal(classifier.head[-1](read).argmax(1), predict(classifier, x))


def ignoring_z(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose decoder reads the label only: one image per digit."""
    copy = TrainConfig().build_model()
    copy.load_state_dict(model.state_dict())
    with torch.no_grad():
        copy.decoder[0].weight[:, :copy.latent_dim] = 0
    return copy.eval()


def test_both_diversities_are_zero_when_samples_ignore_z(trained, classifier, test_images):
    same = ignoring_z(trained)
    assert diversity_ratio(same, *test_images, n_per_class=20)["overall"] == pytest.approx(0,
                                                                                      abs=1e-4)
    assert feature_diversity(same, classifier, *test_images,
                             n_per_class=20)["overall"] == pytest.approx(0, abs=1e-4)
    result = feature_diversity(trained, classifier, *test_images, n_per_class=30)
    check("feature_diversity", result["overall"])
    assert len(result["per_label"]) == 10


def test_label_leakage_sees_what_mu_holds(trained, vae, test_images):
    label_only, blind = blinded(trained)
    check("leakage_label_only", label_leakage(label_only, *test_images))
    check("leakage_blind", label_leakage(blind, *test_images))
    check("leakage_vae", label_leakage(vae, *test_images))  # a VAE's code tells digits apart
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
    assert metrics["feature_diversity"] == feature_diversity(
        trained, classifier, *load_mnist(train=False, limit=200), n_per_class=20)["overall"]
    elbo = dataset_loss(trained, *load_mnist(train=False, limit=200))["total"]
    check("evaluation_iwae_gain", elbo - metrics["iwae_nll"])
