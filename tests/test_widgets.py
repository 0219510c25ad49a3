"""The widgets of 04_generation: every control redraws, and render checks its input."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from cvae_lib.generation import interpolate, same_z_all_labels
from cvae_lib.training import TrainConfig, train
from cvae_lib.widgets import (SCALE, decoder_dims, generation_widget, interpolation_widget,
                              render, same_z_widget)
from tests.learned import WIDGET_RECIPE, check, label_difference


@pytest.fixture(scope="module")
def model():
    """A CVAE trained for one epoch on 1,024 real MNIST digits."""
    trained, _ = train(TrainConfig(**WIDGET_RECIPE), device="cpu", progress=False)
    return trained


def _count_redraws(image) -> list[int]:
    """A one-item list counting every change of ``image.value``."""
    count = [0]
    image.observe(lambda _change: count.__setitem__(0, count[0] + 1), names="value")
    return count


def test_render_returns_an_upscaled_png(model):
    png = render(model, 3, torch.zeros(model.latent_dim))
    picture = Image.open(io.BytesIO(png))
    assert picture.format == "PNG"
    assert picture.size == (28 * SCALE, 28 * SCALE)


def test_render_same_z_different_labels_gives_different_images(model):
    z = torch.randn(model.latent_dim, generator=torch.Generator().manual_seed(1))
    check("widget_label_difference", label_difference(model, z))


@pytest.mark.parametrize("label, error", [(10, ValueError), (-1, ValueError),
                                          (True, TypeError), (2.0, TypeError)])
def test_render_rejects_bad_labels(model, label, error):
    with pytest.raises(error, match="label"):
        render(model, label, torch.zeros(model.latent_dim))


@pytest.mark.parametrize("shape", [(3,), (2, 16), (17,)])
def test_render_rejects_bad_z_shapes(model, shape):
    with pytest.raises(ValueError, match="one latent code of 16 numbers"):
        render(model, 1, torch.zeros(shape))


def test_render_rejects_a_non_model():
    with pytest.raises(TypeError, match="CVAE"):
        render(torch.nn.Linear(2, 2), 1, torch.zeros(16))


def test_render_rejects_nan_z(model):
    with pytest.raises(ValueError, match="NaN"):
        render(model, 1, torch.full((model.latent_dim,), float("nan")))


def test_render_and_generation_share_one_check_of_z(model):
    z = torch.randn(model.latent_dim, generator=torch.Generator().manual_seed(2))
    assert render(model, 4, z.tolist()) == render(model, 4, z)
    assert torch.equal(same_z_all_labels(model, z.tolist()), same_z_all_labels(model, z))
    for call in (lambda bad: render(model, 4, bad), lambda bad: same_z_all_labels(model, bad),
                 lambda bad: interpolate(model, bad, z, 4)):
        with pytest.raises(ValueError, match=r"one latent code of 16 numbers.*\(2, 8\)"):
            call(z.reshape(2, 8))
        with pytest.raises(ValueError, match="NaN"):
            call(torch.full((16,), float("inf")))
        with pytest.raises(TypeError, match="a tensor or a list of 16 numbers, not str"):
            call("zeros")


def test_setting_the_label_redraws_the_digit(model):
    widget = generation_widget(model)
    before = widget.image.value
    widget.label.value = 7
    assert widget.image.value != before
    assert widget.image.value == render(model, 7, widget.z)


def test_moving_a_slider_redraws_the_digit(model):
    widget = generation_widget(model)
    slider = widget.sliders[0]
    before = widget.image.value
    slider.value = 2.5 if slider.value < 0 else -2.5
    assert widget.image.value != before
    assert widget.z[widget.dims[0]] == pytest.approx(slider.value)


def test_randomize_changes_sliders_and_redraws_once(model):
    widget = generation_widget(model)
    before = [slider.value for slider in widget.sliders]
    image_before = widget.image.value
    redraws = _count_redraws(widget.image)
    widget.randomize.click()
    assert [slider.value for slider in widget.sliders] != before
    assert widget.image.value != image_before
    assert redraws[0] == 1


def test_temperature_zero_randomizes_to_the_origin(model):
    widget = generation_widget(model)
    widget.temperature.value = 0.0
    widget.randomize.click()
    assert all(slider.value == 0.0 for slider in widget.sliders)
    assert torch.equal(widget.z, torch.zeros(model.latent_dim))


def test_widget_css_classes_and_slider_count(model):
    widget = generation_widget(model)
    assert "cvae-label" in widget.label._dom_classes
    assert "cvae-temperature" in widget.temperature._dom_classes
    assert "cvae-randomize" in widget.randomize._dom_classes
    assert "cvae-digit" in widget.image._dom_classes
    assert all("cvae-latent-slider" in s._dom_classes for s in widget.sliders)
    assert len(widget.sliders) == 8 and widget.dims == decoder_dims(model)
    assert all(s.min == -3.0 and s.max == 3.0 for s in widget.sliders)


def test_same_z_widget_new_z_redraws(model):
    widget = same_z_widget(model)
    assert "cvae-same-z" in widget._dom_classes
    assert "cvae-same-z-image" in widget.image._dom_classes
    before = widget.image.value
    widget.new_z.click()
    assert widget.image.value != before


def test_interpolation_widget_controls_redraw(model):
    widget = interpolation_widget(model)
    assert "cvae-interpolation" in widget.image._dom_classes
    seen = {widget.image.value}
    widget.label.value = 4
    seen.add(widget.image.value)
    widget.steps.value = 3
    seen.add(widget.image.value)
    widget.new_endpoints.click()
    seen.add(widget.image.value)
    assert len(seen) == 4
    assert Image.open(io.BytesIO(widget.image.value)).width > 3 * 28


@pytest.mark.parametrize("make", [generation_widget, same_z_widget, interpolation_widget])
def test_widgets_reject_a_non_model(make):
    with pytest.raises(TypeError, match="CVAE"):
        make(torch.nn.Linear(2, 2))


def test_render_restores_the_thread_count(model):
    threads = torch.get_num_threads()
    render(model, 2, torch.zeros(model.latent_dim))
    assert torch.get_num_threads() == threads
    with pytest.raises(ValueError):
        render(model, 2, torch.zeros(3))
    assert torch.get_num_threads() == threads
