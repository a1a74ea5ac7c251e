"""The paper's Figure 2: the same validation faces rendered by each snapshot of a run.

``python -m keras_facehallu.training.figure RUN_DIR --data PREPARED_DIR -o figure.png`` writes one
row per face: original | masked input | the output of each snapshot (``snapshots/epoch-NNNN``,
oldest first).

Example:
    python -m keras_facehallu.training.figure runs/00000-cpu_small --count 6 -o docs/epochs.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def snapshot_folders(run_dir: Path) -> list[Path]:
    """The run's snapshot preset folders, by epoch."""
    return sorted(p for p in (run_dir / "snapshots").glob("epoch-*") if p.is_dir())


def render(run_dir: Path, data: Path, count: int = 6, split: str = "validation",
           paste_face: bool = True) -> np.ndarray:
    """The figure as a uint8 array (see the module docstring)."""
    from keras_facehallu.data.pipeline import make_dataset
    from keras_facehallu.models import load_preset
    from keras_facehallu.sheets import image_grid

    snapshots = snapshot_folders(run_dir)
    if not snapshots:
        raise SystemExit(f"{run_dir}: no snapshots/epoch-NNNN folders; has the run saved any?")
    dataset = make_dataset(data, split, batch_size=count, shuffle=False)
    x, y = next(iter(dataset))
    masked, mask, target = (np.asarray(v) for v in (x["masked_image"], x["mask"], y))
    columns = [target, masked]
    labels = ["original", "input"]
    for folder in snapshots:
        model = load_preset(folder, paste_face=paste_face)
        columns.append(model.hallucinate(masked, mask))
        labels.append(f"epoch {int(folder.name.split('-')[1])}")
    rows = [[col[i] for col in columns] for i in range(len(target))]
    return image_grid(rows, labels=labels)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keras_facehallu.training.figure",
                                     description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data", type=Path, help="prepared folder (default: the run's own)")
    parser.add_argument("--count", type=int, default=6, help="validation faces (rows)")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="PNG to write (default RUN_DIR/epochs.png)")
    parser.add_argument("--raw-output", action="store_true",
                        help="show the generator's own face pixels instead of the original ones")
    args = parser.parse_args(argv)
    data = args.data
    if data is None:
        data = Path(json.loads((args.run_dir / "config.json").read_text())["data"])
    sheet = render(args.run_dir, data, args.count, paste_face=not args.raw_output)
    from keras_facehallu.outputs import synthetic_metadata, write_png

    out = args.output or args.run_dir / "epochs.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_png(out, sheet, synthetic_metadata(
        "generator snapshots", str(args.run_dir),
        description="Faces × training snapshots: the snapshot columns are hallucinated by a "
                    "neural network (keras-facehallu).",
    ))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
