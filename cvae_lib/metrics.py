"""Every evaluation figure of a trained model at once: what the main job writes to metrics.json.

Introduced in the README's main job (``make demo``); the notebooks use ``cvae_lib.evaluate``'s
figures one at a time.
"""

from __future__ import annotations

import torch

from cvae_lib.classifier import DigitClassifier, load_or_train_classifier
from cvae_lib.data import check_dataset, load_dataset
from cvae_lib.evaluate import (active_units, check_digit_model, conditional_accuracy,
                               diversity_ratio, feature_diversity, importance_weighted_bound,
                               is_digit_model, kl_per_dimension, label_leakage)
from cvae_lib.infra.trainings import shares_cores
from cvae_lib.models import CVAE
from cvae_lib.validate import check_model, positive_int


@shares_cores
def evaluate_model(model: CVAE, classifier: torch.nn.Module | None = None,
                   dataset: str = "mnist", num_images: int = 1000, k: int = 100,
                   n_per_class: int = 100) -> dict:
    """Every evaluation figure of a trained model, as JSON-friendly values for metrics.json.

    The IWAE bound, active units, KL per dimension and label leakage use the first
    ``num_images`` test images; conditional accuracy and diversity use ``n_per_class``
    samples per digit (skipped, as None, for models not conditioned on the MNIST digit alone).
    """
    check_model(model)
    num_images = positive_int(num_images, "num_images", maximum=10_000)
    k = positive_int(k, "k", maximum=10_000)
    if is_digit_model(model):
        check_digit_model(model, n_per_class)
    if classifier is not None and not isinstance(classifier, DigitClassifier):
        raise TypeError(f"classifier must be a DigitClassifier or None, not "
                        f"{type(classifier).__name__}")
    x, labels = load_dataset(check_dataset(dataset), train=False)
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
