"""Figures of the course: sample grids, the same-z-all-labels figure, loss curves.

Introduced in 02_label_conditioning (the architecture), 03_training (curves, KL per
dimension) and 04_generation (sample grids).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import display
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from cvae_lib.generation import same_z_all_labels, sample_z, samples_per_class
from cvae_lib.models import CVAE
from cvae_lib.validate import check_model, check_tensor, integer

# Inches per 28-pixel digit in every grid: about 85 screen pixels, readable on a projector.
DIGIT_INCHES = 0.85


def image_grid(images: torch.Tensor, nrow: int) -> torch.Tensor:
    """Tile flattened images (N, 784) into one (H, W) picture with ``nrow`` per row."""
    if check_tensor(images, "images").numel() == 0 or images.numel() % 784:
        raise ValueError(f"images must be 28x28 pictures, shape (N, 784) or (N, 28, 28), "
                         f"not {tuple(images.shape)}")
    integer(nrow, "nrow")
    tiles = images.detach().float().cpu().reshape(-1, 28, 28)
    if len(tiles) == 1:  # as torchvision's make_grid, whose import costs each kernel 80 MB
        return tiles[0]
    cols = min(nrow, len(tiles))
    rows = -(-len(tiles) // cols)
    framed = torch.zeros(rows * cols, 30, 30)  # each digit with 2 pixels above and to the left
    framed[:len(tiles), 2:, 2:] = tiles
    grid = framed.reshape(rows, cols, 30, 30).permute(0, 2, 1, 3).reshape(rows * 30, cols * 30)
    return F.pad(grid, (0, 2, 0, 2))


def show_images(images: torch.Tensor, nrow: int = 10, title: str | None = None,
                row_labels: Sequence[str] | None = None, ax: plt.Axes | None = None,
                col_labels: Sequence[str] | None = None) -> Figure:
    """Show flattened images as a grid, optionally naming each row and each column."""
    grid = image_grid(images, nrow)
    if ax is None:
        rows = -(-len(images) // nrow)
        _, ax = plt.subplots(figsize=(nrow * DIGIT_INCHES + 1.0, rows * DIGIT_INCHES + 0.9))
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([])
    if col_labels is not None:
        ax.set_xticks([15 + 30 * i for i in range(len(col_labels))], list(col_labels))
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
    """Top row: one z decoded under every label. Each row below: another z, again under every
    label, so the label is fixed per column and z per row (one z per row, not per image)."""
    k = check_model(model).num_classes
    integer(n_rows, "n_rows", maximum=100, minimum=0)
    z = sample_z(model, n_rows + 1, seed=seed)
    top = same_z_all_labels(model, z[0])
    rest = torch.cat([model.generate(list(range(k)), z=z[i].expand(k, -1).contiguous())
                      for i in range(1, n_rows + 1)]) if n_rows else top[:0]
    fig, (ax_top, ax_rest) = plt.subplots(
        2, 1, figsize=(k * DIGIT_INCHES + 1.5, (n_rows + 1) * DIGIT_INCHES + 1.4),
        gridspec_kw={"height_ratios": [1, max(n_rows, 1)]})
    show_images(top, nrow=k, ax=ax_top, row_labels=["same z"],
                title="Top: one z decoded with labels 0..9. Below: other z, same labels")
    ax_top.set_xticks([15 + 30 * i for i in range(k)], [str(i) for i in range(k)])
    if n_rows:
        show_images(rest, nrow=k, ax=ax_rest,
                    row_labels=[f"z #{i}" for i in range(1, n_rows + 1)])
    fig.tight_layout()
    return fig


def plot_training_curves(history) -> Figure:  # noqa: ANN001 - a cvae_lib.training.History
    """Total, reconstruction and KL per epoch, train and test, in nats per image."""
    if not all(hasattr(history, f"{split}_kl") for split in ("train", "test")):
        raise TypeError(f"history must be the History that train() returns, "
                        f"not {type(history).__name__}")
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


def _in_place() -> Callable[[Figure], None]:
    """A function that shows a figure in place of the one it showed before (one output)."""
    handle = None

    def show(fig: Figure) -> None:
        nonlocal handle
        plt.close(fig)
        if handle is None:
            handle = display(fig, display_id=True)
        else:
            handle.update(fig)

    return show


def live_training_progress(model: CVAE, z: torch.Tensor, num_epochs: int) -> Callable:
    """A callback ``update(epoch, recon, kl)`` for a hand-written training loop (03_training).

    After each epoch it redraws, in place, the reconstruction and KL curves and a grid that
    gains one row per epoch: the same codes ``z`` (one per digit) decoded under labels 0..9.
    """
    k = check_model(model).num_classes
    z = check_tensor(z, "z")
    if tuple(z.shape) != (k, model.latent_dim):
        raise ValueError(f"z must hold one code per label, shape ({k}, {model.latent_dim}), "
                         f"not {tuple(z.shape)}")
    num_epochs = integer(num_epochs, "num_epochs", maximum=100)
    epochs, recons, kls, rows = [], [], [], []
    show = _in_place()

    def update(epoch: int, recon: float, kl: float) -> None:
        epochs.append(epoch)
        recons.append(recon)
        kls.append(kl)
        rows.append(model.generate(list(range(k)), z=z).cpu())
        fig = plt.figure(figsize=(k * DIGIT_INCHES + 1.5, 2.6 + num_epochs * DIGIT_INCHES))
        grid = fig.add_gridspec(2, 2, height_ratios=[2.2, num_epochs * DIGIT_INCHES])
        for i, (values, name) in enumerate(((recons, "reconstruction"), (kls, "KL"))):
            ax = fig.add_subplot(grid[0, i])
            ax.plot(epochs, values, marker="o")
            ax.set_xlim(0.5, num_epochs + 0.5)
            ax.set_xticks(range(1, num_epochs + 1))
            ax.set_title(f"{name}: {values[-1]:.1f} nats per image")
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        ax = fig.add_subplot(grid[1, :])
        padding = torch.zeros((num_epochs - len(rows)) * k, 784)  # rows still to come
        show_images(torch.cat([*rows, padding]), nrow=k, ax=ax,
                    row_labels=[f"epoch {e}" for e in range(1, num_epochs + 1)],
                    col_labels=[str(d) for d in range(k)],
                    title="The same z for every epoch, decoded as 0..9")
        fig.tight_layout()
        show(fig)

    return update


def plot_kl_per_dimension(kl_by_model: Mapping[str, torch.Tensor],
                          threshold: float | None = None) -> Figure:
    """One bar chart per model: mean KL of each latent dimension, in nats per image."""
    if not isinstance(kl_by_model, Mapping) or not kl_by_model:
        raise TypeError("kl_by_model must be a non-empty dict {model name: KL per dimension}")
    for name, kl in kl_by_model.items():
        check_tensor(kl, f"the KL per dimension of {name!r}")
    fig, axes = plt.subplots(1, len(kl_by_model), figsize=(4.2 * len(kl_by_model), 3.2),
                             sharey=True, squeeze=False)
    for ax, (name, kl) in zip(axes[0], kl_by_model.items()):
        kl = torch.as_tensor(kl).detach().cpu()
        ax.bar(range(len(kl)), kl, color="tab:blue")
        if threshold is not None:
            ax.axhline(threshold, color="tab:red", lw=1, ls="--", label=f"{threshold} nats")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_title(f"{name}: KL {float(kl.sum()):.1f} nats")
        ax.set_xlabel("latent dimension")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("KL (nats per image)")
    fig.tight_layout()
    return fig


# The architecture diagram is drawn in inches (1 data unit = 1 inch) at a width whose 11 pt text
# stays above 10 px when the book scales the figure down to its 688 px column (11 * 688 / 72 / 10).
DIAGRAM_FONT = 11


def _box(ax: plt.Axes, x: float, y: float, text: str, color: str, width: float = 1.5) -> None:
    """A rounded box of ``text`` centred on (x, y)."""
    ax.add_patch(FancyBboxPatch((x - width / 2, y - 0.38), width, 0.76, linewidth=1.2,
                                boxstyle="round,pad=0.05", facecolor=color, edgecolor="0.3"))
    ax.text(x, y, text, ha="center", va="center", fontsize=DIAGRAM_FONT)


def _arrow(ax: plt.Axes, start: tuple[float, float], end: tuple[float, float],
           style: str = "-") -> None:
    """An arrow from ``start`` to ``end``."""
    ax.annotate("", xy=end, xytext=start,
                arrowprops={"arrowstyle": "->", "color": "0.25", "lw": 1.3, "linestyle": style})


def plot_cvae_architecture(model: CVAE) -> Figure:
    """The data flow of ``model`` with its real sizes: where the label joins, what comes out.

    Two rows, encoder above and decoder below, so the figure is narrow enough for its labels
    to stay readable at the width of a book page.
    """
    d = check_model(model).latent_dim
    c = model.decoder[0].in_features - d  # the one-hot condition's width
    hidden = "256→256"
    fig, ax = plt.subplots(figsize=(10, 5.6))
    label, cond, code = "#fde6c8", "#dcdcdc", "#d6eaf8"
    _box(ax, 0.65, 4.0, "image x\n784", "white", width=1.1)
    _box(ax, 2.35, 4.0, f"cat(dim=1)\n784+{c}={784 + c}", cond, width=1.5)
    _box(ax, 4.25, 4.0, f"encoder MLP\n{784 + c}→{hidden}", code, width=1.6)
    _box(ax, 5.85, 4.5, f"mu\n{d}", code, width=0.9)
    _box(ax, 5.85, 3.5, f"logvar\n{d}", code, width=0.9)
    _box(ax, 7.45, 4.0, f"z = mu + σ·ε\n{d}", code, width=1.5)
    _box(ax, 9.2, 4.0, "ε ~ N(0, I)", "white", width=1.3)
    _box(ax, 1.0, 1.4, f"label y → one-hot\n{c}", label, width=1.9)
    _box(ax, 3.75, 1.4, f"cat(dim=1)\n{d}+{c}={d + c}", cond, width=1.5)
    _box(ax, 5.95, 1.4, f"decoder MLP\n{d + c}→{hidden}→784", code, width=2.2)
    _box(ax, 8.7, 1.4, "x̂ = sigmoid(logits)\n784", "white", width=2.0)
    for start, end in [((1.25, 4.0), (1.55, 4.0)), ((1.45, 1.8), (2.1, 3.55)),
                       ((3.15, 4.0), (3.4, 4.0)), ((5.1, 4.15), (5.35, 4.4)),
                       ((5.1, 3.85), (5.35, 3.6)), ((6.35, 4.4), (6.65, 4.15)),
                       ((6.35, 3.6), (6.65, 3.85)), ((8.5, 4.0), (8.25, 4.0)),
                       ((7.2, 3.55), (4.2, 1.85)), ((1.95, 1.4), (2.95, 1.4)),
                       ((4.55, 1.4), (4.8, 1.4)), ((7.1, 1.4), (7.65, 1.4))]:
        _arrow(ax, start, end)
    notes = [(2.45, 0.55, "the same one-hot label\nalso goes to the decoder", "0.35"),
             (5.85, 5.2, "KL(q(z|x,y) ‖ N(0, I))", "tab:red"),
             (8.7, 0.55, "reconstruction: BCE(x̂, x)", "tab:red"),
             (8.45, 2.75, "to generate: skip the encoder,\ndraw z ~ N(0, I), pick y",
              "tab:green")]
    for x, y, text, color in notes:
        ax.text(x, y, text, ha="center", va="center", fontsize=DIAGRAM_FONT, color=color)
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 5.6)
    ax.axis("off")
    ax.set_title(f"{type(model).__name__}: the label y joins the encoder's and the decoder's "
                 f"input", fontsize=DIAGRAM_FONT + 1)
    fig.tight_layout()
    return fig
