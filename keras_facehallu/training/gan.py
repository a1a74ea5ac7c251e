"""HallucinationGAN: a generator (cascade or ProGAN), one discriminator per scale, and the losses.

The maths (which losses, at which scale, with which weight) is written once here with
``keras.ops``; the gradient plumbing of ``train_step`` is per backend: ``train_step_tf.py``
(GradientTape, works under ``tf.distribute.MirroredStrategy``) and ``train_step_jax.py``
(stateless, ``jax.value_and_grad``, works with ``keras.distribution.DataParallel``).

One training step is a discriminator step then a generator step:

- D step: ``Σ_s g(s) · L_adv^D(D_s(target_s | cond_s), D_s(G(x)_s | cond_s))``, G frozen.
- G step: ``Σ_s g(s) · [w_pixel,s · L_pixel + w_adv,s · L_adv^G + w_pc,s · L_pc + w_id,s · L_id
  + w_fm,s · L_fm]`` with the updated D frozen (L_fm, feature matching, is off by default),
  where ``w`` comes from the :class:`LossConfig` and ``g(s)`` from the generator's
  ``scale_gates()`` (ProGAN's fade-in; 1 for the cascade).

``target_s`` is the real image area-averaged to scale ``s`` (``pyramid.image_pyramid``) and
``cond_s`` the masked input face at that scale (``pyramid.masked_pyramid``).

With ``ema_decay`` set, the GAN also keeps an exponential moving average of the generator's
trainable weights, updated after every G step (``avg ← d · avg + (1 − d) · w``); the average is
what snapshots, sample grids and the shipped presets hold (:meth:`HallucinationGAN.averaged`).
"""

from __future__ import annotations

import contextlib
import copy

import keras
from keras import ops

from keras_facehallu.losses.adversarial import (
    discriminator_adversarial_loss,
    generator_adversarial_loss,
)
from keras_facehallu.losses.config import LossConfig
from keras_facehallu.losses.feature_matching import feature_matching_loss, feature_model
from keras_facehallu.losses.identity import identity_loss
from keras_facehallu.losses.perceptual import perceptual_loss
from keras_facehallu.losses.pixel import pixel_loss
from keras_facehallu.models.pyramid import image_pyramid, mask_pyramid, masked_pyramid
from keras_facehallu.preprocessing import check_batch, to_training_data

LOG_NAMES = ("g_loss", "d_loss", "pixel", "adv", "pc", "id", "fm", "pixel_hidden")


def _unpack(data):
    if not isinstance(data, (tuple, list)) or len(data) < 2:
        raise ValueError(
            "HallucinationGAN: expected batches ({'masked_image', 'mask'}, image), "
            f"found {type(data).__name__}"
        )
    x, y = data[0], data[1]
    _check_inputs(x)
    check_batch(x, y)  # uint8 photos would train as if they were in [-1, 1]
    return x, y


def _check_inputs(x):
    if not isinstance(x, dict) or not {"masked_image", "mask"} <= set(x):
        found = sorted(x) if isinstance(x, dict) else type(x).__name__
        raise ValueError(
            f"HallucinationGAN: batch inputs must be a dict with 'masked_image' and 'mask', "
            f"found {found}"
        )


class _Untracked:
    """A plain holder: Keras does not track what it holds (no variable is listed twice)."""

    def __init__(self, value):
        self.value = value


def _backend_steps():
    """The module with this backend's ``train_step``/``test_step`` (the one place that chooses).

    Those modules import nothing from this one: the batch is unpacked and checked here.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        from keras_facehallu.training import train_step_jax

        return train_step_jax
    if backend == "tensorflow":
        from keras_facehallu.training import train_step_tf

        return train_step_tf
    raise NotImplementedError(
        f"HallucinationGAN: backend {backend!r} is not supported for training; "
        "use tensorflow or jax"
    )


@keras.saving.register_keras_serializable(package="keras_facehallu")
class HallucinationGAN(keras.Model):
    """A generator with one discriminator per scale, trained with ``fit`` on the paper's losses.

    Args:
        generator: a model with inputs ``{"masked_image", "mask"}``, outputs ``{"image_<s>"}`` for
            every ``s`` in ``generator.scales`` and (optionally) ``scale_gates() -> {s: g(s)}``,
            e.g. ``CascadedHallucinator`` or ``ProGANHallucinator``.
        discriminators: a list (one per scale, ascending) or ``{scale: model}`` of models called as
            ``d([image, condition])`` returning logits; by default
            ``build_discriminator(s, discriminator_width)`` for every scale.
        discriminator_width: width multiplier for the default discriminators (default: the
            generator's ``width`` attribute, else 1.0).
        spectral_norm: spectral normalisation in the default discriminators.
        seed: base seed of the default discriminators' initializers (scale ``s`` gets
            ``seed + s``); None: Keras' global seeding.
        ema_decay: keep an exponential moving average of the generator's trainable weights with
            this decay per G step (e.g. 0.999); None: no average.
        r1_gamma: weight γ of the R1 gradient penalty on real images in the D step,
            ``γ/2 · Σ_s g(s) · E‖∇_real D_s(real | cond_s)‖²`` (Mescheder et al., 2018); 0: off.
        r1_interval: lazy R1: the penalty is applied every ``r1_interval`` D steps, multiplied by
            the interval (StyleGAN2's lazy regularisation).
        share_forward: run the generator forward once per step and use it in both the D step
            (held fixed) and the G step (differentiated). The same maths as two forwards, since G
            does not change in between; False recomputes it in the G step (kept to measure the
            saving, ``benchmarks/bench_step_parts.py``).

    Example:
        >>> gan = HallucinationGAN(CascadedHallucinator(width=1 / 16))  # doctest: +SKIP
        >>> gan.compile(g_optimizer=keras.optimizers.Adam(2e-4, 0.5),  # doctest: +SKIP
        ...             d_optimizer=keras.optimizers.Adam(2e-4, 0.5),
        ...             loss_config=LossConfig.ablation("cascaded"))
        >>> gan.fit(make_dataset(folder, "train", batch_size=16), epochs=50)  # doctest: +SKIP
    """

    def __init__(
        self,
        generator,
        discriminators=None,
        discriminator_width: float | None = None,
        spectral_norm: bool = False,
        seed: int | None = None,
        ema_decay: float | None = None,
        r1_gamma: float = 0.0,
        r1_interval: int = 16,
        share_forward: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not hasattr(generator, "scales"):
            raise ValueError(
                "HallucinationGAN: the generator needs a `scales` attribute (e.g. (8, ..., 128)), "
                f"found a {type(generator).__name__} without one"
            )
        self.generator = generator
        self.scales = tuple(int(s) for s in generator.scales)
        if discriminator_width is None:
            discriminator_width = float(getattr(generator, "width", 1.0))
        self.discriminator_width = float(discriminator_width)
        self.spectral_norm = bool(spectral_norm)
        self.seed = seed
        if discriminators is None:
            from keras_facehallu.models.discriminators import build_discriminator

            discriminators = [
                build_discriminator(
                    s,
                    self.discriminator_width,
                    conditional=True,
                    spectral_norm=self.spectral_norm,
                    seed=None if seed is None else int(seed) + s,
                )
                for s in self.scales
            ]
        elif isinstance(discriminators, dict):
            missing = [s for s in self.scales if s not in discriminators]
            if missing:
                raise ValueError(
                    f"HallucinationGAN: discriminators dict lacks scales {missing}; "
                    f"expected keys {self.scales}"
                )
            discriminators = [discriminators[s] for s in self.scales]
        discriminators = list(discriminators)
        if len(discriminators) != len(self.scales):
            raise ValueError(
                f"HallucinationGAN: expected {len(self.scales)} discriminators (one per scale "
                f"{self.scales}), found {len(discriminators)}"
            )
        self.discriminators = discriminators
        if ema_decay is not None and not 0.0 < float(ema_decay) < 1.0:
            raise ValueError(f"HallucinationGAN: ema_decay must be in (0, 1), found {ema_decay}")
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        if float(r1_gamma) < 0 or int(r1_interval) < 1:
            raise ValueError(
                "HallucinationGAN: r1_gamma must be >= 0 and r1_interval >= 1, found "
                f"{r1_gamma} and {r1_interval}"
            )
        self.r1_gamma = float(r1_gamma)
        self.r1_interval = int(r1_interval)
        self.share_forward = bool(share_forward)
        self.average_variables = []
        if self.ema_decay is not None:
            for i, v in enumerate(generator.trainable_variables):
                self.average_variables.append(
                    self.add_weight(
                        shape=tuple(v.shape), initializer="zeros", trainable=False,
                        name=f"generator_average_{i}", dtype=v.dtype,
                    )
                )
            self.reset_average()
        self.trackers = {name: keras.metrics.Mean(name=name) for name in LOG_NAMES}
        self.loss_config = LossConfig()
        self._feature_models = _Untracked([])
        self.perceptual_net = None
        self.identity_net = None

    # ----------------------------------------------------------------------------- compile ----
    def compile(
        self,
        g_optimizer=None,
        d_optimizer=None,
        loss_config=None,
        perceptual_net=None,
        identity_net=None,
        **kwargs,
    ):
        """Set the two optimizers, the loss config and the frozen loss networks.

        Args:
            g_optimizer: optimizer for the generator (default Adam(2e-4, beta_1=0.5)).
            d_optimizer: optimizer for the discriminators (default Adam(2e-4, beta_1=0.5)).
            loss_config: a :class:`LossConfig`, an ablation name, a dict or None (defaults).
            perceptual_net: a frozen keras Model or callable, images in [-1, 1] -> feature maps.
                None: ``nets.get_perceptual_network(config.perceptual_network, layers)`` when L_pc
                is on and the config names a network; otherwise L_pc is off.
            identity_net: a frozen keras Model or callable, canonical images -> embeddings.
                None: ``nets.get_identity_network(config.identity_network)`` likewise.
            **kwargs: passed to ``keras.Model.compile`` (``jit_compile``, ``run_eagerly``, ...).
        """
        g_optimizer = keras.optimizers.get(
            g_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5, name="g_adam")
        )
        d_optimizer = keras.optimizers.get(
            d_optimizer or keras.optimizers.Adam(2e-4, beta_1=0.5, name="d_adam")
        )
        if g_optimizer is d_optimizer:
            raise ValueError("HallucinationGAN.compile: g_optimizer and d_optimizer must differ")
        config = LossConfig.get(loss_config)
        if perceptual_net is None and config.active("pc") and config.perceptual_network:
            from keras_facehallu import nets

            perceptual_net = nets.get_perceptual_network(
                config.perceptual_network, config.perceptual_layers
            )
        if identity_net is None and config.active("id") and config.identity_network:
            from keras_facehallu import nets

            identity_net = nets.get_identity_network(config.identity_network)
        self.loss_config = config
        # Feature models share the discriminators' weights; held outside Keras' tracking so that
        # no variable is listed twice.
        self._feature_models = _Untracked(
            [feature_model(d) for d in self.discriminators] if config.active("fm") else []
        )
        self.perceptual_net = perceptual_net if config.active("pc") else None
        self.identity_net = identity_net if config.active("id") else None
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        g_ids = {id(v) for v in self.generator.trainable_variables}

        def pick(variable):
            return g_optimizer if id(variable) in g_ids else d_optimizer

        # One optimizer object holding both, so that Keras (and the JAX state) sees every slot.
        optimizer = keras.optimizers.MultiOptimizer(pick, name="gan_optimizers")
        super().compile(optimizer=optimizer, **kwargs)
        # Build now: TensorFlow would otherwise create the slots lazily inside the first step, and
        # the JAX step needs every slot in the state from the start.
        optimizer.build(self.trainable_variables)

    # ------------------------------------------------------------- moving average of G ----
    def reset_average(self):
        """Sets the moving average to the generator's current weights (e.g. after loading them)."""
        for avg, v in zip(
            self.average_variables, self.generator.trainable_variables, strict=False
        ):
            avg.assign(ops.copy(v.value))  # a copy: JAX must not see one buffer twice in a step

    def update_average(self):
        """One EMA step towards the generator's current weights (stateful backends)."""
        d = self.ema_decay
        for avg, v in zip(self.average_variables, self.generator.trainable_variables, strict=True):
            avg.assign(d * avg.value + (1.0 - d) * v.value)

    @contextlib.contextmanager
    def averaged(self):
        """Within the block the generator holds the averaged weights (no-op without EMA).

        Example:
            >>> with gan.averaged():  # doctest: +SKIP
            ...     save_to_preset(gan.generator, "my_preset")
        """
        if not self.average_variables:
            yield self.generator
            return
        variables = self.generator.trainable_variables
        saved = [ops.convert_to_numpy(v.value) for v in variables]
        try:
            for v, avg in zip(variables, self.average_variables, strict=True):
                v.assign(ops.copy(avg.value))
            yield self.generator
        finally:
            for v, value in zip(variables, saved, strict=True):
                v.assign(value)

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        _check_inputs(inputs)
        check_batch(inputs)
        return self.generator(inputs, training=training)

    # numpy arrays in (e.g. uint8 from prepare_face): converted to the model's ranges, or refused.
    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        x, y = to_training_data(x, y)
        if isinstance(validation_data, (tuple, list)) and len(validation_data) >= 2:
            validation_data = (*to_training_data(*validation_data[:2]), *validation_data[2:])
        return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        x, y = to_training_data(x, y)
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        x, _ = to_training_data(x)
        return super().predict(x, *args, **kwargs)

    # -------------------------------------------------------------------------- the maths ----
    def scale_gates(self):
        """``{scale: g(s)}`` from the generator's ``scale_gates()`` (default 1)."""
        get = getattr(self.generator, "scale_gates", None)
        weights = get() if callable(get) else {}
        return {s: weights.get(s, 1.0) for s in self.scales}

    @staticmethod
    def _skip(weight) -> bool:
        return isinstance(weight, (int, float)) and weight == 0

    def _for_network(self, images):
        """The images L_pc and L_id see: the first ``network_batch``, at ``network_size``."""
        if self.loss_config.network_batch:
            images = images[: self.loss_config.network_batch]
        size = self.loss_config.network_size
        if images.shape[1] == size:
            return images
        return ops.image.resize(images, (size, size), interpolation="bilinear")

    def _pyramids(self, x, y, training, outputs=None):
        """G's outputs (computed unless given), the real image and the condition at every scale."""
        if outputs is None:
            outputs = self.generator(x, training=training)
        targets = image_pyramid(y, self.scales)
        conditions = masked_pyramid(x["masked_image"], x["mask"], self.scales)
        return outputs, targets, conditions

    def discriminator_loss(self, x, y, training=True, outputs=None):
        """D's adversarial loss summed over scales, G's outputs held fixed; a scalar.

        ``outputs``: the generator's outputs on ``x`` if already computed (else computed here).
        """
        cfg = self.loss_config
        outputs, targets, conditions = self._pyramids(x, y, training, outputs)
        total = ops.convert_to_tensor(0.0)
        for i, (s, g) in enumerate(self.scale_gates().items()):
            w = cfg.weight("adv", s)
            if self._skip(g) or w == 0:
                continue
            fake = ops.stop_gradient(outputs[f"image_{s}"])
            d = self.discriminators[i]
            real_logits = d([targets[i], conditions[i]], training=training)
            fake_logits = d([fake, conditions[i]], training=training)
            loss = discriminator_adversarial_loss(real_logits, fake_logits, cfg.adversarial)
            total = total + ops.cast(g, "float32") * w * loss
        return total

    def r1_penalty(self, x, y, input_gradient, training=True):
        """R1 on real images: ``γ/2 · Σ_s g(s) · E‖∇_real D_s(real_s | cond_s)‖²``; a scalar.

        Args:
            input_gradient: the backend's ``(f, inputs) -> d Σ f(inputs) / d inputs`` (the only
                per-backend part: a nested GradientTape on TensorFlow, ``jax.grad`` on JAX).
        """
        cfg = self.loss_config
        targets = image_pyramid(y, self.scales)
        conditions = masked_pyramid(x["masked_image"], x["mask"], self.scales)
        total = ops.convert_to_tensor(0.0)
        for i, (s, g) in enumerate(self.scale_gates().items()):
            if self._skip(g) or cfg.weight("adv", s) == 0:
                continue
            d, condition = self.discriminators[i], conditions[i]
            grad = input_gradient(lambda real, d=d, c=condition: d([real, c], training=training),
                                  targets[i])
            squared = ops.mean(ops.sum(ops.square(grad), axis=(1, 2, 3)))
            total = total + ops.cast(g, "float32") * squared
        return 0.5 * self.r1_gamma * total

    def generator_loss(self, x, y, training=True, outputs=None):
        """G's total loss and its parts (each loss's weighted contribution, plus pixel_hidden).

        ``outputs``: the generator's outputs on ``x`` if already computed (else computed here);
        the loss is differentiable with respect to them.

        Returns:
            ``(g_loss, {"pixel", "adv", "pc", "id", "fm", "pixel_hidden"})`` scalars; ``g_loss``
            is the sum of the first five; ``pixel_hidden`` is the plain l1 (on [0, 1]) of the
            final output over the region outside the face mask, not part of ``g_loss``.
        """
        cfg = self.loss_config
        outputs, targets, conditions = self._pyramids(x, y, training, outputs)
        zero = ops.convert_to_tensor(0.0)
        parts = {"pixel": zero, "adv": zero, "pc": zero, "id": zero, "fm": zero}
        for i, (s, g) in enumerate(self.scale_gates().items()):
            if self._skip(g):
                continue
            g = ops.cast(g, "float32")
            pred, target = outputs[f"image_{s}"], targets[i]
            w = cfg.weight("pixel", s)
            if w:
                parts["pixel"] = parts["pixel"] + g * w * pixel_loss(target, pred, cfg.pixel)
            w, w_fm = cfg.weight("adv", s), cfg.weight("fm", s)
            if w_fm:  # one forward on the fake gives L_fm's features and L_adv's logits
                features = self._feature_models.value[i]
                *fake_features, logits = features([pred, conditions[i]], training=False)
                *real_features, _ = features([target, conditions[i]], training=False)
                loss = feature_matching_loss(real_features, fake_features)
                parts["fm"] = parts["fm"] + g * w_fm * loss
            elif w:
                logits = self.discriminators[i]([pred, conditions[i]], training=False)
            if w:
                loss = generator_adversarial_loss(logits, cfg.adversarial)
                parts["adv"] = parts["adv"] + g * w * loss
            for name, net, network_loss in (("pc", self.perceptual_net, perceptual_loss),
                                            ("id", self.identity_net, identity_loss)):
                w = cfg.weight(name, s)
                if w and net is not None:
                    loss = network_loss(net, self._for_network(target), self._for_network(pred))
                    parts[name] = parts[name] + g * w * loss
        g_loss = parts["pixel"] + parts["adv"] + parts["pc"] + parts["id"] + parts["fm"]
        top = self.scales[-1]
        hidden = 1.0 - mask_pyramid(x["mask"], (top,))[0]
        parts["pixel_hidden"] = ops.stop_gradient(
            pixel_loss(targets[-1], outputs[f"image_{top}"], "l1", mask=hidden)
        )
        return g_loss, parts

    # ------------------------------------------------------------------ steps and plumbing ----
    @property
    def adversarial_on(self) -> bool:
        return self.loss_config.active("adv")

    def discriminator_variables(self):
        return [v for d in self.discriminators for v in d.trainable_variables]

    def train_step(self, *args):
        # Keras calls train_step(data) on TensorFlow and train_step(state, data) on JAX.
        *state, data = args
        x, y = _unpack(data)
        return _backend_steps().train_step(self, *state, x, y)

    def test_step(self, *args):
        *state, data = args
        x, y = _unpack(data)
        if state:
            return _backend_steps().test_step(self, *state, x, y)
        return self.update_trackers(self.evaluation_losses(x, y))

    def evaluation_losses(self, x, y):
        """All logged losses without updating anything: ``{name: scalar}`` for ``LOG_NAMES``."""
        g_loss, parts = self.generator_loss(x, y, training=False)
        d_loss = (
            self.discriminator_loss(x, y, training=False)
            if self.adversarial_on
            else ops.convert_to_tensor(0.0)
        )
        return {"g_loss": g_loss, "d_loss": d_loss, **parts}

    def update_trackers(self, values):
        """Update the per-loss Mean metrics with ``values`` and return their current results."""
        for name, tracker in self.trackers.items():
            tracker.update_state(values[name])
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def get_config(self):
        return {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminators": [keras.saving.serialize_keras_object(d) for d in self.discriminators],
            "discriminator_width": self.discriminator_width,
            "spectral_norm": self.spectral_norm,
            "seed": self.seed,
            "ema_decay": self.ema_decay,
            "r1_gamma": self.r1_gamma,
            "r1_interval": self.r1_interval,
            "share_forward": self.share_forward,
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserialising the nested models empties their configs
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminators"] = [
            keras.saving.deserialize_keras_object(d) for d in config["discriminators"]
        ]
        return cls(**config)
