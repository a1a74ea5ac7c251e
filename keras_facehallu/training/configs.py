"""Named training configurations: the paper's cascade, ProGAN, the four ablations, and CPU configs.

A :class:`TrainConfig` holds everything a run needs; ``facehallu-train --config NAME``
picks one and ``--set key=value`` changes single fields. The resolved config is written to the
run folder as ``config.json``, so every run can be repeated.

Example:
    >>> cfg = get_config("no_id", epochs=5)
    >>> cfg.loss["no_id"], cfg.epochs
    (True, 5)
"""

from __future__ import annotations

import dataclasses
import json

from keras_facehallu.config_keys import check_keys

# Keys renamed since runs were first written: old name -> new name (still read, e.g. from an
# earlier run's config.json or ``--set loss_preset=l2``).
OLD_KEYS = {"loss_preset": "loss_ablation"}


def renamed_keys(d: dict) -> dict:
    """``d`` with the old names of :data:`OLD_KEYS` replaced by the new ones."""
    d = dict(d)
    for old, new in OLD_KEYS.items():
        if old in d:
            if new in d:
                raise ValueError(f"TrainConfig: give {new} or its old name {old}, not both")
            d[new] = d.pop(old)
    return d


@dataclasses.dataclass
class TrainConfig:
    """One training run.

    Args:
        name: the config's name (used in the run folder's name).
        model: ``"cascade"`` or ``"progan"``.
        width: generator width multiplier (1.0 = the paper's tables).
        discriminator_width: discriminator width multiplier (None: same as ``width``).
        spectral_norm: spectral normalisation in the discriminators.
        loss: keyword arguments of ``LossConfig.ablation(loss_ablation, **loss)``.
        loss_ablation: ``"cascaded"``, ``"l2"``, ``"no_adv"``, ``"no_id"`` or ``"no_pc"`` (the
            losses' ``ABLATIONS``; ``loss_preset``, its old name, is still read).
        epochs: number of epochs.
        batch_size: global batch size.
        steps_per_epoch: None = one pass over the training split.
        validation_steps: None = the whole validation split.
        lr_g, lr_d, beta_1: Adam settings of the two optimizers.
        flip: random horizontal flips of the training images.
        steps_per_phase: ProGAN only: training steps per growth phase (fade-in + stabilise).
        snapshots: epochs whose generator is kept as a preset folder (the paper's 10..50).
        seed: seeds the model, the data order and the flips.
        sample_count: validation faces rendered in each epoch's image grid.
        perceptual_resize: side the ``inception`` L_pc network resizes its input to (299 is its
            own; None keeps 128×128, about 5× cheaper).
        tensorboard: write TensorBoard logs (needs TensorFlow).
        init_from: a preset name or folder whose generator weights start the run (fine-tuning;
            the discriminators and optimizers start fresh). Ignored when a run is resumed from
            its own checkpoint.
        ema_decay: keep an exponential moving average of the generator's weights with this decay
            per step; snapshots, sample grids and ``final/`` then hold the average. None: off.
        r1_gamma: weight of the R1 gradient penalty on real images in the D step (0: off).
        r1_interval: lazy R1: applied every this many steps, scaled by the interval.
        icnr: ICNR initialisation of every convolution that feeds a pixel shuffle
            (:func:`keras_facehallu.models.icnr.apply_icnr`; a run from scratch starts without a
            checkerboard). No effect on weights loaded by ``init_from`` or ``--resume``.
        dtype_policy: ``"float32"`` or ``"mixed_bfloat16"`` (bfloat16 compute, float32
            weights: Keras' mixed precision; for accelerators with bfloat16 units).
        jit_compile: XLA-compile the TensorFlow train step (``compile(jit_compile=True)``); the
            JAX step is always compiled. Off by default on TensorFlow (Keras' ``"auto"`` leaves
            it off for this model).
        share_forward: one generator forward per step, used by the D and the G step (the same
            maths as two; False recomputes it, to measure the saving).
        time_budget_s: stop after the last epoch that ends within this many seconds of the
            start of training (None: no limit); the run then ends as finished, with a final
            preset of the epochs done.
    """

    name: str = "cascaded"
    model: str = "cascade"
    width: float = 1.0
    discriminator_width: float | None = None
    spectral_norm: bool = False
    loss_ablation: str = "cascaded"
    loss: dict = dataclasses.field(default_factory=dict)
    epochs: int = 50
    batch_size: int = 16
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta_1: float = 0.5
    flip: bool = True
    steps_per_phase: int = 2000
    snapshots: tuple = (10, 20, 30, 40, 50)
    seed: int = 0
    sample_count: int = 8
    perceptual_resize: int | None = 299
    tensorboard: bool = True
    init_from: str | None = None
    ema_decay: float | None = None
    icnr: bool = False
    r1_gamma: float = 0.0
    r1_interval: int = 16
    dtype_policy: str = "float32"
    share_forward: bool = True
    jit_compile: bool = False
    time_budget_s: float | None = None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["snapshots"] = list(self.snapshots)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = renamed_keys(d)
        check_keys(cls, d, "TrainConfig")
        if "snapshots" in d:
            d["snapshots"] = tuple(int(e) for e in d["snapshots"])
        return cls(**d)


_PAPER = {"width": 1.0, "epochs": 50, "batch_size": 16}
# cpu_small's losses as the packaged model, cpu_ema and the A/B runs were trained with.
_CPU_SMALL_LOSS = {
    "adv_weight": 0.1,
    "perceptual_layers": ["conv_2", "pool1", "mixed_2"],
    "scale_weights": {
        "pc": {8: 0.0, 16: 0.0, 32: 0.0, 64: 0.0},
        "id": {8: 0.0, 16: 0.0, 32: 0.0, 64: 0.0},
    },
}
CONFIGS: dict[str, dict] = {
    # The paper's models (width 1.0 needs a GPU).
    "cascaded": {**_PAPER, "loss_ablation": "cascaded"},
    "progan": {**_PAPER, "model": "progan", "loss_ablation": "cascaded"},
    "l2": {**_PAPER, "loss_ablation": "l2"},
    "no_adv": {**_PAPER, "loss_ablation": "no_adv"},
    "no_id": {**_PAPER, "loss_ablation": "no_id"},
    "no_pc": {**_PAPER, "loss_ablation": "no_pc"},
    # The packaged first model: a reduced-width cascade that trains on a 2-core CPU in hours.
    # L_pc and L_id only on the 128x128 output, L_pc on Inception's early layers at 128x128.
    # L_adv weighted 0.1: at 1.0 the discriminators won and L_pixel stopped falling in epoch 1.
    "cpu_small": {
        "width": 0.125,
        "epochs": 6,
        "steps_per_epoch": 500,
        "validation_steps": 20,
        "batch_size": 16,
        "loss_ablation": "cascaded",
        # L_pc and L_id on 4 of the 16 images: won its A/B at equal CPU time (MODEL_CARD.md,
        # 2026-12-08); the packaged model was trained before, with _CPU_SMALL_LOSS.
        "loss": {**_CPU_SMALL_LOSS, "network_batch": 4},
        "perceptual_resize": None,
        "snapshots": (2, 4, 6),
    },
    # For tests: tiny and fast.
    "tiny": {
        "width": 1 / 32,
        "epochs": 2,
        "batch_size": 2,
        "loss_ablation": "cascaded",
        "loss": {"no_pc": True, "no_id": True},
        "snapshots": (1, 2),
        "sample_count": 2,
    },
}


# Fine-tuning of the packaged model with a moving average of G: cpu_small's losses, stage 3's
# learning rates (D slower than G), shorter epochs so that snapshots come every 400 steps.
CONFIGS["cpu_ema"] = {
    **CONFIGS["cpu_small"],
    "loss": _CPU_SMALL_LOSS,
    "epochs": 8,
    "steps_per_epoch": 200,
    "validation_steps": 10,
    "lr_g": 1e-4,
    "lr_d": 5e-5,
    "ema_decay": 0.998,
    "init_from": "lfw_cascade_small",
    "snapshots": (2, 4, 6, 8),
}


# A/B runs at equal CPU time (issue 10): each fine-tunes the packaged model from the same start
# with cpu_ema's losses and learning rates (no moving average) for the same wall-clock budget;
# run side by side, one TensorFlow thread each, they get the same share of the CPU. The
# variants differ from cpu_ab_base in one option each; compare their final/ generators on the
# validation split.
CONFIGS["cpu_ab_base"] = {
    **CONFIGS["cpu_ema"],
    "ema_decay": None,
    "epochs": 1000,  # the time budget ends the run
    "steps_per_epoch": 100,
    "validation_steps": 5,
    "jit_compile": True,
    "time_budget_s": 4200.0,
    "snapshots": (),
}
CONFIGS["cpu_ab_fm"] = {
    **CONFIGS["cpu_ab_base"],
    "loss": {**CONFIGS["cpu_ab_base"]["loss"], "fm_weight": 1.0},
}
CONFIGS["cpu_ab_network_batch"] = {
    **CONFIGS["cpu_ab_base"],
    "loss": {**CONFIGS["cpu_ab_base"]["loss"], "network_batch": 4},
}


def list_configs() -> tuple[str, ...]:
    """The names of all training configs."""
    return tuple(CONFIGS)


def get_config(name: str, **overrides) -> TrainConfig:
    """The named config with single fields replaced.

    Args:
        name: one of :data:`CONFIGS`.
        **overrides: fields of :class:`TrainConfig`.
    """
    if name not in CONFIGS:
        raise ValueError(f"unknown training config {name!r}; expected one of {sorted(CONFIGS)}")
    return TrainConfig.from_dict({"name": name, **CONFIGS[name], **renamed_keys(overrides)})


def parse_override(text: str) -> tuple[str, object]:
    """``"key=value"`` → ``(key, value)``, the value read as JSON when it parses, else a string.

    Example:
        >>> parse_override("width=0.25"), parse_override("loss={\\"no_id\\": true}")
        (('width', 0.25), ('loss', {'no_id': True}))
    """
    if "=" not in text:
        raise ValueError(f"--set expects key=value, found {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value
