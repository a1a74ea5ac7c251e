"""HallucinationGAN's train and test steps on the JAX backend: stateless, ``jax.value_and_grad``.

The losses are the same Python functions as on TensorFlow (``gan.discriminator_loss``,
``gan.generator_loss``), run inside a ``keras.StatelessScope`` that maps every model variable to
the traced value in the step's state. The optimizer state is the ``MultiOptimizer`` that
``HallucinationGAN.compile`` builds: its own variables, then each inner optimizer's.
Under ``keras.distribution.DataParallel`` Keras shards the batch and XLA averages the gradients
over the global batch, so nothing here depends on the number of devices.
"""

from __future__ import annotations

import jax
import keras
from keras import ops


def _optimizer_slices(gan):
    """Where the MultiOptimizer's own, G's and D's variables lie in ``gan.optimizer.variables``."""
    multi = gan.optimizer
    start = len(multi.variables) - sum(len(o.variables) for o in multi.optimizers)
    slices = {}
    for opt in multi.optimizers:
        slices[id(opt)] = slice(start, start + len(opt.variables))
        start += len(opt.variables)
    iterations = [i for i, v in enumerate(multi.variables) if v is multi.iterations]
    return slices.get(id(gan.g_optimizer)), slices.get(id(gan.d_optimizer)), iterations


def _run(gan, fn, trainable, non_trainable):
    """``fn()`` with the model's variables set to the given values -> (result, non_trainable)."""
    mapping = list(zip(gan.trainable_variables, trainable, strict=True))
    mapping += list(zip(gan.non_trainable_variables, non_trainable, strict=True))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        result = fn()
    updated = []
    for v, old in zip(gan.non_trainable_variables, non_trainable, strict=True):
        new = scope.get_current_value(v)
        updated.append(old if new is None else new)
    return result, updated


def _input_gradient(f, inputs):
    """d Σ f(inputs) / d inputs (differentiable again by the outer ``value_and_grad``, for R1)."""
    return jax.grad(lambda value: ops.sum(f(value)))(inputs)


def train_step(gan, state, x, y):
    """One D step then one G step on a checked batch; ``state`` and the return value follow
    Keras' JAX trainer.

    With ``gan.share_forward`` the generator runs once (``jax.vjp``): the D step uses its outputs
    as constants, the G loss is differentiated with respect to them with the updated
    discriminators, and the generator's pullback turns that into G's gradients.
    """
    trainable, non_trainable, optimizer_values, metrics_values = state
    trainable, optimizer_values = list(trainable), list(optimizer_values)
    position = {id(v): i for i, v in enumerate(gan.trainable_variables)}
    g_idx = [position[id(v)] for v in gan.generator.trainable_variables]
    d_idx = [position[id(v)] for v in gan.discriminator_variables()]
    g_slice, d_slice, iterations = _optimizer_slices(gan)

    def with_values(idx, values):
        full = list(trainable)
        for i, value in zip(idx, values, strict=True):
            full[i] = value
        return full

    g_values = [trainable[i] for i in g_idx]
    outputs = pullback = None
    if gan.share_forward:
        def g_forward(g_values):  # traced here, before the D step replaces `trainable`
            return _run(gan, lambda: gan.generator(x, training=True),
                        with_values(g_idx, g_values), non_trainable)

        outputs, pullback, non_trainable = jax.vjp(g_forward, g_values, has_aux=True)

    d_loss = ops.convert_to_tensor(0.0)
    if gan.adversarial_on and d_idx:

        step = optimizer_values[iterations[0]] if iterations else 0
        fixed = None if outputs is None else jax.lax.stop_gradient(outputs)

        def d_objective():
            loss = gan.discriminator_loss(x, y, training=True, outputs=fixed)
            if not gan.r1_gamma:
                return loss, loss
            every = gan.r1_interval
            r1 = jax.lax.cond(
                step % every == 0,
                lambda: ops.cast(gan.r1_penalty(x, y, _input_gradient) * float(every), "float32"),
                lambda: ops.convert_to_tensor(0.0, "float32"),
            )
            return loss + r1, loss

        def d_loss_fn(d_values, non_trainable):
            (objective, loss), non_trainable = _run(
                gan, d_objective, with_values(d_idx, d_values), non_trainable
            )
            return objective, (loss, non_trainable)

        d_values = [trainable[i] for i in d_idx]
        (_, (d_loss, non_trainable)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
            d_values, non_trainable
        )
        new_d, new_opt = gan.d_optimizer.stateless_apply(
            optimizer_values[d_slice], d_grads, d_values
        )
        optimizer_values[d_slice] = new_opt
        trainable = with_values(d_idx, new_d)

    if gan.share_forward:

        def loss_of_outputs(outputs, non_trainable):
            (g_loss, parts), non_trainable = _run(
                gan,
                lambda: gan.generator_loss(x, y, training=True, outputs=outputs),
                trainable,
                non_trainable,
            )
            return g_loss, (parts, non_trainable)

        (g_loss, (parts, non_trainable)), output_grads = jax.value_and_grad(
            loss_of_outputs, has_aux=True
        )(outputs, non_trainable)
        (g_grads,) = pullback(output_grads)
    else:

        def g_loss_fn(g_values, non_trainable):
            (g_loss, parts), non_trainable = _run(
                gan,
                lambda: gan.generator_loss(x, y, training=True),
                with_values(g_idx, g_values),
                non_trainable,
            )
            return g_loss, (parts, non_trainable)

        (g_loss, (parts, non_trainable)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
            g_values, non_trainable
        )
    new_g, new_opt = gan.g_optimizer.stateless_apply(optimizer_values[g_slice], g_grads, g_values)
    optimizer_values[g_slice] = new_opt
    trainable = with_values(g_idx, new_g)
    if gan.average_variables:  # the moving average lives in the non-trainable state
        where = {id(v): i for i, v in enumerate(gan.non_trainable_variables)}
        d = gan.ema_decay
        for avg, value in zip(gan.average_variables, new_g, strict=True):
            i = where[id(avg)]
            non_trainable[i] = d * non_trainable[i] + (1.0 - d) * value
    for i in iterations:
        optimizer_values[i] = optimizer_values[i] + 1

    logs, metrics_values = _update_metrics(
        gan, metrics_values, {"g_loss": g_loss, "d_loss": d_loss, **parts}
    )
    return logs, (trainable, non_trainable, optimizer_values, metrics_values)


def test_step(gan, state, x, y):
    """Validation losses (incl. ``pixel_hidden``) without updating weights."""
    trainable, non_trainable, metrics_values = state
    values, non_trainable = _run(
        gan, lambda: gan.evaluation_losses(x, y), list(trainable), list(non_trainable)
    )
    logs, metrics_values = _update_metrics(gan, metrics_values, values)
    return logs, (trainable, non_trainable, metrics_values)


def _update_metrics(gan, metrics_values, values):
    new_values, logs, start = [], {}, 0
    for name, tracker in gan.trackers.items():
        n = len(tracker.variables)
        mine = tracker.stateless_update_state(metrics_values[start : start + n], values[name])
        logs[name] = tracker.stateless_result(mine)
        new_values.extend(mine)
        start += n
    return logs, new_values
