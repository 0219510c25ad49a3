"""Stroke thickness as a second condition (07_challenge_thickness).

The stroke width of a digit is estimated as 2 * ink area / ink perimeter on the binarised
image: a stroke of length L and width w has area about L * w and perimeter about 2 * L.
Each image is then labelled thin (0), medium (1) or thick (2) by the tertiles of its own
digit class, so every digit has all three thickness levels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cvae_lib import validate
from cvae_lib.models import CVAE
from cvae_lib.validate import as_images, as_labels

NUM_DIGITS = 10
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


class ThicknessCVAE(CVAE):
    """02's CVAE with a wider condition: the one-hot digit (10), then the one-hot thickness (3).

    Only the width of the condition changes: the first layers read 784 + 13 and latent_dim + 13.
    """

    extra_classes = (NUM_THICKNESS,)  # one extra label of three classes, read by validate

    def __init__(self, latent_dim: int = 16) -> None:
        super().__init__(latent_dim, num_classes=NUM_DIGITS + NUM_THICKNESS)
        self.num_classes = NUM_DIGITS  # the labels still name the ten digits

    def one_hot(self, labels: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        """Digit one-hot, then thickness one-hot; ``extra`` is (batch,) or (batch, 1)."""
        return torch.cat([F.one_hot(labels, NUM_DIGITS),
                          F.one_hot(extra.reshape(len(labels)), NUM_THICKNESS)], dim=1).float()

    def forward(self, x: torch.Tensor, labels: torch.Tensor, extra: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, sample z, decode under digit and thickness: (reconstruction, mu, logvar)."""
        y_onehot = self.one_hot(labels, extra)
        mu, logvar = self.encode(x, y_onehot)
        return self.decode(self.reparameterize(mu, logvar), y_onehot), mu, logvar

    @torch.no_grad()
    def generate(self, labels: list[int] | torch.Tensor, z: torch.Tensor | None = None,
                 extra: torch.Tensor | None = None) -> torch.Tensor:
        """One image per (digit, thickness) pair, decoded from z (by default from the prior)."""
        labels, z, extra = validate.generation_inputs(self, labels, z, extra)
        if z is None:
            z = torch.randn(len(labels), self.latent_dim, device=labels.device)
        return self.decode(z, self.one_hot(labels, extra))


def condition(model: CVAE, labels: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
    """The one-hot condition of any course model: the digit, plus thickness when given."""
    return model.one_hot(labels) if extra is None else model.one_hot(labels, extra)
