"""LossConfig: the weights of every loss at every scale, and the ablation switches, in one place."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from keras_facehallu.config_keys import check_keys
from keras_facehallu.losses.adversarial import ADVERSARIAL_KINDS
from keras_facehallu.losses.pixel import PIXEL_KINDS

LOSS_NAMES = ("pixel", "adv", "pc", "id", "fm")

# The paper's ablations (Table 2 of the paper; see PAPER.md), by name.
ABLATIONS = {
    "cascaded": {},
    "l2": {"pixel": "l2"},
    "no_adv": {"no_adv": True},
    "no_id": {"no_id": True},
    "no_pc": {"no_pc": True},
}


@dataclass
class LossConfig:
    """Weights per loss and per scale, loss variants and ablation switches for the GAN.

    The generator's loss is ``Σ_scale g(s) · Σ_loss weight(loss) · scale_weights[loss][s] ·
    L_loss(s)``, where ``g(s)`` comes from the generator's ``scale_gates()`` (1 for the cascade,
    the fade-in schedule for ProGAN) and a scale missing from ``scale_weights[loss]`` counts 1.
    The paper writes the per-block loss as ``λ·L_pixel + L_pc + L_adv + L_id`` without giving λ;
    ``pixel_weight=10`` is this project's choice.

    Args:
        pixel: ``"l1"`` (the paper) or ``"l2"`` (ablation).
        adversarial: ``"nonsaturating"``, ``"hinge"`` or ``"lsgan"``.
        perceptual_network: name for ``keras_facehallu.nets.get_perceptual_network`` or None.
        perceptual_layers: layer names for that network, or None for its defaults.
        identity_network: name for ``keras_facehallu.nets.get_identity_network`` or None.
        pixel_weight, adv_weight, pc_weight, id_weight: the weight of each loss.
        fm_weight: the weight of L_fm, feature matching on the discriminators' hidden layers
            (``losses.feature_matching``; not in the paper; 0 = off).
        scale_weights: ``{loss: {scale: weight}}`` with loss in ``LOSS_NAMES``.
        network_size: images at smaller scales are resized (bilinear) to this size before the
            perceptual and identity networks, which expect canonical 128×128 faces.
        network_batch: L_pc and L_id see only the first ``network_batch`` images of each batch
            (None: all). Batches are shuffled, so this is an unbiased, noisier estimate at a
            fraction of the two networks' cost (``benchmarks/bench_step_parts.py``).
        no_adv, no_id, no_pc: ablation switches; they zero that loss (and skip its network).

    Example:
        >>> cfg = LossConfig.ablation("no_id")
        >>> cfg.weight("id", 128), cfg.weight("pixel", 8)
        (0.0, 10.0)
        >>> LossConfig.from_json(cfg.to_json()) == cfg
        True
    """

    pixel: str = "l1"
    adversarial: str = "nonsaturating"
    perceptual_network: str | None = "inception"
    perceptual_layers: tuple[str, ...] | None = None
    identity_network: str | None = "dlib"
    pixel_weight: float = 10.0
    adv_weight: float = 1.0
    pc_weight: float = 1.0
    id_weight: float = 1.0
    fm_weight: float = 0.0
    scale_weights: dict[str, dict[int, float]] = field(default_factory=dict)
    network_size: int = 128
    network_batch: int | None = None
    no_adv: bool = False
    no_id: bool = False
    no_pc: bool = False

    def __post_init__(self):
        if self.pixel not in PIXEL_KINDS:
            raise ValueError(
                f"LossConfig.pixel: expected one of {PIXEL_KINDS}, found {self.pixel!r}"
            )
        if self.adversarial not in ADVERSARIAL_KINDS:
            raise ValueError(
                f"LossConfig.adversarial: expected one of {ADVERSARIAL_KINDS}, "
                f"found {self.adversarial!r}"
            )
        if self.network_batch is not None:
            if int(self.network_batch) < 1:
                raise ValueError(
                    f"LossConfig.network_batch: expected None or >= 1, found {self.network_batch}"
                )
            self.network_batch = int(self.network_batch)
        if self.perceptual_layers is not None:
            self.perceptual_layers = tuple(self.perceptual_layers)
        clean = {}
        for loss, per_scale in dict(self.scale_weights).items():
            if loss not in LOSS_NAMES:
                raise ValueError(
                    f"LossConfig.scale_weights: keys must be in {LOSS_NAMES}, found {loss!r}"
                )
            clean[loss] = {int(s): float(w) for s, w in dict(per_scale).items()}
        self.scale_weights = clean

    @classmethod
    def ablation(cls, name: str, **overrides) -> LossConfig:
        """One of the paper's configurations: ``"cascaded"``, ``"l2"``, ``"no_adv"``, ``"no_id"``,
        ``"no_pc"``; keyword arguments override single fields."""
        if name not in ABLATIONS:
            raise ValueError(
                f"LossConfig.ablation: expected one of {tuple(ABLATIONS)}, found {name!r}"
            )
        return cls(**{**ABLATIONS[name], **overrides})

    @classmethod
    def get(cls, value) -> LossConfig:
        """A LossConfig from None (the defaults), an ablation name, a dict or a LossConfig."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls.ablation(value)
        if isinstance(value, dict):
            return cls.from_dict(value)
        raise TypeError(
            f"loss_config: expected None, an ablation name, a dict or a LossConfig, "
            f"found {type(value).__name__}"
        )

    def active(self, loss: str) -> bool:
        """Whether ``loss`` contributes at all (its weight is non-zero and it is not ablated)."""
        if loss not in LOSS_NAMES:
            raise ValueError(f"LossConfig: unknown loss {loss!r}; expected one of {LOSS_NAMES}")
        if getattr(self, f"no_{loss}", False):
            return False
        return getattr(self, f"{loss}_weight") != 0

    def weight(self, loss: str, scale: int) -> float:
        """The total weight of ``loss`` at ``scale``: 0 when the loss is switched off."""
        if not self.active(loss):
            return 0.0
        return float(getattr(self, f"{loss}_weight")) * self.scale_weights.get(loss, {}).get(
            int(scale), 1.0
        )

    def to_dict(self) -> dict:
        """A JSON-compatible dict (scale keys become strings)."""
        d = dataclasses.asdict(self)
        layers = self.perceptual_layers
        d["perceptual_layers"] = None if layers is None else list(layers)
        d["scale_weights"] = {
            loss: {str(s): w for s, w in per_scale.items()}
            for loss, per_scale in self.scale_weights.items()
        }
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LossConfig:
        check_keys(cls, d, "LossConfig.from_dict")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LossConfig:
        return cls.from_dict(json.loads(text))
