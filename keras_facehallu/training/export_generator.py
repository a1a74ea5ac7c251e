"""Write the generator of a run's latest checkpoint as a preset folder.

``python -m keras_facehallu.training.export_generator RUN_DIR OUT_DIR [--description TEXT]
[--paste-face]``: the way to ship a model from a run that was stopped between snapshots.

Example:
    python -m keras_facehallu.training.export_generator runs/00000-cpu_small \\
        work_data/lfw_cascade_small
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def export_generator(run_dir: Path, out: Path, description: str = "", paste_face: bool = False):
    """Builds the run's generator, loads its latest checkpoint and saves it to ``out``."""
    from keras_facehallu.presets import save_to_preset
    from keras_facehallu.training.checkpoint import load_generator_weights
    from keras_facehallu.training.configs import TrainConfig

    spec = json.loads((run_dir / "config.json").read_text())
    cfg = TrainConfig.from_dict(spec["train"])
    if cfg.model == "cascade":
        from keras_facehallu.models.cascade import CascadedHallucinator as cls
    else:
        from keras_facehallu.models.progan import ProGANHallucinator as cls
    generator = cls(width=cfg.width, seed=cfg.seed, paste_face=paste_face)
    state = load_generator_weights(generator, run_dir / "checkpoints")
    meta = {
        "description": description or f"{cfg.name}, {run_dir.name}, epoch {state['epoch']}",
        "epoch": state["epoch"],
        "steps": state["epoch"] * (cfg.steps_per_epoch or 0) or None,
        "logs": state["logs"],
        "training": {"config": cfg.to_dict(), "data": spec["data"], "run": str(run_dir),
                     "backend": spec.get("backend")},
    }
    return save_to_preset(generator, out, metadata=meta)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keras_facehallu.training.export_generator",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--description", default="")
    parser.add_argument("--paste-face", action="store_true",
                        help="the preset's model pastes the input face back (as facehallu does)")
    args = parser.parse_args(argv)
    print(export_generator(args.run_dir, args.out, args.description, args.paste_face))
    return 0


if __name__ == "__main__":
    sys.exit(main())
