"""Live widgets: choose a label, move latent sliders, watch the digit change.

Introduced in 04_generation. Every widget only wires controls to the pure functions
``render`` and ``render_row``, which pytest and the benchmark call directly.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import ipywidgets as widgets
import torch
from PIL import Image

from cvae_lib.generation import interpolate, same_z_all_labels, sample_z
from cvae_lib.models import CVAE
from cvae_lib.plots import image_grid
from cvae_lib.validate import as_labels, check_model, integer, one_code

SCALE = 12  # 28 px -> 336 px: one digit must read from the back of a classroom
STRIP_SCALE = 5  # a strip of digits: 140 px each, shrunk to the notebook's width if wider
SLIDER_LIMIT = 3.0
MAX_SLIDERS = 8


def png_bytes(images: torch.Tensor, nrow: int, scale: int = SCALE) -> bytes:
    """Flattened images (N, 784) tiled ``nrow`` per row, dark ink on white, as PNG bytes."""
    pixels = (1.0 - image_grid(images, nrow).clamp(0, 1)) * 255
    picture = Image.fromarray(pixels.round().to(torch.uint8).numpy())
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block, then restore the previous thread count.

    One digit is far too small to gain from threads, and on a busy machine (say, another
    notebook training) a multi-threaded decode waits for a free core: about 20 ms instead of
    under 1 ms per redraw (benchmarks/bench_widget_latency.py).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def render(model: CVAE, label: int, z: torch.Tensor | Sequence[float]) -> bytes:
    """Decode one digit of class ``label`` from the latent code ``z``; return a PNG."""
    model = check_model(model).eval()
    labels = as_labels(label, model.num_classes, "label")
    if len(labels) != 1:
        raise ValueError(f"render draws one digit: pass one label, not {len(labels)}")
    z = one_code(model, z)
    with _one_thread():
        images = model.generate(labels, z=z)
    return png_bytes(images, nrow=1)


def render_row(images: torch.Tensor, scale: int = STRIP_SCALE) -> bytes:
    """A row of flattened images as one PNG strip."""
    return png_bytes(images, nrow=len(images), scale=scale)


def decoder_dims(model: CVAE, k: int = MAX_SLIDERS) -> list[int]:
    """The ``k`` latent dimensions the decoder weighs most (first-layer weight norm), sorted."""
    check_model(model)
    integer(k, "k (how many dimensions)")
    weight = model.decoder[0].weight.detach()[:, :model.latent_dim]
    return sorted(weight.norm(dim=0).argsort(descending=True)[:k].tolist())


def _image(png: bytes, css_class: str) -> widgets.Image:
    """An ipywidgets PNG image carrying ``css_class``, never wider than the notebook."""
    image = widgets.Image(value=png, format="png",
                          layout=widgets.Layout(max_width="100%", height="auto"))
    image.add_class(css_class)
    return image


def _button(description: str, css_class: str, icon: str = "refresh") -> widgets.Button:
    """A button carrying ``css_class``."""
    button = widgets.Button(description=description, icon=icon)
    button.add_class(css_class)
    return button


def _label_control(model: CVAE) -> widgets.ToggleButtons:
    """One toggle button per class id, class ``cvae-label``."""
    control = widgets.ToggleButtons(options=list(range(model.num_classes)), value=0,
                                    description="label",
                                    style={"button_width": "2.6em"})
    control.add_class("cvae-label")
    return control


class GenerationWidget(widgets.VBox):
    """Label buttons, latent sliders, temperature and randomise, and the decoded digit."""

    def __init__(self, model: CVAE, seed: int = 0) -> None:
        self.model = check_model(model).eval()
        self.seed = seed
        self.z = sample_z(model, 1, seed=seed)[0].clamp(-SLIDER_LIMIT, SLIDER_LIMIT)
        self.dims = decoder_dims(model)
        self._quiet = False
        self.label = _label_control(model)
        self.sliders = [self._slider(d) for d in self.dims]
        self.temperature = widgets.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.05,
                                               description="temperature", readout_format=".2f",
                                               style={"description_width": "initial"})
        self.temperature.add_class("cvae-temperature")
        self.randomize = _button("Randomise z", "cvae-randomize", icon="random")
        self.image = _image(render(model, 0, self.z), "cvae-digit")
        self.label.observe(self._redraw, names="value")
        self.randomize.on_click(self._on_randomize)
        super().__init__([self.label, widgets.HBox([widgets.VBox(self.sliders), self.image]),
                          widgets.HBox([self.temperature, self.randomize]),
                          widgets.HTML(self._note())])

    def _slider(self, dim: int) -> widgets.FloatSlider:
        """A slider for latent dimension ``dim`` that redraws the digit when moved."""
        slider = widgets.FloatSlider(value=float(self.z[dim]), min=-SLIDER_LIMIT,
                                     max=SLIDER_LIMIT, step=0.05, description=f"z[{dim}]",
                                     readout_format=".2f", continuous_update=True)
        slider.add_class("cvae-latent-slider")
        slider.observe(lambda change, d=dim: self._on_slider(d, change["new"]), names="value")
        return slider

    def _note(self) -> str:
        """Which latent dimensions have sliders, and what happens to the others."""
        if len(self.dims) == self.model.latent_dim:
            return f"<small>One slider per latent dimension ({self.model.latent_dim}).</small>"
        return (f"<small>Sliders for the {len(self.dims)} of {self.model.latent_dim} latent "
                f"dimensions the decoder weighs most ({self.dims}); the others keep their "
                f"last random value. Randomise draws z ~ N(0, temperature² I), clipped to "
                f"±{SLIDER_LIMIT:g}.</small>")

    def _on_slider(self, dim: int, value: float) -> None:
        """Store the slider's value in z and redraw, unless randomise is filling the sliders."""
        self.z[dim] = value
        if not self._quiet:
            self._redraw()

    def _redraw(self, _change: object = None) -> None:
        """Decode the current label and z into ``.image``."""
        self.image.value = render(self.model, int(self.label.value), self.z)

    def _on_randomize(self, _button: object = None) -> None:
        """Draw a new z at the chosen temperature, fill the sliders, redraw once."""
        self.seed += 1
        z = sample_z(self.model, 1, temperature=self.temperature.value, seed=self.seed)[0]
        self.z = z.clamp(-SLIDER_LIMIT, SLIDER_LIMIT)
        self._quiet = True  # the sliders' observers store their values but do not redraw
        try:
            for dim, slider in zip(self.dims, self.sliders):
                slider.value = float(self.z[dim])
        finally:
            self._quiet = False
        self._redraw()


def generation_widget(model: CVAE, seed: int = 0) -> GenerationWidget:
    """The live generation widget of 04_generation."""
    return GenerationWidget(model, seed=seed)


class SameZWidget(widgets.VBox):
    """One z decoded under every label as a strip, with a "new z" button."""

    def __init__(self, model: CVAE, seed: int = 0) -> None:
        self.model = check_model(model).eval()
        self.seed = seed
        self.new_z = _button("new z", "cvae-new-z")
        self.image = _image(self._png(), "cvae-same-z-image")
        self.new_z.on_click(self._on_new_z)
        super().__init__([self.new_z, self.image])
        self.add_class("cvae-same-z")

    def _png(self) -> bytes:
        """The strip for the current seed."""
        z = sample_z(self.model, 1, seed=self.seed)[0]
        return render_row(same_z_all_labels(self.model, z))

    def _on_new_z(self, _button: object = None) -> None:
        """Draw another z and redraw the strip."""
        self.seed += 1
        self.image.value = self._png()


def same_z_widget(model: CVAE, seed: int = 0) -> SameZWidget:
    """One z under all labels, with a button for a new z (04_generation)."""
    return SameZWidget(model, seed=seed)


class InterpolationWidget(widgets.VBox):
    """A straight line between two random z, decoded under the chosen label."""

    def __init__(self, model: CVAE, seed: int = 0) -> None:
        self.model = check_model(model).eval()
        self.seed = seed
        self.label = _label_control(model)
        self.steps = widgets.IntSlider(value=8, min=2, max=16, description="steps")
        self.new_endpoints = _button("new endpoints", "cvae-new-endpoints")
        self.image = _image(self._png(), "cvae-interpolation")
        self.label.observe(self._redraw, names="value")
        self.steps.observe(self._redraw, names="value")
        self.new_endpoints.on_click(self._on_new_endpoints)
        super().__init__([self.label, widgets.HBox([self.steps, self.new_endpoints]),
                          self.image])

    def _png(self) -> bytes:
        """The strip for the current label, steps and endpoints."""
        z_start, z_end = sample_z(self.model, 2, seed=self.seed)
        images = interpolate(self.model, z_start, z_end, int(self.label.value),
                             steps=int(self.steps.value))
        return render_row(images)

    def _redraw(self, _change: object = None) -> None:
        """Redraw the strip."""
        self.image.value = self._png()

    def _on_new_endpoints(self, _button: object = None) -> None:
        """Draw two new endpoints and redraw."""
        self.seed += 1
        self._redraw()


def interpolation_widget(model: CVAE, seed: int = 0) -> InterpolationWidget:
    """Interpolation between two z under a chosen label (04_generation)."""
    return InterpolationWidget(model, seed=seed)
