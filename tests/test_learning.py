"""It must learn: a tiny cascade learns context that is predictable from the face.

The generated dataset: a disc "face" of a random colour c in the middle, a "hair" ring around it
coloured -c, and a background coloured by a fixed channel permutation of c. The model sees only the
face disc (the mask); everything outside it is predictable from c alone. Before training the
cascade outputs roughly the mean colour; after a short training the validation L_pixel on the
hidden region (``pixel_hidden``) must fall by at least half.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_facehallu.losses import LossConfig
from keras_facehallu.models.cascade import CascadedHallucinator
from keras_facehallu.training.gan import HallucinationGAN

SIZE = 128
FACE_RADIUS, HAIR_RADIUS = 24, 40
# Face colours; each fixes the hair (-c) and background (channels of c rotated) colours.
PALETTE = np.array(
    [[0.8, 0.2, -0.6], [-0.7, 0.6, 0.1], [0.1, -0.8, 0.7], [-0.3, -0.2, -0.8]], "float32"
)


def disc_faces(n: int, seed: int):
    """n images [-1, 1] with a face disc, hair ring and background, and the face-disc mask."""
    rng = np.random.default_rng(seed)
    colours = PALETTE[rng.integers(0, len(PALETTE), n)][:, None, None, :]
    yy, xx = np.mgrid[:SIZE, :SIZE]
    r = np.hypot(yy - SIZE / 2 + 0.5, xx - SIZE / 2 + 0.5)[None, :, :, None]
    face = (r < FACE_RADIUS).astype("float32")
    hair = ((r >= FACE_RADIUS) & (r < HAIR_RADIUS)).astype("float32")
    background = 1.0 - face - hair
    image = face * colours + hair * -colours + background * colours[..., [1, 2, 0]]
    mask = np.broadcast_to(face, (n, SIZE, SIZE, 1)).astype("float32")
    x = {"masked_image": image * mask - (1.0 - mask), "mask": mask}
    return x, image.astype("float32")


def dataset(n, seed, batch_size, shuffle):
    ds = tf.data.Dataset.from_tensor_slices(disc_faces(n, seed))
    if shuffle:
        ds = ds.shuffle(n, seed=seed)
    return ds.batch(batch_size, drop_remainder=shuffle)


def test_tiny_cascade_learns_predictable_context():
    keras.utils.set_random_seed(0)
    gan = HallucinationGAN(CascadedHallucinator(width=1 / 32, seed=0), seed=0)
    steps = EPOCHS * 64 // BATCH
    gan.compile(
        g_optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps)),
        # L_pc and L_id need pretrained networks and L_adv slows this tiny run down: L_pixel
        # alone drives the learning here (the GAN's D step is skipped with no_adv).
        loss_config=LossConfig(no_adv=True, no_pc=True, no_id=True),
    )
    train = dataset(64, seed=1, batch_size=BATCH, shuffle=True)
    validation = dataset(16, seed=2, batch_size=16, shuffle=False)
    before = gan.evaluate(validation, return_dict=True, verbose=0)["pixel_hidden"]
    gan.fit(train, epochs=EPOCHS, verbose=0)
    after = gan.evaluate(validation, return_dict=True, verbose=0)["pixel_hidden"]
    print(f"validation pixel_hidden: {before:.4f} -> {after:.4f} ({after / before:.2f}x)")
    assert after <= 0.5 * before, (before, after)


EPOCHS, BATCH = 40, 4

if __name__ == "__main__":  # python tests/test_learning.py: run once and print the numbers
    pytest.main([__file__, "-s", "-q"])
