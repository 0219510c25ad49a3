"""How good is a trained CVAE? Test loss in nats per image, and more.

Introduced in 03_training. All figures follow the convention of ``cvae_lib.losses``:
nats per image, summed over pixels and latent dimensions, averaged over images.
"""

from __future__ import annotations

import torch

from cvae_lib.losses import kl_divergence, reconstruction_loss
from cvae_lib.models import CVAE


@torch.no_grad()
def dataset_loss(model: CVAE, x: torch.Tensor, labels: torch.Tensor,
                 extra: torch.Tensor | None = None, batch_size: int = 2000,
                 seed: int = 0) -> dict[str, float]:
    """Negative ELBO of a dataset in nats per image: ``{"total", "recon", "kl"}``.

    z is drawn with its own fixed seed, so the figure is repeatable and the caller's random
    stream is left untouched.
    """
    if len(x) == 0:
        raise ValueError("cannot evaluate an empty dataset")
    was_training = model.training
    model.eval()
    device = model.fc_mu.weight.device
    recon = kl = 0.0
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size].to(device)
            eb = None if extra is None else extra[start:start + batch_size]
            logits, mu, logvar = model.forward_logits(xb, labels[start:start + batch_size], eb)
            recon += reconstruction_loss(logits.float(), xb).item()
            kl += kl_divergence(mu.float(), logvar.float()).item()
    model.train(was_training)
    n = len(x)
    return {"total": (recon + kl) / n, "recon": recon / n, "kl": kl / n}
