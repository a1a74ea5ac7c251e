"""ms/image of the Keras port of dlib's face-recognition ResNet vs dlib itself, on CPU.

All rows get the same real LFW faces: dlib chips (frontal detector, 5-point shape,
``get_face_chip(img, shape, 150, 0.25)``) for the 150×150 rows, and centre crops resized to 128 for
the identity-network row (speed does not depend on alignment). One warm-up batch per row is not
timed. Prints a Markdown table.

    python -m benchmarks.bench_networks_dlib --images 32 --batch-size 16
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image

try:  # run as a script or as a module
    from _machine import LFW, cpu_model
except ImportError:
    from benchmarks._machine import LFW, cpu_model


def _faces(folder: Path, count: int):
    import dlib

    from keras_facehallu.assets import get_asset
    from keras_facehallu.nets.dlib_resnet import dlib_face_chips

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(get_asset("shape_predictor_5")))
    chips, crops = [], []
    for path in sorted(folder.glob("*/*_0001.jpg")):
        image = np.asarray(Image.open(path).convert("RGB"))
        boxes = detector(image, 1)
        if not boxes:
            continue
        chips.append(dlib_face_chips(image, [predictor(image, boxes[0])])[0])
        crop = Image.fromarray(image[40:210, 40:210]).resize((128, 128), Image.BILINEAR)
        crops.append(np.asarray(crop))
        if len(chips) == count:
            return np.stack(chips), np.stack(crops)
    raise SystemExit(f"found only {len(chips)} faces under {folder}, need {count}")


def _ms_per_image(run, data: np.ndarray, batch_size: int) -> float:
    run(data[:batch_size])  # warm-up (graph tracing, allocation)
    start = time.perf_counter()
    for i in range(0, len(data), batch_size):
        run(data[i : i + batch_size])
    return 1000 * (time.perf_counter() - start) / len(data)


def bench_dlib(images: int = 32, batch_size: int = 16, folder: Path = LFW) -> str:
    """Times dlib, the Keras ResNet port and the identity network; returns a Markdown table."""
    import dlib
    import keras

    from keras_facehallu.assets import get_asset
    from keras_facehallu.nets.dlib_resnet import build_dlib_resnet, build_identity_network

    chips, crops = _faces(folder, images)
    reference = dlib.face_recognition_model_v1(str(get_asset("dlib_face_recognition_resnet")))
    resnet = build_dlib_resnet()
    identity = build_identity_network()
    resnet_fn = lambda b: keras.ops.convert_to_numpy(resnet.predict_on_batch(b.astype("float32")))
    identity_fn = lambda b: keras.ops.convert_to_numpy(
        identity.predict_on_batch(b.astype("float32") / 127.5 - 1)
    )
    rows = [
        ("dlib `compute_face_descriptor` (batch of chips)", "150×150 chip",
         _ms_per_image(lambda b: reference.compute_face_descriptor(list(b)), chips, batch_size)),
        (f"Keras port, `build_dlib_resnet` ({keras.backend.backend()})", "150×150 chip",
         _ms_per_image(resnet_fn, chips, batch_size)),
        (f"Keras `build_identity_network` ({keras.backend.backend()})", "128×128 canonical",
         _ms_per_image(identity_fn, crops, batch_size)),
    ]
    base = rows[0][2]
    lines = [
        f"dlib face-recognition ResNet, {images} real LFW faces, batch {batch_size}; "
        f"{cpu_model()}, {platform.machine()}, {time.strftime('%Y-%m-%d')}",
        "",
        "| network | input | ms/image | vs dlib |",
        "|---|---|---:|---:|",
    ]
    lines += [f"| {name} | {inp} | {ms:.1f} | {ms / base:.2f}× |" for name, inp, ms in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lfw", type=Path, default=LFW)
    args = parser.parse_args(argv)
    print(bench_dlib(args.images, args.batch_size, args.lfw))


if __name__ == "__main__":
    main()
