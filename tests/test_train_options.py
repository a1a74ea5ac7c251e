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
    assert ema.loss == small.loss and ema.width == small.width
    assert ema.ema_decay == 0.998 and ema.init_from == "lfw_cascade_small"
    with pytest.raises(ValueError, match="unknown keys"):
        get_config("tiny", r1=1.0)
