"""Figures of the course: sample grids, the same-z-all-labels figure, loss curves.

Introduced in 03_training and 04_generation.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torchvision.utils import make_grid

from cvae_lib.generation import same_z_all_labels, sample_z, samples_per_class
from cvae_lib.models import CVAE


def image_grid(images: torch.Tensor, nrow: int) -> torch.Tensor:
    """Tile flattened images (N, 784) into one (H, W) picture with ``nrow`` per row."""
    tiles = images.detach().float().cpu().reshape(-1, 1, 28, 28)
    return make_grid(tiles, nrow=nrow, padding=2, pad_value=0.0)[0]


def show_images(images: torch.Tensor, nrow: int = 10, title: str | None = None,
                row_labels: Sequence[str] | None = None, ax: plt.Axes | None = None) -> Figure:
    """Show flattened images as a grid, optionally naming each row."""
    if ax is None:
        rows = -(-len(images) // nrow)
        _, ax = plt.subplots(figsize=(nrow * 0.6 + 0.8, rows * 0.6 + 0.6))
    ax.imshow(image_grid(images, nrow), cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([])
    if row_labels is None:
        ax.set_yticks([])
    else:
        ax.set_yticks([15 + 30 * i for i in range(len(row_labels))], list(row_labels))
        ax.tick_params(length=0)
    if title:
        ax.set_title(title)
    return ax.figure


def plot_samples_per_class(model: CVAE, n_per_class: int = 10, seed: int = 0,
                           class_names: Sequence[str] | None = None) -> Figure:
    """One row of samples from z ~ N(0, I) for every class."""
    images = samples_per_class(model, n_per_class, seed=seed)
    names = class_names or [f"label {k}" for k in range(model.num_classes)]
    return show_images(images, nrow=n_per_class, row_labels=names,
                       title="Samples from z ~ N(0, I), one row per requested label")


def plot_conditional_generation(model: CVAE, n_rows: int = 4, seed: int = 0) -> Figure:
    """Top row: one z under every label. Below: a new z per image, label fixed per column."""
    k = model.num_classes
    z = sample_z(model, n_rows + 1, seed=seed)
    top = same_z_all_labels(model, z[0])
    rest = torch.cat([model.generate(list(range(k)), z=z[i].expand(k, -1).contiguous())
                      for i in range(1, n_rows + 1)]) if n_rows else top[:0]
    fig, (ax_top, ax_rest) = plt.subplots(2, 1, figsize=(k * 0.6 + 1.5, (n_rows + 1) * 0.7 + 1.2),
                                          gridspec_kw={"height_ratios": [1, max(n_rows, 1)]})
    show_images(top, nrow=k, ax=ax_top, row_labels=["same z"],
                title="Top: one z decoded with labels 0..9. Below: other z, same labels")
    ax_top.set_xticks([15 + 30 * i for i in range(k)], [str(i) for i in range(k)])
    if n_rows:
        show_images(rest, nrow=k, ax=ax_rest,
                    row_labels=[f"z #{i}" for i in range(1, n_rows + 1)])
    fig.tight_layout()
    return fig


def plot_training_curves(history) -> Figure:  # noqa: ANN001 - a cvae_lib.train.History
    """Total, reconstruction and KL per epoch, train and test, in nats per image."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, name in zip(axes, ("total", "recon", "kl")):
        for split, style in (("train", "-"), ("test", "--")):
            ax.plot(history.epoch, getattr(history, f"{split}_{name}"), style, marker=".",
                    label=split)
        ax.set_title({"total": "Total (recon + KL)", "recon": "Reconstruction (BCE)",
                      "kl": "KL divergence"}[name])
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("nats per image")
    axes[0].legend()
    fig.tight_layout()
    return fig
