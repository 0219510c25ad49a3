"""Stroke thickness as a second condition (07_challenge_thickness).

The stroke width of a digit is estimated as 2 * ink area / ink perimeter on the binarised
image: a stroke of length L and width w has area about L * w and perimeter about 2 * L.
Each image is then labelled thin (0), medium (1) or thick (2) by the tertiles of its own
digit class, so every digit has all three thickness levels.
"""

from __future__ import annotations

import torch

from cvae_lib.validate import as_images, as_labels

NUM_THICKNESS = 3
THICKNESS_NAMES = ("thin", "medium", "thick")


def stroke_width(x: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Estimated stroke width in pixels of each flattened image (N, 784)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not 0 < threshold < 1:
        raise ValueError(f"threshold must be a number between 0 and 1, not {threshold!r}")
    ink = (as_images(x).reshape(-1, 28, 28) > threshold).float()
    area = ink.sum(dim=(1, 2))
    padded = torch.nn.functional.pad(ink, (1, 1, 1, 1))
    edges = ((padded[:, 1:, :] != padded[:, :-1, :]).sum(dim=(1, 2))
             + (padded[:, :, 1:] != padded[:, :, :-1]).sum(dim=(1, 2)))
    return 2 * area / edges.clamp(min=1)


def thickness_labels(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Thin / medium / thick (0, 1, 2) per image, by stroke-width tertiles within its digit."""
    labels = as_labels(labels, num_classes=10)
    width = stroke_width(x)
    if len(width) != len(labels):
        raise ValueError(f"{len(width)} images but {len(labels)} labels: give every image "
                         f"its digit label")
    out = torch.zeros(len(x), dtype=torch.long)
    for digit in labels.unique():
        mask = labels == digit
        cuts = torch.quantile(width[mask], torch.tensor([1 / 3, 2 / 3]))
        out[mask] = torch.bucketize(width[mask], cuts)
    return out
