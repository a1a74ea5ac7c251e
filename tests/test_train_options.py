"""TrainConfig's GAN options reach the built HallucinationGAN (moving average, R1)."""

from __future__ import annotations

import pytest

from keras_facehallu.training.configs import get_config
from keras_facehallu.training.train import build_gan


def test_moving_average_and_r1_options_reach_the_gan():
    gan = build_gan(get_config("tiny", ema_decay=0.99, r1_gamma=5.0, r1_interval=4))
    assert (gan.ema_decay, gan.r1_gamma, gan.r1_interval) == (0.99, 5.0, 4)
    assert len(gan.average_variables) == len(gan.generator.trainable_variables)
    plain = build_gan(get_config("tiny"))
    assert (plain.ema_decay, plain.r1_gamma, plain.average_variables) == (None, 0.0, [])


def test_shipped_fine_tuning_config_keeps_cpu_small_losses():
    ema, small = get_config("cpu_ema"), get_config("cpu_small")
    # cpu_small has since switched network_batch on (its A/B); cpu_ema stays as it was run
    small_loss = dict(small.loss)
    assert small_loss.pop("network_batch") == 4
    assert ema.loss == small_loss and ema.width == small.width
    assert ema.ema_decay == 0.998 and ema.init_from == "lfw_cascade_small"
    with pytest.raises(ValueError, match="unknown keys"):
        get_config("tiny", r1=1.0)


def test_ab_configs_differ_from_their_base_in_one_loss_option():
    """The A/B variants of issue 10 change one option each, everything else as cpu_ab_base."""
    import dataclasses

    base = get_config("cpu_ab_base")
    assert base.init_from == "lfw_cascade_small" and base.ema_decay is None
    assert base.time_budget_s and base.jit_compile
    for name, option, value in (("cpu_ab_fm", "fm_weight", 1.0),
                                ("cpu_ab_network_batch", "network_batch", 4)):
        variant = get_config(name)
        assert dataclasses.replace(variant, name=base.name, loss=base.loss) == base
        assert variant.loss == {**base.loss, option: value}

def test_speed_options_reach_the_gan_and_an_xla_step_trains():
    """share_forward, network_batch, fm_weight and (TensorFlow) jit_compile from the config."""
    import keras
    import numpy as np

    cfg = get_config("tiny", share_forward=False, jit_compile=True,
                     loss={"no_pc": True, "no_id": True, "network_batch": 1, "fm_weight": 0.5})
    gan = build_gan(cfg)
    assert gan.share_forward is False
    assert (gan.loss_config.network_batch, gan.loss_config.fm_weight) == (1, 0.5)
    assert build_gan(get_config("tiny")).share_forward is True
    if keras.backend.backend() == "tensorflow":
        assert gan.jit_compile is True
        rng = np.random.default_rng(0)
        mask = np.zeros((2, 128, 128, 1), "float32")
        mask[:, 40:90, 40:90] = 1
        image = rng.uniform(-1, 1, (2, 128, 128, 3)).astype("float32")
        logs = gan.train_on_batch({"masked_image": image * mask - (1 - mask), "mask": mask},
                                  image, return_dict=True)
        assert np.isfinite(logs["g_loss"]) and logs["fm"] > 0
