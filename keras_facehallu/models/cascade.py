"""The cascaded multi-scale hallucinator: five generator blocks joined by learned ×2 upscalers.

How the scales combine is **this project's interpretation** (the paper does not say):

- the model builds the 5-scale pyramid of the masked face itself (``pyramid.masked_face``):
  ``face_k`` and the binary mask ``m_k`` at k = 8, 16, 32, 64, 128;
- block_8 takes the 8×8 masked face (black, -1, outside ``m_8``): ``ŷ_8 = block_8(x_8)``;
- for k = 16 … 128 a learned pixel-shuffle upscaler carries ``ŷ_{k/2}`` up to k×k, and the
  next block's input is the face composited over it,
  ``x_k = m_k·face_k + (1 − m_k)·up_k(ŷ_{k/2})``, ``ŷ_k = block_k(x_k)``;
- outputs ``image_k = ŷ_k`` at all five scales (every one trained with its own loss and
  discriminator); with ``paste_face=True`` the final output keeps the input face exactly:
  ``image_128 = mask·masked_image + (1 − mask)·ŷ_128``.

An upscaler ``up_k`` (our design) is a residual pixel-shuffle block:
``bilinear×2(y) + conv3×3_{C→3}(PS(lrelu(conv3×3_{3→4C}(y))))`` with C = 64·width and the last
conv initialised to zero, so it starts as plain bilinear upsampling and learns a correction.

Example:
    >>> from keras_facehallu.models.cascade import CascadedHallucinator
    >>> model = CascadedHallucinator(width=1 / 16, seed=0)
    >>> out = model.hallucinate(np.zeros((2, 128, 128, 3), "uint8"),
    ...                         np.ones((2, 128, 128), bool))
    >>> out.shape
    (2, 128, 128, 3)
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_facehallu.models.generator_blocks import build_generator_block, scaled
from keras_facehallu.models.layers import LEAKY_SLOPE, Composite, PixelShuffle, SeededInitializers
from keras_facehallu.models.pyramid import SCALES, MaskedFacePyramid
from keras_facehallu.preprocessing import INPUT_SIZE, to_model_inputs
from keras_facehallu.presets import (
    PresetError,
    load_preset,
    load_preset_weights,
    preset_catalog,
    read_preset_config,
    resolve_preset,
    save_to_preset,
)

UPSCALER_FILTERS = 64


def build_upscaling_block(size: int, width: float = 1.0, name: str | None = None,
                          seed: int | None = None) -> keras.Model:
    """The learned ×2 upscaler that carries a ``size``×``size`` output to the next scale.

    Args:
        size: input side length (8, 16, 32 or 64); the output is ``2·size``.
        width: multiplier on its C = 64 filters.
        name: model name (default ``up_{size}_to_{2·size}``).
        seed: base seed of the kernel initializers.

    Example:
        >>> build_upscaling_block(8, 1 / 16).output_shape
        (None, 16, 16, 3)
    """
    inits = SeededInitializers(seed)
    name = name or f"up_{size}_to_{2 * size}"
    filters = scaled(UPSCALER_FILTERS, width)
    inputs = keras.Input((size, size, 3), name=f"{name}_input")
    x = keras.layers.Conv2D(4 * filters, 3, padding="same", kernel_initializer=inits.kernel(),
                            name="conv")(inputs)
    x = keras.layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name="lrelu")(x)
    x = PixelShuffle(2, name="shuffle")(x)
    x = keras.layers.Conv2D(3, 3, padding="same", kernel_initializer="zeros",
                            name="to_rgb")(x)
    skip = keras.layers.UpSampling2D(2, interpolation="bilinear", name="bilinear")(inputs)
    outputs = keras.layers.Add(name="residual")([skip, x])
    return keras.Model(inputs, outputs, name=name)


def _seed(seed, offset):
    return None if seed is None else int(seed) + offset


def build_cascade_graph(masked_image, mask, width, seed, paste_face, fade=None):
    """Wire the pyramid, blocks and upscalers on symbolic inputs; returns the output dict.

    ``fade`` (used by the ProGAN variant) is a layer called as ``fade([new, skip], index=i)``
    that blends block i's output with the nearest-upsampled previous output.
    """
    parts = MaskedFacePyramid(SCALES, name="masked_face_pyramid")([masked_image, mask])
    faces, masks = parts[0::2], parts[1::2]
    outputs = {}
    previous = None
    for i, size in enumerate(SCALES):
        block = build_generator_block(size, width, name=f"block_{size}",
                                      seed=_seed(seed, 100 * i))
        if previous is None:
            x = faces[0]
        else:
            up = build_upscaling_block(size // 2, width, seed=_seed(seed, 100 * i + 50))
            x = Composite(name=f"composite_{size}")([faces[i], masks[i], up(previous)])
        y = block(x)
        if fade is not None and previous is not None:
            skip = keras.layers.UpSampling2D(2, name=f"nearest_{size}")(previous)
            y = fade([y, skip], index=i)
        outputs[f"image_{size}"] = y
        previous = y
    if paste_face:
        outputs[f"image_{SCALES[-1]}"] = Composite(name="paste_face")(
            [masked_image, mask, outputs[f"image_{SCALES[-1]}"]]
        )
    return outputs


def model_inputs():
    """Fresh symbolic inputs of the model contract (128×128 masked image and mask)."""
    return {
        "masked_image": keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="masked_image"),
        "mask": keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="mask"),
    }


class _ClassProperty:
    """A read-only property of the class (``Model.presets``, as in keras-hub)."""

    def __init__(self, getter):
        self.getter = getter
        self.__doc__ = getter.__doc__

    def __get__(self, instance, owner):
        return self.getter(owner)


class HallucinatorMixin:
    """What the cascade and its ProGAN variant share: scales, hallucinate, block access."""

    @property
    def scales(self):
        return SCALES

    @_ClassProperty
    def presets(cls) -> dict:
        """The presets this class can load: ``{name: {"description", "class_name", ...}}``.

        Example:
            >>> sorted(CascadedHallucinator.presets)
            ['lfw_cascade_small']
        """
        return preset_catalog(cls)

    @classmethod
    def from_preset(cls, preset: str, **overrides):
        """A model built from a preset name or folder, with its weights (keras-hub style).

        Args:
            preset: a registered name (e.g. ``"lfw_cascade_small"``, shipped in the package) or
                a folder written by :meth:`save_to_preset`.
            **overrides: constructor arguments to change, e.g. ``paste_face=True``.

        Example:
            >>> model = CascadedHallucinator.from_preset("lfw_cascade_small")  # doctest: +SKIP
        """
        return load_preset(preset, expected_class=cls, **overrides)

    def save_to_preset(self, folder, metadata=None):
        """Writes ``config.json``, ``model.weights.h5`` and ``metadata.json`` into ``folder``."""
        return save_to_preset(self, folder, metadata=metadata)

    def block(self, size: int) -> keras.Model:
        """The generator block of scale ``size`` (a nested ``keras.Model``)."""
        return self.get_layer(f"block_{size}")

    def hallucinate(self, masked_image, mask, batch_size: int = 16):
        """The 128×128 hallucinated images, as numpy float32 in [-1, 1].

        Args:
            masked_image: uint8 0..255 or float [-1, 1] images (see ``to_model_inputs``).
            mask: bool, uint8 or float masks of the face region.
            batch_size: images per forward pass.

        Example:
            >>> out = model.hallucinate(images_uint8, masks_bool)  # doctest: +SKIP
        """
        inputs = to_model_inputs(masked_image, mask)
        outputs = self.predict(inputs, batch_size=batch_size, verbose=0)
        return np.asarray(outputs[f"image_{SCALES[-1]}"], dtype=np.float32)


def _is_weights_file(weights) -> bool:
    import os

    return str(weights).endswith(".weights.h5") and os.path.isfile(weights)


def preset_arguments(cls, weights, **given) -> dict:
    """Constructor arguments for ``cls(weights=preset)``: the preset's config, then ``given``.

    Arguments given as ``None`` take the preset's value, so ``CascadedHallucinator(weights=name)``
    is the model ``from_preset(name)`` builds; a given ``width`` must equal the preset's (the
    weights would not fit otherwise). A ``.weights.h5`` file or ``weights=None`` changes nothing.

    Raises:
        PresetError: the preset holds another class, its config is invalid (checked before
            anything is built), or ``width`` differs.
    """
    if weights is None or _is_weights_file(weights):
        return given
    spec = read_preset_config(weights)
    if spec["class_name"] != cls.__name__:
        raise PresetError(
            f"weights={str(weights)!r} hold a {spec['class_name']}, not a {cls.__name__}"
        )
    config = spec["config"]
    width = given.get("width")
    if width is not None and float(width) != float(config.get("width", 1.0)):
        raise PresetError(
            f"weights={str(weights)!r} were trained at width {config.get('width')}, this "
            f"{cls.__name__} has width {width}; leave width out (the preset's is used) or use "
            f"{cls.__name__}.from_preset({str(weights)!r})"
        )
    return {**given, **{k: v for k, v in config.items() if given.get(k) is None}}


def load_weights_argument(model, weights) -> None:
    """keras.applications-style ``weights=``: a preset name/folder or a ``.weights.h5`` file.

    A preset's ``width`` must equal the model's; the preset's weights are loaded into ``model``
    and its metadata kept in ``model.preset_metadata``.
    """
    if _is_weights_file(weights):
        model.load_weights(str(weights))
        return
    config = read_preset_config(weights)["config"]
    if float(config.get("width", 1.0)) != model.width:
        raise PresetError(
            f"weights={str(weights)!r} were trained at width {config.get('width')}, this "
            f"{type(model).__name__} has width {model.width}; build it with that width or use "
            f"{type(model).__name__}.from_preset({str(weights)!r})"
        )
    load_preset_weights(model, resolve_preset(weights))


@keras.saving.register_keras_serializable(package="keras_facehallu")
class CascadedHallucinator(HallucinatorMixin, keras.Model):
    """The paper's cascaded generator (block_8 … block_128 trained end to end).

    Inputs ``{"masked_image": [N,128,128,3] in [-1,1], "mask": [N,128,128,1] in {0,1}}``;
    outputs ``{"image_8", "image_16", "image_32", "image_64", "image_128"}`` (tanh, [-1, 1];
    ``image_128`` has the face pasted back when ``paste_face``). See the module docstring for how
    the scales are combined (our interpretation).

    Args:
        width: multiplier on every filter count and fc size (default 1.0 = the paper; 1/16 for
            tests; with a preset as ``weights``, the preset's).
        paste_face: put the input face pixels back into ``image_128`` (default False; with a
            preset as ``weights``, the preset's).
        seed: base seed of all kernel initializers (``None``: Keras' global seeding).
        name: model name.
        weights: optional preset name or folder (e.g. ``"lfw_cascade_small"``) or a
            ``.weights.h5`` file to load, as in ``keras.applications``; not part of the config.
            A preset supplies what its config defines, so ``CascadedHallucinator(weights=name)``
            equals ``CascadedHallucinator.from_preset(name)``; ``CascadedHallucinator.presets``
            lists the names.

    Example:
        >>> model = CascadedHallucinator(width=1 / 16, seed=0)
        >>> sorted(model.output_shape)
        ['image_128', 'image_16', 'image_32', 'image_64', 'image_8']
    """

    def __init__(self, width: float | None = None, paste_face: bool | None = None,
                 seed: int | None = None, name: str = "cascaded_hallucinator", weights=None,
                 **kwargs):
        given = preset_arguments(type(self), weights, width=width, paste_face=paste_face,
                                 seed=seed)
        width = 1.0 if given["width"] is None else given["width"]
        paste_face = bool(given["paste_face"])
        seed = given["seed"]
        inputs = model_inputs()
        outputs = build_cascade_graph(inputs["masked_image"], inputs["mask"], width, seed,
                                      paste_face)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.width = float(width)
        self.paste_face = bool(paste_face)
        self.seed = seed
        if weights is not None:
            load_weights_argument(self, weights)

    def scale_gates(self):
        """The per-scale gate g(s) that multiplies each scale's losses: ``{scale: 1.0}`` here."""
        return {s: ops.convert_to_tensor(1.0, dtype="float32") for s in SCALES}

    def get_config(self):
        return {"width": self.width, "paste_face": self.paste_face, "seed": self.seed,
                "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
