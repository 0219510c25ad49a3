"""How far every learned figure the tests assert on clears its threshold, over seeds and threads.

Run: ``.venv/bin/python benchmarks/bench_margins.py [--seeds 5] [--threads 1 2]``. For each
seed and thread count it trains the tests' own recipes (``tests/learned.py``), computes every
figure a test compares with a threshold, and prints one row per figure: the threshold beside
the worst, mean and spread of what was measured, and the worst margin in standard deviations.
The test classifier is trained a second time per seed in bf16, as CPUs with AVX512-BF16 or AMX
train it (emulated where the CPU lacks them: the numbers, not the speed, are the point). A
threshold holds when the worst figure clears it by at least 3 standard deviations and by at
least the difference seen between CPU kinds (``CPU_GAP``). This prints figures, not timings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from unittest import mock

import torch
from _common import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' recipes, below
os.environ.setdefault("CVAE_OFFLINE", "1")

from cvae_lib import classifier as classifier_module  # noqa: E402
from cvae_lib.__main__ import main as cli  # noqa: E402
from cvae_lib.data import load_mnist  # noqa: E402
from cvae_lib.evaluate import (active_units, conditional_accuracy, dataset_loss,  # noqa: E402
                               kl_per_dimension, label_leakage, posterior_params)
from cvae_lib.infra.runtime import seed_everything  # noqa: E402
from cvae_lib.metrics import (diversity_ratio, feature_diversity,  # noqa: E402
                              importance_weighted_bound)
from cvae_lib.training import TrainConfig, train  # noqa: E402
from tests.learned import (BOUNDS, CLASSIFIER_RECIPE, COLLAPSE_BETA, CPU_GAP,  # noqa: E402
                           EVAL_IMAGES, EVAL_RECIPE, TRAIN_RECIPE, WIDGET_RECIPE, blinded,
                           label_difference)

Figures = dict[str, float]


def evaluation_figures(seed: int, test_images: tuple[torch.Tensor, torch.Tensor]
                       ) -> tuple[Figures, torch.nn.Module]:
    """The figures of tests/test_evaluate.py that need no classifier, and the short CVAE."""
    config = TrainConfig(**EVAL_RECIPE, seed=seed)
    trained = train(config, progress=False)[0]
    collapsed = train(TrainConfig(**{**EVAL_RECIPE, "beta": COLLAPSE_BETA, "seed": seed}),
                      progress=False)[0]
    vae = train(TrainConfig(**EVAL_RECIPE, seed=seed, architecture="vae"), progress=False)[0]
    x, labels = test_images
    elbo = dataset_loss(trained, x, labels, seed=seed)["total"]
    label_only, blind = blinded(trained)
    first = load_mnist(train=False, limit=200)
    figures = {
        "active_units": active_units(trained, x, labels),
        "collapsed_mu_variance": posterior_params(collapsed, x, labels)[0].var(
            dim=0, unbiased=False).max().item(),
        "collapsed_kl_max": kl_per_dimension(collapsed, x, labels).max().item(),
        "iwae_gain": elbo - importance_weighted_bound(trained, x, labels, k=100, seed=seed),
        "iwae_k1_gap": abs(importance_weighted_bound(trained, x, labels, k=1, seed=seed) - elbo),
        "iwae_batching_gap": abs(
            importance_weighted_bound(trained, x[:40], labels[:40], k=20, batch_size=7,
                                      seed=seed)
            - importance_weighted_bound(trained, x[:40], labels[:40], k=20, batch_size=40,
                                        seed=seed)),
        "diversity_ratio": diversity_ratio(trained, x, labels, n_per_class=30,
                                           seed=seed)["overall"],
        "leakage_label_only": label_leakage(label_only, x, labels),
        "leakage_blind": label_leakage(blind, x, labels),
        "leakage_vae": label_leakage(vae, x, labels),
        "evaluation_iwae_gain": dataset_loss(trained, *first)["total"]
        - importance_weighted_bound(trained, *first, k=10),
    }
    return figures, trained


def classifier_figures(seed: int, bf16: bool, trained: torch.nn.Module,
                       test_images: tuple[torch.Tensor, torch.Tensor]) -> Figures:
    """The classifier's figures, trained in float32 or, as AVX512-BF16 CPUs do, in bf16."""
    with mock.patch.object(classifier_module, "bf16_is_fast", lambda device: bf16):
        judge = classifier_module.train_classifier(**CLASSIFIER_RECIPE, seed=seed,
                                                   progress=False)
    torch.manual_seed(seed)
    untrained = conditional_accuracy(TrainConfig().build_model(), judge, n_per_class=50,
                                     seed=seed)["overall"]
    accuracy = conditional_accuracy(trained, judge, n_per_class=50, seed=seed)["overall"]
    variety = feature_diversity(trained, judge, *test_images, n_per_class=30, seed=seed)
    return {"classifier_accuracy": classifier_module.classifier_accuracy(judge, *test_images),
            "untrained_accuracy": untrained, "conditional_gain": accuracy - untrained,
            "feature_diversity": variety["overall"]}


def training_figures(seed: int) -> Figures:
    """tests/test_train.py's test losses, and the widget model's label differences."""
    history = train(TrainConfig(**TRAIN_RECIPE, seed=seed), progress=False)[1]
    widget_model = train(TrainConfig(**WIDGET_RECIPE, seed=seed), progress=False)[0]
    z = torch.randn(widget_model.latent_dim, generator=torch.Generator().manual_seed(seed + 1))
    return {"train_first_loss": history.test_total[0],
            "train_loss_drop": history.test_total[0] - history.test_total[-1],
            "widget_label_difference": label_difference(widget_model, z)}


def job_figures(seed: int) -> Figures:
    """The main job's figures in fast mode, one epoch, as tests/test_train.py runs it."""
    with tempfile.TemporaryDirectory() as tmp, mock.patch.dict(os.environ, {"CVAE_FAST": "1"}):
        out = Path(tmp) / "out"
        with open(os.devnull, "w") as quiet, mock.patch("sys.stdout", quiet), \
                mock.patch("sys.stderr", quiet):
            code = cli(["train", "--epochs", "1", "--seed", str(seed), "--out", str(out)])
        if code != 0:
            raise RuntimeError(f"the main job exited {code}")
        metrics = json.loads((out / "metrics.json").read_text())
    iwae = metrics["evaluation"]["iwae_nll"]
    return {"job_test_loss": metrics["test_loss"], "job_iwae": iwae,
            "job_iwae_minus_loss": iwae - metrics["test_loss"]}


def measure(seeds: int, threads: list[int]) -> dict[str, list[float]]:
    """Every figure for every seed and thread count (classifier figures also in bf16)."""
    test_images = load_mnist(train=False, limit=EVAL_IMAGES)
    values: dict[str, list[float]] = defaultdict(list)
    for count in threads:
        torch.set_num_threads(count)
        for seed in range(seeds):
            seed_everything(seed)
            figures, trained = evaluation_figures(seed, test_images)
            for bf16 in (False, True) if count == threads[0] else (False,):
                figures_bf16 = classifier_figures(seed, bf16, trained, test_images)
                for name, value in figures_bf16.items():
                    values[name].append(value)
                    if bf16:
                        values[f"{name} (bf16)"].append(value)
            figures |= training_figures(seed) | job_figures(seed)
            for name, value in figures.items():
                values[name].append(value)
            print(f"  threads {count}, seed {seed}: " + ", ".join(
                f"{name} {value:.4g}" for name, value in sorted(figures.items())), flush=True)
    return values


def report(values: dict[str, list[float]]) -> bool:
    """Print one row per figure; True when every threshold holds by the rule."""
    print(f"\n{'figure':<34}{'bound':>14}{'n':>4}{'worst':>10}{'mean':>10}{'std':>9}"
          f"{'margin':>10}{'in std':>8}  verdict")
    every = True
    for name, bound in BOUNDS.items():
        got = values[name]
        std = statistics.stdev(got) if len(got) > 1 else 0.0
        worst = min(got, key=bound.margin)
        margin = bound.margin(worst)
        ok = margin >= max(3 * std, CPU_GAP)
        every &= ok
        in_std = f"{margin / std:.1f}" if std > 0 else "inf"
        print(f"{name:<34}{bound.describe():>14}{len(got):>4}{worst:>10.4g}"
              f"{statistics.mean(got):>10.4g}{std:>9.3g}{margin:>10.4g}{in_std:>8}  "
              f"{'OK' if ok else 'TOO THIN'}")
        bf16 = values.get(f"{name} (bf16)")
        if bf16:
            print(f"{'  of which bf16':<34}{'':>14}{len(bf16):>4}"
                  f"{min(bf16, key=bound.margin):>10.4g}{statistics.mean(bf16):>10.4g}")
    return every


def markdown(values: dict[str, list[float]]) -> None:
    """The table of tests/MARGINS.md: one row per bound, thresholds read from tests/learned.py."""
    print("| figure (test) | threshold | worst | mean | std | margin | in std |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, bound in BOUNDS.items():
        got = values[name]
        std = statistics.stdev(got) if len(got) > 1 else 0.0
        margin = bound.margin(min(got, key=bound.margin))
        in_std = f"{margin / std:.1f}" if std > 0 else "-"
        print(f"| {bound.what} | {bound.describe()} | {min(got, key=bound.margin):.4g} | "
              f"{statistics.mean(got):.4g} | {std:.2g} | {margin:.4g} | {in_std} |")


def main() -> None:
    """Measure every learned figure over seeds and threads; print the margin table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per thread count")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="torch thread counts to measure under")
    parser.add_argument("--markdown", action="store_true",
                        help="also print the table for tests/MARGINS.md")
    args = parser.parse_args()
    if args.seeds < 2 or any(count < 1 for count in args.threads):
        parser.error("--seeds must be at least 2 and every --threads count at least 1")
    print(f"machine: {machine()}")
    print(f"rule: worst margin >= max(3 std, {CPU_GAP}) over {args.seeds} seeds x threads "
          f"{args.threads}")
    values = measure(args.seeds, args.threads)
    every = report(values)
    if args.markdown:
        markdown(values)
    print(f"\nevery threshold {'holds' if every else 'does NOT hold'} by the rule "
          f"({sum(len(v) for v in values.values())} figures measured)")


if __name__ == "__main__":
    main()
