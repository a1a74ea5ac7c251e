"""The ProGAN variant: the same five blocks, grown from 8×8 to 128×128 with a linear fade-in.

Our reading of progressive growing (Karras et al. 2018) for this task:

- The graph is the cascade's (same pyramid, blocks, learned upscalers and composite rule
  ``x_k = m_k·face_k + (1 − m_k)·up_k(image_{k/2})``), built once with static shapes; growing is
  done by two non-trainable state variables, ``phase`` (0 … 4: index of the newest scale) and
  ``alpha`` (0 … 1: how far that scale has faded in).
- Scale ``k`` (index i) has a gate ``g_i``: 1 for i < phase, ``alpha`` for i = phase, 0 for
  i > phase (and always 1 for block_8). Its output is
  ``image_k = g_i·block_k(x_k) + (1 − g_i)·nearest×2(image_{k/2})``, ProGAN's fade between the
  upsampled old output and the new block. Scales not grown yet just repeat the last grown
  output upsampled, so all five outputs always exist (static shapes) and their blocks get no
  gradient.
- ``scale_gates()`` returns ``{k: g_i}``: scales not yet grown weigh 0, the one fading in
  weighs ``alpha``, grown ones 1. The losses are the cascade's.
- :class:`ProgressiveGrowing` (a ``keras.callbacks.Callback``) sets ``phase``/``alpha`` before
  every training batch: phase ``p = min(step // steps_per_phase, 4)``; in each phase after the
  first, ``alpha`` rises linearly from ``1/F`` to 1 over the first ``F = fade_fraction ×
  steps_per_phase`` steps, then the phase trains stabilised (alpha = 1), as in ProGAN. After
  ``4 × steps_per_phase`` steps the full 128×128 model trains.

Example:
    >>> from keras_facehallu.models.progan import ProGANHallucinator, ProgressiveGrowing
    >>> model = ProGANHallucinator(width=1 / 16, seed=0)
    >>> model.set_progress(phase=2, alpha=0.5)
    >>> {k: float(v) for k, v in model.scale_gates().items()}
    {8: 1.0, 16: 1.0, 32: 0.5, 64: 0.0, 128: 0.0}
"""

from __future__ import annotations

import keras
from keras import ops

from keras_facehallu.models.cascade import HallucinatorMixin, build_cascade_graph, model_inputs
from keras_facehallu.models.pyramid import SCALES

LAST_PHASE = len(SCALES) - 1


@keras.saving.register_keras_serializable(package="keras_facehallu")
class ProgressiveFade(keras.layers.Layer):
    """Holds ``phase`` and ``alpha``; ``fade([new, skip], index=i)`` = ``g_i·new + (1−g_i)·skip``.

    Args:
        phase: initial phase (0 … 4).
        alpha: initial fade-in fraction of the newest scale.

    Example:
        >>> fade = ProgressiveFade(phase=1, alpha=0.25)
        >>> float(fade.gate(1))
        0.25
    """

    def __init__(self, phase: int = 0, alpha: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_phase = int(phase)
        self.initial_alpha = float(alpha)
        self.phase = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(float(phase)), trainable=False,
            name="phase", dtype="float32",
        )
        self.alpha = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(float(alpha)), trainable=False,
            name="alpha", dtype="float32",
        )

    def gate(self, index: int):
        """``g_index`` as a float32 scalar tensor (1 grown, alpha fading in, 0 not yet grown)."""
        if index == 0:
            return ops.convert_to_tensor(1.0, dtype="float32")
        phase = ops.convert_to_tensor(self.phase)
        alpha = ops.convert_to_tensor(self.alpha)
        grown = ops.cast(ops.greater(phase, index), "float32")
        fading = ops.cast(ops.equal(phase, index), "float32")
        return grown + fading * alpha

    def call(self, inputs, index: int = 0):
        new, skip = inputs
        g = ops.cast(self.gate(index), new.dtype)
        return g * new + (1.0 - g) * skip

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "phase": self.initial_phase, "alpha": self.initial_alpha}


@keras.saving.register_keras_serializable(package="keras_facehallu")
class ProGANHallucinator(HallucinatorMixin, keras.Model):
    """The ProGAN variant of the hallucinator (same blocks, progressive growing with fade-in).

    Same input/output dict contract as :class:`CascadedHallucinator`.
    Drive it with the :class:`ProgressiveGrowing` callback, or ``set_progress`` by hand.

    Args:
        width: multiplier on every filter count and fc size (1.0 = the paper).
        paste_face: put the input face pixels back into ``image_128``.
        seed: base seed of all kernel initializers.
        phase: initial phase (0: only block_8 is trained).
        alpha: initial fade-in of the newest scale.
        name: model name.

    Example:
        >>> model = ProGANHallucinator(width=1 / 16, seed=0)
        >>> model.progress
        (0, 1.0)
    """

    def __init__(self, width: float = 1.0, paste_face: bool = False, seed: int | None = None,
                 phase: int = 0, alpha: float = 1.0, name: str = "progan_hallucinator",
                 **kwargs):
        _check_progress(phase, alpha)
        inputs = model_inputs()
        fade = ProgressiveFade(phase, alpha, name="progressive_fade")
        outputs = build_cascade_graph(inputs["masked_image"], inputs["mask"], width, seed,
                                      paste_face, fade=fade)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.width = float(width)
        self.paste_face = bool(paste_face)
        self.seed = seed
        self.initial_phase = int(phase)
        self.initial_alpha = float(alpha)

    @property
    def fade(self) -> ProgressiveFade:
        return self.get_layer("progressive_fade")

    @property
    def phase(self):
        """The ``phase`` state variable (float32 holding 0 … 4)."""
        return self.fade.phase

    @property
    def alpha(self):
        """The ``alpha`` state variable (float32 in [0, 1])."""
        return self.fade.alpha

    @property
    def progress(self) -> tuple[int, float]:
        """``(phase, alpha)`` as Python numbers."""
        return (int(round(float(ops.convert_to_numpy(self.phase)))),
                float(ops.convert_to_numpy(self.alpha)))

    def set_progress(self, phase: int, alpha: float = 1.0):
        """Assign the state variables (phase 0 … 4, alpha in [0, 1])."""
        _check_progress(phase, alpha)
        self.phase.assign(float(phase))
        self.alpha.assign(float(alpha))

    def scale_gates(self):
        """The per-scale gate g(s) ``{scale: float32 scalar}`` from phase and alpha (see above)."""
        fade = self.fade
        return {s: fade.gate(i) for i, s in enumerate(SCALES)}

    def get_config(self):
        return {"width": self.width, "paste_face": self.paste_face, "seed": self.seed,
                "phase": self.initial_phase, "alpha": self.initial_alpha, "name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _check_progress(phase, alpha):
    if int(phase) != phase or not 0 <= phase <= LAST_PHASE:
        raise ValueError(f"phase must be an integer in 0..{LAST_PHASE}, found {phase!r}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], found {alpha!r}")


class ProgressiveGrowing(keras.callbacks.Callback):
    """Updates a :class:`ProGANHallucinator`'s ``phase`` and ``alpha`` before every train batch.

    Args:
        steps_per_phase: training steps spent in each phase (fade-in + stabilisation).
        fade_fraction: share of a phase spent fading the new scale in (alpha 1/F → 1).
        generator: the ProGAN model to drive; default: ``self.model`` if it is one, else its
            ``generator`` attribute (e.g. a ``HallucinationGAN``).
        initial_step: global step to start from (to resume a run).

    Example:
        >>> gan.fit(dataset, epochs=10, callbacks=[ProgressiveGrowing(500)])  # doctest: +SKIP
    """

    def __init__(self, steps_per_phase: int, fade_fraction: float = 0.5, generator=None,
                 initial_step: int = 0):
        super().__init__()
        if int(steps_per_phase) < 1:
            raise ValueError(f"steps_per_phase must be >= 1, found {steps_per_phase!r}")
        if not 0.0 < fade_fraction <= 1.0:
            raise ValueError(f"fade_fraction must be in (0, 1], found {fade_fraction!r}")
        self.steps_per_phase = int(steps_per_phase)
        self.fade_fraction = float(fade_fraction)
        self.generator = generator
        self.step = int(initial_step)
        self._last = None

    def schedule(self, step: int) -> tuple[int, float]:
        """``(phase, alpha)`` at global training step ``step`` (0-based)."""
        phase = min(step // self.steps_per_phase, LAST_PHASE)
        if phase == 0:
            return 0, 1.0
        fade_steps = max(1, int(round(self.fade_fraction * self.steps_per_phase)))
        within = step - phase * self.steps_per_phase
        return phase, min(1.0, (within + 1) / fade_steps)

    def _target(self):
        if self.generator is not None:
            return self.generator
        model = self.model
        for candidate in (model, getattr(model, "generator", None)):
            if isinstance(candidate, ProGANHallucinator):
                return candidate
        raise ValueError(
            "ProgressiveGrowing: expected the model being fit to be a ProGANHallucinator or to "
            f"have one as its `generator` attribute, found {type(model).__name__}; "
            "pass generator=… explicitly"
        )

    def on_train_batch_begin(self, batch, logs=None):
        progress = self.schedule(self.step)
        self.step += 1
        if progress == self._last:
            return
        # JAX trains on a copy of the state: write it back before assigning, and the trainer
        # reloads it (with our new values) before the next step.
        sync = getattr(self.model, "jax_state_sync", None)
        if callable(sync):
            sync()
        self._target().set_progress(*progress)
        self._last = progress
