"""Known answers for the losses (pixel, adversarial, perceptual, identity) and LossConfig."""

from __future__ import annotations

import math

import numpy as np
import pytest
from keras import ops

from keras_facehallu.losses import (
    LossConfig,
    cosine_identity_loss,
    discriminator_adversarial_loss,
    feature_distance,
    generator_adversarial_loss,
    identity_loss,
    perceptual_loss,
    pixel_loss,
)
from tests.standins import (
    standin_discriminator,
    standin_generator,
    standin_identity_net,
    standin_perceptual_net,
)

pytestmark = pytest.mark.multibackend


def f(x) -> float:
    return float(ops.convert_to_numpy(x))


def softplus(x):
    return math.log1p(math.exp(x))


# ------------------------------------------------------------------------------ L_pixel ----
def test_pixel_l1_l2_known_values():
    a = np.full((2, 4, 4, 3), -1.0, "float32")  # 0 on the [0, 1] scale
    b = np.full((2, 4, 4, 3), 0.0, "float32")  # 0.5
    assert f(pixel_loss(a, b, "l1")) == pytest.approx(0.5)
    assert f(pixel_loss(a, b, "l2")) == pytest.approx(0.25)
    assert f(pixel_loss(a, a, "l1")) == 0.0


def test_pixel_loss_mask_measures_only_the_weighted_region():
    target = np.zeros((1, 4, 4, 3), "float32")
    pred = target.copy()
    pred[:, :2] = 1.0  # wrong by 0.5 (on [0, 1]) in the top half only
    hidden = np.zeros((1, 4, 4, 1), "float32")
    hidden[:, :2] = 1.0
    assert f(pixel_loss(target, pred, "l1")) == pytest.approx(0.25)
    assert f(pixel_loss(target, pred, "l1", mask=hidden)) == pytest.approx(0.5)
    assert f(pixel_loss(target, pred, "l1", mask=1.0 - hidden)) == pytest.approx(0.0)


def test_pixel_loss_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        pixel_loss(np.zeros((1, 2, 2, 3)), np.zeros((1, 2, 2, 3)), "l3")


# -------------------------------------------------------------------------------- L_adv ----
@pytest.mark.parametrize(
    "kind, real, fake, d_expected, g_expected",
    [
        ("nonsaturating", 2.0, -1.0, softplus(-2.0) + softplus(-1.0), softplus(1.0)),
        ("hinge", 0.5, -0.25, 0.5 + 0.75, 0.25),
        ("lsgan", 0.5, 0.25, 0.5 * (0.25 + 0.0625), 0.5 * 0.5625),
    ],
)
def test_adversarial_losses_at_known_logits(kind, real, fake, d_expected, g_expected):
    real_logits = np.full((2, 3, 3, 1), real, "float32")
    fake_logits = np.full((2, 3, 3, 1), fake, "float32")
    d = discriminator_adversarial_loss(real_logits, fake_logits, kind)
    g = generator_adversarial_loss(fake_logits, kind)
    assert f(d) == pytest.approx(d_expected, rel=1e-5)
    assert f(g) == pytest.approx(g_expected, rel=1e-5)


def test_adversarial_loss_averages_over_patches():
    logits = np.array([[0.0], [2.0]], "float32")
    expected = (softplus(0.0) + softplus(-2.0)) / 2
    assert f(generator_adversarial_loss(logits)) == pytest.approx(expected, rel=1e-5)


def test_adversarial_loss_rejects_unknown_kind():
    with pytest.raises(ValueError, match="wgan"):
        generator_adversarial_loss([0.0], "wgan")


# --------------------------------------------------------------------------------- L_id ----
def test_cosine_identity_loss_known_values():
    e1 = np.array([[1.0, 0.0], [0.0, 3.0]], "float32")
    assert f(cosine_identity_loss(e1, e1)) == pytest.approx(0.0, abs=1e-6)
    assert f(cosine_identity_loss(e1, -e1)) == pytest.approx(2.0)
    assert f(cosine_identity_loss(e1, e1[::-1])) == pytest.approx(1.0)  # orthogonal
    e2 = np.array([[1.0, 1.0]], "float32")
    assert f(cosine_identity_loss([[1.0, 0.0]], e2)) == pytest.approx(1 - 1 / math.sqrt(2))


def test_identity_loss_with_standin_network(rng):
    net = standin_identity_net(seed=0)  # test stand-in, not the dlib network
    x = rng.uniform(-1, 1, (2, 128, 128, 3)).astype("float32")
    assert f(identity_loss(net, x, x)) == pytest.approx(0.0, abs=1e-5)
    assert 0.0 < f(identity_loss(net, x, -x)) <= 2.0


# --------------------------------------------------------------------------------- L_pc ----
def test_perceptual_loss_zero_for_identical_and_positive_otherwise(rng):
    net = standin_perceptual_net(seed=0)  # test stand-in, not a pretrained backbone
    x = rng.uniform(-1, 1, (2, 128, 128, 3)).astype("float32")
    y = rng.uniform(-1, 1, (2, 128, 128, 3)).astype("float32")
    assert f(perceptual_loss(net, x, x)) == 0.0
    assert f(perceptual_loss(net, x, y)) > 0.0


def test_feature_distance_known_values():
    a = [np.zeros((1, 2)), np.zeros((1, 4))]
    b = [np.ones((1, 2)), np.full((1, 4), 3.0)]
    assert f(feature_distance(a, b, "l1")) == pytest.approx((1 + 3) / 2)
    assert f(feature_distance(a, b, "l2")) == pytest.approx((1 + 9) / 2)
    with pytest.raises(ValueError, match="equally long"):
        feature_distance(a, b[:1])


# ------------------------------------------------------------------------------- config ----
def test_config_round_trip_through_json_and_dict():
    cfg = LossConfig(
        pixel="l2",
        adversarial="hinge",
        perceptual_layers=["a", "b"],
        scale_weights={"pixel": {8: 0.5, 128: 2.0}, "id": {"64": 0.0}},
        no_pc=True,
    )
    back = LossConfig.from_json(cfg.to_json())
    assert back == cfg
    assert back.scale_weights == {"pixel": {8: 0.5, 128: 2.0}, "id": {64: 0.0}}
    assert LossConfig.from_dict(cfg.to_dict()) == cfg
    assert LossConfig.get("no_adv") == LossConfig.ablation("no_adv")
    assert LossConfig.get(None) == LossConfig.ablation("cascaded")


def test_config_weights_per_loss_and_scale():
    cfg = LossConfig(pixel_weight=4.0, scale_weights={"pixel": {8: 0.25}})
    assert cfg.weight("pixel", 8) == 1.0
    assert cfg.weight("pixel", 128) == 4.0
    assert cfg.weight("adv", 8) == 1.0


@pytest.mark.parametrize("ablation, off", [("no_adv", "adv"), ("no_id", "id"), ("no_pc", "pc")])
def test_ablations_switch_off_exactly_one_loss(ablation, off):
    cfg = LossConfig.ablation(ablation)
    for loss in ("pixel", "adv", "pc", "id"):
        assert (cfg.weight(loss, 128) == 0.0) == (loss == off), loss
    assert LossConfig.ablation("l2").pixel == "l2"


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="LossConfig.pixel"):
        LossConfig(pixel="l3")
    with pytest.raises(ValueError, match="LossConfig.adversarial"):
        LossConfig(adversarial="wgan")
    with pytest.raises(ValueError, match="unknown keys"):
        LossConfig.from_dict({"pixle": "l1"})
    with pytest.raises(ValueError, match="scale_weights"):
        LossConfig(scale_weights={"perceptual": {8: 1.0}})
    with pytest.raises(ValueError, match="ablation"):
        LossConfig.ablation("wgan")


# ------------------------------------------------- ablation switches inside the GAN loss ----
@pytest.fixture(scope="module")
def standin_gan():
    from keras_facehallu.training.gan import HallucinationGAN

    generator = standin_generator(seed=0)
    discriminators = [standin_discriminator(s, seed=0) for s in generator.scales]
    return HallucinationGAN(generator, discriminators=discriminators)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(7)
    image = rng.uniform(-1, 1, (2, 128, 128, 3)).astype("float32")
    mask = np.zeros((2, 128, 128, 1), "float32")
    mask[:, 40:88, 44:84] = 1.0
    return {"masked_image": image * mask - (1 - mask), "mask": mask}, image


@pytest.mark.parametrize("preset, off", [("no_adv", "adv"), ("no_id", "id"), ("no_pc", "pc")])
def test_ablation_switches_zero_the_right_terms(standin_gan, batch, preset, off):
    standin_gan.compile(
        loss_config=preset,
        perceptual_net=standin_perceptual_net(seed=0),
        identity_net=standin_identity_net(seed=0),
    )
    g_loss, parts = standin_gan.generator_loss(*batch, training=False)
    for loss in ("pixel", "adv", "pc", "id"):
        assert (f(parts[loss]) == 0.0) == (loss == off), (preset, loss, f(parts[loss]))
    total = sum(f(parts[k]) for k in ("pixel", "adv", "pc", "id"))
    assert f(g_loss) == pytest.approx(total, rel=1e-5)


def test_l2_preset_changes_the_pixel_term(standin_gan, batch):
    values = {}
    for preset in ("cascaded", "l2"):
        standin_gan.compile(
            loss_config=LossConfig.ablation(preset, no_pc=True, no_id=True, no_adv=True)
        )
        _, parts = standin_gan.generator_loss(*batch, training=False)
        values[preset] = f(parts["pixel"])
    # Errors are below 1 on the [0, 1] scale, so their squares are smaller.
    assert 0.0 < values["l2"] < values["cascaded"]


def test_feature_matching_uses_every_named_activation_and_the_logits():
    """feature_model returns [conv0, each strided conv, logits] of a discriminator with its
    weights; L_fm is the l1 mean over layers and 0 for identical inputs."""
    from keras_facehallu.losses.feature_matching import feature_matching_loss, feature_model
    from keras_facehallu.models.discriminators import build_discriminator

    d = build_discriminator(32, width=1 / 16, seed=0)
    features = feature_model(d)
    assert len(features.outputs) == 1 + 3 + 1  # conv0, 32→16→8→4, logits
    assert {id(v) for v in features.weights} == {id(v) for v in d.weights}
    rng = np.random.default_rng(0)
    a, c = (rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32") for _ in range(2))
    *fa, logits = features([a, c])
    np.testing.assert_allclose(ops.convert_to_numpy(logits), ops.convert_to_numpy(d([a, c])),
                               atol=1e-5)
    assert float(feature_matching_loss(fa, fa)) == 0.0
    *fb, _ = features([-a, c])
    expected = np.mean([np.mean(np.abs(ops.convert_to_numpy(u) - ops.convert_to_numpy(v)))
                        for u, v in zip(fa, fb, strict=True)])
    assert float(feature_matching_loss(fa, fb)) == pytest.approx(expected, rel=1e-5)
    assert LossConfig().weight("fm", 128) == 0.0
    assert LossConfig(fm_weight=0.5).weight("fm", 8) == 0.5
