"""The Conditional VAE: an encoder and a decoder that both see the label.

Introduced in 02_label_conditioning, which builds this class cell by cell (a test keeps the
two equal). The model trusts its callers; only ``generate``, which people call by hand, turns
a mistake into a clear message (``cvae_lib.validate``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cvae_lib import validate


class CVAE(nn.Module):
    """Image + one-hot label -> 256 -> 256 -> (mu, logvar); z + label -> 256 -> 256 -> 784."""

    def __init__(self, latent_dim: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.encoder = nn.Sequential(
            nn.Linear(784 + num_classes, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(),
        )
        self.fc_mu = nn.Linear(256, latent_dim)
        self.fc_logvar = nn.Linear(256, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim + num_classes, 256), nn.ReLU(),
            nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, 784),  # logits: the sigmoid is applied in decode, or in the loss
        )

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        """The condition y_onehot: (batch,) digit labels -> (batch, num_classes) floats."""
        return F.one_hot(labels, self.num_classes).float()

    def encode(self, x: torch.Tensor, y_onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x, y): the label joins the pixels on the feature axis (dim=1)."""
        h = self.encoder(torch.cat([x, y_onehot], dim=1))
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I): the noise is an input, so gradients flow."""
        std = torch.exp(0.5 * logvar)
        return mu + std * torch.randn_like(std)

    def decode_logits(self, z: torch.Tensor, y_onehot: torch.Tensor) -> torch.Tensor:
        """p(x | z, y) as pixel logits; the training loss takes these for stability."""
        return self.decoder(torch.cat([z, y_onehot], dim=1))

    def decode(self, z: torch.Tensor, y_onehot: torch.Tensor) -> torch.Tensor:
        """Pixel intensities in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z, y_onehot))

    def forward(self, x: torch.Tensor, labels: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode, sample z, decode: (reconstruction, mu, logvar)."""
        y_onehot = self.one_hot(labels)
        mu, logvar = self.encode(x, y_onehot)
        z = self.reparameterize(mu, logvar)
        return self.decode(z, y_onehot), mu, logvar

    @torch.no_grad()
    def generate(self, labels: list[int] | torch.Tensor, z: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """One image per label, decoded from z (by default z ~ N(0, I), the prior)."""
        # friendly checks; then labels ([7, 3] -> a tensor) and z (or None) on the model's device
        labels, z, _ = validate.generation_inputs(self, labels, z)  # _: 07's extra condition
        if z is None:
            z = torch.randn(len(labels), self.latent_dim, device=labels.device)
        return self.decode(z, self.one_hot(labels))


class VAE(CVAE):
    """The unconditional baseline of 01_vae_fundamentals: every image gets the same "label".

    Its one condition entry is a constant 1, so the model cannot be told which digit to draw.
    """

    label_classes = 10  # it takes the digit labels the CVAE takes, and ignores them

    def __init__(self, latent_dim: int = 16) -> None:
        super().__init__(latent_dim, num_classes=1)

    def one_hot(self, labels: torch.Tensor) -> torch.Tensor:
        """The same constant condition for every image: the labels' values are ignored."""
        return torch.ones(len(labels), 1, device=labels.device)
