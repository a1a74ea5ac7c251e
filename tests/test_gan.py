"""HallucinationGAN: fit on tiny widths, per-loss metrics, test_step, seeding, save/load."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_facehallu.losses import LossConfig
from keras_facehallu.models.cascade import CascadedHallucinator
from keras_facehallu.models.progan import ProGANHallucinator, ProgressiveGrowing
from keras_facehallu.training.gan import LOG_NAMES, HallucinationGAN
from tests.standins import (
    standin_discriminator,
    standin_generator,
    standin_identity_net,
    standin_perceptual_net,
)

pytestmark = pytest.mark.multibackend
WIDTH = 1 / 32


def make_batches(n=4, batch_size=2, seed=0):
    """n random (masked input, image) pairs with a central face mask, as a tf.data.Dataset."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(-1, 1, (n, 128, 128, 3)).astype("float32")
    mask = np.zeros((n, 128, 128, 1), "float32")
    mask[:, 36:92, 40:88] = 1.0
    x = {"masked_image": image * mask - (1 - mask), "mask": mask}
    return tf.data.Dataset.from_tensor_slices((x, image)).batch(batch_size), (x, image)


def make_gan(seed=0, **compile_kwargs):
    """A width-1/32 cascade with the real discriminators and stand-in loss networks."""
    keras.utils.set_random_seed(seed)
    gan = HallucinationGAN(CascadedHallucinator(width=WIDTH, seed=seed), seed=seed)
    gan.compile(
        g_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
        d_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
        loss_config=LossConfig(),
        perceptual_net=standin_perceptual_net(seed=0),  # test stand-ins, not the real networks
        identity_net=standin_identity_net(seed=0),
        **compile_kwargs,
    )
    return gan


def weights(model):
    return [np.array(w) for w in model.get_weights()]


@pytest.fixture(scope="module")
def trained():
    gan = make_gan(seed=0)
    before_g, before_d = weights(gan.generator), [weights(d) for d in gan.discriminators]
    data, _ = make_batches()
    history = gan.fit(data, epochs=1, verbose=0)
    return gan, history, before_g, before_d


def test_fit_two_steps_logs_every_loss_and_updates_both_players(trained):
    gan, history, before_g, before_d = trained
    assert set(LOG_NAMES) <= set(history.history)
    for name in LOG_NAMES:
        value = history.history[name][-1]
        assert np.isfinite(value), name
    for name in ("pixel", "adv", "pc", "id", "d_loss", "pixel_hidden"):
        assert history.history[name][-1] > 0, name
    logged = history.history
    total = sum(logged[k][-1] for k in ("pixel", "adv", "pc", "id"))
    assert logged["g_loss"][-1] == pytest.approx(total, rel=1e-4)
    assert int(keras.ops.convert_to_numpy(gan.g_optimizer.iterations)) == 2
    assert int(keras.ops.convert_to_numpy(gan.d_optimizer.iterations)) == 2
    assert any(not np.allclose(a, b) for a, b in zip(before_g, weights(gan.generator), strict=True))
    for before, d in zip(before_d, gan.discriminators, strict=True):
        assert any(not np.allclose(a, b) for a, b in zip(before, weights(d), strict=True)), d.name


def test_test_step_reports_hidden_region_pixel_loss(trained):
    gan, *_ = trained
    data, (x, y) = make_batches(seed=1)
    logs = gan.evaluate(data, return_dict=True, verbose=0)
    assert set(LOG_NAMES) <= set(logs)
    # pixel_hidden is the plain l1 on [0, 1] of the 128 output outside the mask.
    out = np.asarray(gan.generator.predict(x, verbose=0)["image_128"])
    hidden = 1.0 - x["mask"]
    expected = (np.abs(out - y) * 0.5 * hidden).sum() / (hidden.sum() * 3)
    assert logs["pixel_hidden"] == pytest.approx(expected, rel=1e-4)


def test_seeded_runs_repeat_exactly(trained):
    gan, history, *_ = trained
    again = make_gan(seed=0)
    data, _ = make_batches()
    history2 = again.fit(data, epochs=1, verbose=0)
    assert history2.history["g_loss"] == pytest.approx(history.history["g_loss"], rel=1e-5)
    for a, b in zip(weights(gan), weights(again), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_generator_save_load_after_fit(trained, tmp_path):
    gan, *_ = trained
    path = tmp_path / "generator.keras"
    gan.generator.save(path)
    loaded = keras.saving.load_model(path)
    _, (x, _) = make_batches(n=2)
    a = gan.generator.predict(x, verbose=0)
    b = loaded.predict(x, verbose=0)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-6)


def test_scale_gates_of_zero_skip_a_scale():
    """A generator's scale_gates() of 0 at a scale leaves that scale's discriminator untouched."""
    keras.utils.set_random_seed(3)
    generator = standin_generator(scales=(8, 16), seed=0)
    generator.scale_gates = lambda: {8: 0.0, 16: 1.0}
    discriminators = [standin_discriminator(s, seed=0) for s in (8, 16)]
    gan = HallucinationGAN(generator, discriminators=discriminators)
    gan.compile(loss_config=LossConfig(no_pc=True, no_id=True))
    before = [weights(d) for d in discriminators]
    data, _ = make_batches(n=2)
    gan.fit(data, epochs=1, verbose=0)
    for a, b in zip(before[0], weights(discriminators[0]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.allclose(a, b) for a, b in zip(before[1], weights(discriminators[1]),
                                                     strict=True))


def test_bad_inputs_give_clear_errors():
    generator = standin_generator(scales=(8, 16), seed=0)
    with pytest.raises(ValueError, match="expected 2 discriminators"):
        HallucinationGAN(generator, discriminators=[standin_discriminator(8)])
    with pytest.raises(ValueError, match="lacks scales"):
        HallucinationGAN(generator, discriminators={8: standin_discriminator(8)})
    with pytest.raises(ValueError, match="`scales` attribute"):
        HallucinationGAN(keras.Sequential([keras.layers.Dense(1)]))
    gan = HallucinationGAN(generator, discriminators=[standin_discriminator(s) for s in (8, 16)])
    with pytest.raises(ValueError, match="must differ"):
        opt = keras.optimizers.Adam()
        gan.compile(g_optimizer=opt, d_optimizer=opt)
    gan.compile(loss_config=LossConfig(no_pc=True, no_id=True))
    x = np.zeros((2, 128, 128, 3), "float32")
    with pytest.raises(ValueError, match="'masked_image' and 'mask'"):
        gan.fit(x, x, epochs=1, verbose=0)


def test_progan_trains_with_the_growing_callback():
    keras.utils.set_random_seed(5)
    generator = ProGANHallucinator(width=WIDTH, seed=5)
    gan = HallucinationGAN(generator, seed=5)
    gan.compile(loss_config=LossConfig(no_pc=True, no_id=True))
    before = {s: weights(d) for s, d in zip(gan.scales, gan.discriminators, strict=True)}
    data, _ = make_batches(n=6)
    history = gan.fit(data, epochs=1, verbose=0, callbacks=[ProgressiveGrowing(1)])
    assert generator.progress == (2, 1.0)  # steps 0, 1, 2 -> phases 0, 1, 2
    assert np.all(np.isfinite(history.history["g_loss"]))
    after = {s: weights(d) for s, d in zip(gan.scales, gan.discriminators, strict=True)}
    changed = {s: any(not np.allclose(a, b) for a, b in zip(before[s], after[s], strict=True))
               for s in gan.scales}
    # 8 trains from step 0, 16 from step 1, 32 from step 2; 64 and 128 are not grown yet.
    assert changed == {8: True, 16: True, 32: True, 64: False, 128: False}


def test_moving_average_of_the_generator_follows_its_updates():
    """avg_1 = d·w_0 + (1 − d)·w_1 after one step from avg_0 = w_0; averaged() swaps, restores."""
    keras.utils.set_random_seed(0)
    generator = CascadedHallucinator(width=WIDTH, seed=0)
    gan = HallucinationGAN(generator, seed=0, ema_decay=0.75)
    gan.compile(loss_config=LossConfig.ablation("no_pc", no_id=True))
    w0 = weights(generator)
    np.testing.assert_array_equal(np.asarray(gan.average_variables[0]), w0[0])
    data, (x, _) = make_batches(n=2, batch_size=2)
    gan.fit(data, epochs=1, verbose=0)
    w1 = [np.asarray(v) for v in generator.trainable_variables]
    assert not np.allclose(w1[0], w0[0])
    for avg, a, b in zip(gan.average_variables, w0, w1, strict=True):
        np.testing.assert_allclose(np.asarray(avg), 0.75 * a + 0.25 * b, rtol=1e-5, atol=1e-6)
    with gan.averaged() as averaged:
        np.testing.assert_allclose(
            np.asarray(averaged.trainable_variables[0]), 0.75 * w0[0] + 0.25 * w1[0], atol=1e-6
        )
    np.testing.assert_array_equal(np.asarray(generator.trainable_variables[0]), w1[0])
    assert HallucinationGAN.from_config(gan.get_config()).ema_decay == 0.75
    with pytest.raises(ValueError, match="ema_decay"):
        HallucinationGAN(generator, ema_decay=1.5)


def _linear_discriminator(size, seed):
    """logits = flatten(image) · w: ∇_image = w, so ‖∇‖² = Σ w² is known exactly."""
    image, condition = keras.Input((size, size, 3)), keras.Input((size, size, 3))
    flat = keras.layers.Flatten()(image)
    init = keras.initializers.RandomNormal(seed=seed)
    logits = keras.layers.Dense(1, use_bias=False, kernel_initializer=init)(flat)
    return keras.Model([image, condition], logits)


def test_r1_penalty_is_half_gamma_times_the_squared_input_gradient():
    if keras.backend.backend() == "jax":
        from keras_facehallu.training.train_step_jax import _input_gradient
    else:
        from keras_facehallu.training.train_step_tf import _input_gradient
    generator = CascadedHallucinator(width=WIDTH, seed=0)
    discriminators = [_linear_discriminator(s, seed=s) for s in generator.scales]
    gan = HallucinationGAN(generator, discriminators, r1_gamma=3.0)
    gan.compile(loss_config=LossConfig.ablation("no_pc", no_id=True))
    _, (x, image) = make_batches(n=2)
    penalty = float(gan.r1_penalty(x, image, _input_gradient))
    expected = 0.5 * 3.0 * sum(float(np.sum(np.square(d.weights[0]))) for d in discriminators)
    np.testing.assert_allclose(penalty, expected, rtol=1e-4)


def test_lazy_r1_trains_and_changes_the_discriminator_step():
    def run(gamma):
        keras.utils.set_random_seed(0)
        gan = HallucinationGAN(CascadedHallucinator(width=WIDTH, seed=0), seed=0,
                               r1_gamma=gamma, r1_interval=2)
        gan.compile(loss_config=LossConfig.ablation("no_pc", no_id=True))
        gan.fit(make_batches(n=4, batch_size=2)[0], epochs=1, verbose=0)
        return gan

    plain, penalised = run(0.0), run(10.0)
    a, b = weights(plain.discriminators[-1]), weights(penalised.discriminators[-1])
    assert all(np.all(np.isfinite(w)) for w in b)
    assert not all(np.allclose(u, v) for u, v in zip(a, b, strict=True))
    again = HallucinationGAN.from_config(penalised.get_config())
    assert (again.r1_gamma, again.r1_interval) == (10.0, 2)
    with pytest.raises(ValueError, match="r1_interval"):
        HallucinationGAN(CascadedHallucinator(width=WIDTH), r1_interval=0)


def test_shared_generator_forward_gives_the_same_step_as_two_forwards():
    """share_forward runs G once per step; G is unchanged between the D and the G step, so the
    weights after two steps (L_pixel, L_adv, L_pc, L_id, R1, EMA all on) match two forwards."""

    def run(share):
        keras.utils.set_random_seed(0)
        gan = HallucinationGAN(CascadedHallucinator(width=WIDTH, seed=0), seed=0,
                               ema_decay=0.9, r1_gamma=1.0, r1_interval=2, share_forward=share)
        gan.compile(loss_config=LossConfig(), perceptual_net=standin_perceptual_net(seed=0),
                    identity_net=standin_identity_net(seed=0))
        gan.fit(make_batches(n=4, batch_size=2)[0], epochs=1, verbose=0, shuffle=False)
        return gan

    shared, twice = run(True), run(False)
    for a, b in [(shared.generator, twice.generator),
                 *zip(shared.discriminators, twice.discriminators, strict=True)]:
        for u, v in zip(weights(a), weights(b), strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-5)
    for u, v in zip(shared.average_variables, twice.average_variables, strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=1e-4, atol=1e-5)
    assert HallucinationGAN.from_config(twice.get_config()).share_forward is False


def test_feature_matching_trains_and_logs_l_fm():
    """fm_weight > 0: L_fm on every scale's discriminator features is logged and trains G."""
    keras.utils.set_random_seed(0)
    gan = HallucinationGAN(CascadedHallucinator(width=WIDTH, seed=0), seed=0)
    gan.compile(loss_config=LossConfig(fm_weight=2.0, no_pc=True, no_id=True))
    history = gan.fit(make_batches(n=2, batch_size=2)[0], epochs=1, verbose=0)
    assert history.history["fm"][0] > 0
    _, (x, image) = make_batches(n=2)
    g_loss, parts = gan.generator_loss(x, image, training=False)
    total = sum(float(parts[k]) for k in ("pixel", "adv", "pc", "id", "fm"))
    assert float(g_loss) == pytest.approx(total, rel=1e-5)
    off = HallucinationGAN(CascadedHallucinator(width=WIDTH, seed=0), seed=0)
    off.compile(loss_config=LossConfig(no_pc=True, no_id=True))
    assert float(off.generator_loss(x, image, training=False)[1]["fm"]) == 0.0
    # a discriminator without named hidden activations cannot be feature-matched
    generator = CascadedHallucinator(width=WIDTH, seed=0)
    linear = [_linear_discriminator(s, seed=s) for s in generator.scales]
    plain = HallucinationGAN(generator, linear)
    with pytest.raises(ValueError, match="feature matching.*_lrelu"):
        plain.compile(loss_config=LossConfig(fm_weight=1.0, no_pc=True, no_id=True))


def test_network_batch_feeds_only_the_first_images_to_l_pc_and_l_id():
    from keras_facehallu.losses import identity_loss, perceptual_loss

    keras.utils.set_random_seed(0)
    pc_net, id_net = standin_perceptual_net(seed=0), standin_identity_net(seed=0)
    gan = HallucinationGAN(CascadedHallucinator(width=WIDTH, seed=0), seed=0)
    only_128 = {s: 0.0 for s in (8, 16, 32, 64)}
    config = LossConfig(network_batch=1, scale_weights={"pc": only_128, "id": only_128})
    gan.compile(loss_config=config, perceptual_net=pc_net, identity_net=id_net)
    _, (x, image) = make_batches(n=2)
    _, parts = gan.generator_loss(x, image, training=False)
    pred = gan.generator(x, training=False)["image_128"][:1]
    assert float(parts["pc"]) == pytest.approx(float(perceptual_loss(pc_net, image[:1], pred)),
                                               rel=1e-4)
    assert float(parts["id"]) == pytest.approx(float(identity_loss(id_net, image[:1], pred)),
                                               rel=1e-4, abs=1e-6)
    with pytest.raises(ValueError, match="network_batch"):
        LossConfig(network_batch=0)
