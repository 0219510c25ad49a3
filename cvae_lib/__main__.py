"""Command line: ``python -m cvae_lib train --out DIR`` trains the course model and writes
its figures, checkpoint and metrics; ``python -m cvae_lib prepare`` builds every cache."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

from cvae_lib.data import FASHION_CLASSES, DataUnavailableError
from cvae_lib.evaluate import dataset_loss, evaluate_model
from cvae_lib.checkpoints import save_checkpoint
from cvae_lib.training import TrainConfig, train

FIGURES = ("cvae_generated_samples.png", "cvae_conditional_generation.png",
           "cvae_training_curves.png")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="python -m cvae_lib",
                                     description="Conditional VAE course tools")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("train", help="train a CVAE and write figures, model.pt, metrics.json")
    defaults = TrainConfig()
    run.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default=defaults.dataset)
    run.add_argument("--latent-dim", type=int, default=defaults.latent_dim)
    run.add_argument("--epochs", type=int, default=defaults.num_epochs)
    run.add_argument("--batch-size", type=int, default=defaults.batch_size)
    run.add_argument("--lr", type=float, default=defaults.lr)
    run.add_argument("--beta", type=float, default=defaults.beta)
    run.add_argument("--seed", type=int, default=defaults.seed)
    run.add_argument("--out", type=Path, default=Path("outputs"))
    prep = sub.add_parser("prepare", help="build every data and model cache the course needs")
    prep.add_argument("--models", nargs="+", metavar="NAME", help="only these course models")
    return parser


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
               "evaluation": evaluate_model(model, dataset=config.dataset, num_images=1000,
                                            k=100, n_per_class=100),
               "evaluation_note": "iwae_nll (nats per image, k samples), active_units, "
               "kl_per_dim and label_leakage use the first eval_images test images; "
               "conditional_accuracy and diversity_ratio use samples_per_class samples "
               "of each digit from z ~ N(0, I)"}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "prepare":
        from cvae_lib.prepare import main as prepare_main

        return prepare_main(args.models)
    try:
        config = TrainConfig(dataset=args.dataset, latent_dim=args.latent_dim,
                             num_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                             beta=args.beta, seed=args.seed)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        model, history = train(config)
    except DataUnavailableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    metrics = write_outputs(args.out, model, config, history)
    epochs = metrics["epochs"]
    print(f"test loss {metrics['test_loss']:.2f} nats per image "
          f"(recon {metrics['test_recon']:.2f} + KL {metrics['test_kl']:.2f}) after "
          f"{epochs} epoch{'s' * (epochs != 1)}, {metrics['train_seconds']:.1f} s of training.")
    evaluation = metrics["evaluation"]
    if evaluation["conditional_accuracy"] is not None:
        print(f"samples from z ~ N(0, I) read as the requested digit: "
              f"{evaluation['conditional_accuracy']:.1%}; IWAE bound "
              f"{evaluation['iwae_nll']:.2f} nats; {evaluation['active_units']} active units.")
    print(f"Wrote {', '.join(FIGURES)}, model.pt and metrics.json to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
