"""The CVAE: the quick-start architecture, its interface, and the errors ``generate`` gives."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cvae_lib.models import CVAE
from cvae_lib.thickness import ThicknessCVAE


def linear_sizes(module: nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, nn.Linear)]


def test_default_is_the_quick_start_architecture():
    model = CVAE()
    assert linear_sizes(model.encoder) == [(794, 256), (256, 256)]
    assert linear_sizes(model.fc_mu) == linear_sizes(model.fc_logvar) == [(256, 16)]
    assert linear_sizes(model.decoder) == [(26, 256), (256, 256), (256, 784)]


def test_thickness_widens_both_inputs_and_keeps_the_layer_names():
    model = ThicknessCVAE(latent_dim=2)
    assert linear_sizes(model.encoder)[0] == (797, 256)
    assert linear_sizes(model.decoder)[0] == (15, 256)
    assert model.state_dict().keys() == CVAE(latent_dim=2).state_dict().keys()
    y = model.one_hot(torch.tensor([7, 0]), torch.tensor([[2], [0]]))
    assert y.tolist()[0] == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    reconstruction, mu, _ = model(torch.rand(2, 784), torch.tensor([7, 0]), torch.tensor([2, 0]))
    assert reconstruction.shape == (2, 784) and mu.shape == (2, 2)


def test_print_shows_every_layer():
    text = repr(CVAE())
    assert text.count("ReLU()") == 4 and "Sigmoid" not in text


def test_interface_on_real_digits(mnist_small):
    x, labels = mnist_small
    model = CVAE()
    reconstruction, mu, logvar = model(x[:32], labels[:32])
    assert reconstruction.shape == (32, 784) and mu.shape == logvar.shape == (32, 16)
    assert 0 <= reconstruction.min() and reconstruction.max() <= 1
    images = model.generate([0, 1, 2])
    assert images.shape == (3, 784) and 0 <= images.min() and images.max() <= 1
    mu2, _ = model.encode(x[:4], model.one_hot(labels[:4]))
    assert torch.allclose(mu2, mu[:4], atol=1e-6)


def test_same_z_different_labels_gives_different_images():
    torch.manual_seed(0)
    model = CVAE()
    z = torch.randn(1, 16)
    assert not torch.allclose(model.generate([3], z=z), model.generate([8], z=z))
    assert torch.equal(model.generate([3], z=z), model.generate([3], z=z))


def test_reparameterize_lets_gradients_reach_mu_and_logvar():
    mu = torch.zeros(4, 16, requires_grad=True)
    logvar = torch.zeros(4, 16, requires_grad=True)
    CVAE().reparameterize(mu, logvar).sum().backward()
    assert mu.grad is not None and torch.all(mu.grad == 1) and logvar.grad.abs().sum() > 0


def test_reparameterize_has_the_right_spread():
    torch.manual_seed(0)
    z = CVAE().reparameterize(torch.full((20_000, 2), 3.0), torch.full((20_000, 2), math.log(4)))
    assert abs(z.mean().item() - 3) < 0.05 and abs(z.std().item() - 2) < 0.05


@pytest.mark.parametrize("labels, error, message", [
    ([10], ValueError, "0..9"),
    ([-1], ValueError, "0..9"),
    ([2.5], ValueError, "whole numbers"),
    (["7"], TypeError, "integers"),
    ([True], TypeError, "integers"),
    (torch.tensor([True]), TypeError, "booleans"),
    (torch.zeros(1, 10), ValueError, "one-hot"),
])
def test_bad_labels(labels, error, message):
    with pytest.raises(error, match=message):
        CVAE().generate(labels)


def test_whole_float_labels_are_accepted():
    assert CVAE().generate(torch.tensor([3.0, 4.0])).shape == (2, 784)


def test_z_of_wrong_size():
    with pytest.raises(ValueError, match="16"):
        CVAE().generate([1, 2], z=torch.zeros(2, 8))
    with pytest.raises(TypeError, match="real numbers"):
        CVAE().generate([1], z=torch.zeros(1, 16, dtype=torch.complex64))


def test_extra_condition_required_and_checked():
    model = ThicknessCVAE()
    with pytest.raises(ValueError, match="pass extra"):
        model.generate([1])
    with pytest.raises(ValueError, match="0..2"):
        model.generate([1], extra=torch.tensor([3]))
    with pytest.raises(TypeError, match="extra"):  # 02's CVAE has no second condition
        CVAE().generate([1], extra=torch.tensor([0]))
