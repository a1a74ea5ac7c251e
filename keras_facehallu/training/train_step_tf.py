"""HallucinationGAN's train step on the TensorFlow backend: two GradientTapes, D then G.

Works under ``tf.distribute.MirroredStrategy``: each replica's losses are divided by the number of
replicas before the gradient, because the optimizers sum the replicas' gradients (the same
convention as Keras' own ``train_step``), so one step on R replicas equals one step on one device
with the same global batch.
"""

from __future__ import annotations

import tensorflow as tf


def _input_gradient(f, inputs):
    """d Σ f(inputs) / d inputs, recorded by the enclosing tape (second order for R1)."""
    with tf.GradientTape() as inner:
        inner.watch(inputs)
        total = tf.reduce_sum(f(inputs))
    return inner.gradient(total, inputs)


def train_step(gan, x, y):
    """One D step then one G step on a checked batch; returns the logs.

    With ``gan.share_forward`` the generator runs once, recorded by the G tape; the D step uses
    those outputs held fixed (and is kept off the G tape), then the G step differentiates through
    them with the updated discriminators.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    g_vars = gan.generator.trainable_variables
    d_loss = tf.constant(0.0)
    with tf.GradientTape() as g_tape:
        outputs = gan.generator(x, training=True) if gan.share_forward else None
        if gan.adversarial_on:
            with g_tape.stop_recording():
                d_loss = _discriminator_step(gan, x, y, outputs, replicas)
        g_loss, parts = gan.generator_loss(x, y, training=True, outputs=outputs)
        scaled = g_loss / replicas
    grads = g_tape.gradient(scaled, g_vars)
    gan.g_optimizer.apply(grads, g_vars)
    if gan.average_variables:
        gan.update_average()
    gan.optimizer.iterations.assign_add(1)
    return gan.update_trackers({"g_loss": g_loss, "d_loss": d_loss, **parts})


def _discriminator_step(gan, x, y, outputs, replicas):
    """The D step (with lazy R1 when on); returns D's adversarial loss."""
    d_vars = gan.discriminator_variables()
    with tf.GradientTape() as tape:
        d_loss = gan.discriminator_loss(x, y, training=True, outputs=outputs)
        scaled = d_loss / replicas
        if gan.r1_gamma:
            every = gan.r1_interval
            due = tf.equal(gan.optimizer.iterations % every, 0)
            r1 = tf.cond(
                due,
                lambda: gan.r1_penalty(x, y, _input_gradient) * float(every),
                lambda: tf.constant(0.0),
            )
            scaled = scaled + r1 / replicas
    grads = tape.gradient(scaled, d_vars)
    gan.d_optimizer.apply(grads, d_vars)
    return d_loss
