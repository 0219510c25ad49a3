"""Command line: ``python -m cvae_lib train --out DIR`` trains the course model and writes
its figures, checkpoint and metrics; ``python -m cvae_lib prepare`` builds every cache."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import matplotlib

from cvae_lib.checkpoints import save_checkpoint
from cvae_lib.course import cache_if_course_model
from cvae_lib.data import (FASHION_CLASSES, FAST_TRAIN_LIMIT, CorruptDataError,
                           DataUnavailableError)
from cvae_lib.evaluate import dataset_loss
from cvae_lib.metrics import evaluate_model
from cvae_lib.infra.runtime import fast_mode
from cvae_lib.infra.storage import atomic_write, check_writable, publish_folder, staging_folder
from cvae_lib.training import TrainConfig, train
from cvae_lib.validate import MAX_EPOCHS, MAX_LATENT_DIM, MAX_SEED, TRAIN_IMAGES

FIGURES = ("cvae_generated_samples.png", "cvae_conditional_generation.png",
           "cvae_training_curves.png")
OUTPUTS = (*FIGURES, "model.pt", "metrics.json")
NEED_BYTES = 20_000_000  # the five outputs take under 5 MB; leave room
EVALUATION = {"num_images": 1000, "k": 100, "n_per_class": 100}
FAST_EVALUATION = {"num_images": 200, "k": 10, "n_per_class": 20}


# Instructor commands with options of their own: `python -m cvae_lib NAME ...` runs NAME's main.
DELEGATED = {
    "grade": ("cvae_lib.classroom.grading.grade", "grade a folder of exercise notebooks"),
    "exercises": ("cvae_lib.classroom.exercises",
                  "regenerate, check or reset the student copies of 05-07"),
    "slides": ("cvae_lib.classroom.slides", "write or check the slide breaks of 01-04"),
}


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, without the usage block."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and a pointer to --help, then exit with code 2."""
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface; ``--help`` shows every option with its default."""
    formatter = argparse.ArgumentDefaultsHelpFormatter
    parser = OneLineParser(prog="python -m cvae_lib", description="Conditional VAE course tools",
                           formatter_class=formatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("train", formatter_class=formatter,
                         help="train a CVAE and write figures, model.pt, metrics.json",
                         description="Train the course CVAE and write its three figures, "
                         "model.pt and metrics.json into --out, replacing a previous run's.")
    defaults = TrainConfig()
    run.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default=defaults.dataset,
                     help="the images to learn")
    run.add_argument("--latent-dim", type=int, default=defaults.latent_dim,
                     help=f"size of the latent code z, 1 to {MAX_LATENT_DIM}")
    run.add_argument("--epochs", type=int, default=defaults.num_epochs,
                     help=f"passes over the training set, 1 to {MAX_EPOCHS:,}")
    run.add_argument("--batch-size", type=int, default=defaults.batch_size,
                     help=f"images per step, 1 to {TRAIN_IMAGES:,} (the training set)")
    run.add_argument("--lr", type=float, default=defaults.lr,
                     help="peak learning rate of Adam, between 0 and 1")
    run.add_argument("--beta", type=float, default=defaults.beta,
                     help="weight of the KL term, a finite number >= 0")
    run.add_argument("--seed", type=int, default=defaults.seed,
                     help=f"random seed, 0 to {MAX_SEED}")
    run.add_argument("--out", type=Path, default=Path("outputs"),
                     help="output folder: new, empty, or a previous run's (it is replaced)")
    prep = sub.add_parser("prepare", formatter_class=formatter,
                          help="build every data and model cache the course needs")
    prep.add_argument("--models", nargs="+", metavar="NAME",
                      help="only these course models (default: all)")
    # Listed for --help only: main() hands these to their own modules, which have their own.
    for name, (_, text) in DELEGATED.items():
        sub.add_parser(name, add_help=False, help=f"{text} ({name} --help for its options)")
    return parser


def check_output_folder(out: Path) -> Path:
    """Raise ValueError/OSError now, before training, if the run cannot be written to ``out``."""
    resolved = out.resolve()
    if not resolved.name:
        raise ValueError(f"--out {out} is the root folder: name a folder for the outputs")
    if resolved.is_dir():
        others = sorted({p.name for p in resolved.iterdir()} - set(OUTPUTS))
        if others:
            raise ValueError(f"--out {out} holds other files ({', '.join(others[:3])}); the run "
                             f"replaces the whole folder: choose a new or empty folder")
    elif resolved.exists():
        raise ValueError(f"--out {out} is a file, not a folder: choose another output folder")
    check_writable(resolved.parent, NEED_BYTES)
    return resolved


def write_outputs(out: Path, model, config: TrainConfig, history) -> dict:  # noqa: ANN001
    """Save the three figures, the checkpoint and metrics.json into ``out``."""
    matplotlib.use("Agg")
    from cvae_lib.data import load_dataset
    from cvae_lib.plots import (plot_conditional_generation, plot_samples_per_class,
                                plot_training_curves)

    names = FASHION_CLASSES if config.dataset == "fashion-mnist" else None
    figures = (plot_samples_per_class(model, class_names=names),
               plot_conditional_generation(model), plot_training_curves(history))
    for name, fig in zip(FIGURES, figures):
        fig.savefig(out / name, dpi=120, bbox_inches="tight")
    save_checkpoint(out / "model.pt", model, config, history)
    test = dataset_loss(model, *load_dataset(config.dataset, train=False))
    metrics = {"test_loss": test["total"], "test_recon": test["recon"], "test_kl": test["kl"],
               "epochs": len(history.epoch), "train_seconds": history.seconds[-1] if
               history.seconds else 0.0, "interrupted": history.interrupted,
               "units": "nats per image (sum over 784 pixels and latent dims, mean over images)",
               "config": config.to_dict(),
               "evaluation": evaluate_model(model, dataset=config.dataset,
                                            **(FAST_EVALUATION if fast_mode() else EVALUATION)),
               "evaluation_note": "iwae_nll (nats per image, k samples), active_units, "
               "kl_per_dim and label_leakage use the first eval_images test images; "
               "conditional_accuracy and diversity_ratio use samples_per_class samples "
               "of each digit from z ~ N(0, I)"}
    text = json.dumps(metrics, indent=2) + "\n"
    atomic_write(out / "metrics.json", lambda f: f.write(text.encode()))
    return metrics


def fail(message: object, code: int = 1) -> int:
    """Print ``error: message`` as one line on stderr; return the exit code."""
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    return code


def rescue(model, config: TrainConfig, history) -> str:  # noqa: ANN001
    """Save the model into a new temporary folder; say where it went, or why it could not."""
    try:
        path = save_checkpoint(Path(tempfile.mkdtemp(prefix="cvae-rescue-")) / "model.pt",
                               model, config, history)
    except OSError as err:
        return f"the trained model could not be saved anywhere ({err.strerror or err})"
    return f"the trained model was saved to {path} instead"


def publish(out: Path, model, config: TrainConfig, history) -> dict:  # noqa: ANN001
    """Write the five outputs into a staging folder beside ``out``, then swap it into place."""
    staging = staging_folder(out)
    try:
        metrics = write_outputs(staging, model, config, history)
        publish_folder(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] and argv[0] in DELEGATED:  # its own options: python -m cvae_lib grade --help
        return importlib.import_module(DELEGATED[argv[0]][0]).main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "prepare":
        from cvae_lib.classroom.prepare import main as prepare_main

        return prepare_main(args.models)
    try:
        config = TrainConfig(dataset=args.dataset, latent_dim=args.latent_dim,
                             num_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             beta=args.beta, seed=args.seed)
        if fast_mode():  # CVAE_FAST=1: the same job on a small subset, for tests
            config = dataclasses.replace(config, train_limit=FAST_TRAIN_LIMIT,
                                         batch_size=min(config.batch_size, FAST_TRAIN_LIMIT))
        out = check_output_folder(args.out)
    except (ValueError, TypeError, OSError) as err:
        return fail(err, 2)
    try:
        model, history = train(config)
    except (DataUnavailableError, CorruptDataError) as err:
        return fail(err)
    if history.interrupted and (out / "model.pt").is_file():  # keep the finished run
        return fail(f"interrupted: {args.out} keeps the previous run's files; "
                    f"{rescue(model, config, history)}", 130)
    try:
        metrics = publish(out, model, config, history)
    except (DataUnavailableError, CorruptDataError) as err:
        return fail(f"{err}; {rescue(model, config, history)}")
    except OSError as err:
        return fail(f"could not write the outputs to {args.out} ({err.strerror or err}); "
                    f"{rescue(model, config, history)}")
    except KeyboardInterrupt:
        return fail(f"interrupted while writing the outputs: {args.out} keeps the previous "
                    f"run's files, if any; {rescue(model, config, history)}", 130)
    epochs = metrics["epochs"]
    print(f"test loss {metrics['test_loss']:.2f} nats per image "
          f"(recon {metrics['test_recon']:.2f} + KL {metrics['test_kl']:.2f}) after "
          f"{epochs} epoch{'s' * (epochs != 1)}, {metrics['train_seconds']:.1f} s of training.")
    evaluation = metrics["evaluation"]
    if evaluation["conditional_accuracy"] is not None:
        print(f"samples from z ~ N(0, I) read as the requested digit: "
              f"{evaluation['conditional_accuracy']:.1%}; IWAE bound "
              f"{evaluation['iwae_nll']:.2f} nats; {evaluation['active_units']} active units.")
    print(f"Wrote {', '.join(OUTPUTS)} to {args.out}/")
    cached = cache_if_course_model(model, config, history)
    if cached is not None:
        print(f"This is the course model {cached[0]!r}: cached as {cached[1]}, so `make "
              f"prepare` and the notebooks load it instead of training it again.")
    if fast_mode():
        print(f"FAST mode (CVAE_FAST=1): trained on {FAST_TRAIN_LIMIT} images and evaluated on "
              f"a few; unset CVAE_FAST for the real run.")
    return 130 if history.interrupted else 0  # 130: stopped by Ctrl-C, as shells count it


if __name__ == "__main__":
    sys.exit(main())
