"""L_adv: adversarial losses for the generator and the discriminator, from discriminator logits.

Three kinds are offered:

- ``"nonsaturating"`` (default, Goodfellow et al. 2014): D minimises
  ``softplus(-D(real)) + softplus(D(fake))`` (binary cross-entropy on logits) and G minimises
  ``softplus(-D(fake))``.
- ``"hinge"`` (Lim & Ye 2017; SAGAN): D minimises ``relu(1 - D(real)) + relu(1 + D(fake))``,
  G minimises ``-D(fake)``.
- ``"lsgan"`` (least squares, Mao et al. 2017): D minimises ``(D(real) - 1)² + D(fake)²``,
  G minimises ``(D(fake) - 1)²``; each term halved as in the paper by Mao et al.

Every loss is the mean over all logits (a patch discriminator's map counts each patch once).
"""

from __future__ import annotations

from keras import ops

ADVERSARIAL_KINDS = ("nonsaturating", "hinge", "lsgan")


def _check(kind: str) -> None:
    if kind not in ADVERSARIAL_KINDS:
        raise ValueError(
            f"adversarial loss: kind must be one of {ADVERSARIAL_KINDS}, found {kind!r}"
        )


def generator_adversarial_loss(fake_logits, kind: str = "nonsaturating"):
    """The generator's L_adv from the discriminator's logits on generated images.

    Args:
        fake_logits: D's logits for generated images, any shape [N, ...].
        kind: ``"nonsaturating"``, ``"hinge"`` or ``"lsgan"``.

    Example:
        >>> round(float(generator_adversarial_loss([0.0])), 4)  # softplus(0) = log 2
        0.6931
    """
    _check(kind)
    fake = ops.convert_to_tensor(fake_logits, "float32")
    if kind == "nonsaturating":
        return ops.mean(ops.softplus(-fake))
    if kind == "hinge":
        return -ops.mean(fake)
    return 0.5 * ops.mean(ops.square(fake - 1.0))


def discriminator_adversarial_loss(real_logits, fake_logits, kind: str = "nonsaturating"):
    """The discriminator's L_adv from its logits on real and on generated images.

    Args:
        real_logits: D's logits for real images, [N, ...].
        fake_logits: D's logits for generated images, [N, ...].
        kind: ``"nonsaturating"``, ``"hinge"`` or ``"lsgan"``.

    Example:
        >>> float(discriminator_adversarial_loss([2.0], [-2.0], kind="hinge"))
        0.0
    """
    _check(kind)
    real = ops.convert_to_tensor(real_logits, "float32")
    fake = ops.convert_to_tensor(fake_logits, "float32")
    if kind == "nonsaturating":
        return ops.mean(ops.softplus(-real)) + ops.mean(ops.softplus(fake))
    if kind == "hinge":
        return ops.mean(ops.relu(1.0 - real)) + ops.mean(ops.relu(1.0 + fake))
    return 0.5 * (ops.mean(ops.square(real - 1.0)) + ops.mean(ops.square(fake)))
