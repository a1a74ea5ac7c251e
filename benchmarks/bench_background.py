"""Background replacement speed: ms per image at 128, 512 and 1024 px, split by stage.

Stages: person segmentation (selfie-segmentation TFLite model, resize in and out included),
gradient saliency, mask cleanup + feathering, Laplacian-pyramid blending (auto levels, background
cover-resize included), and the whole ``replace_background`` call. Baseline in the same run: a hard
paste (``np.where(mask > 0.5, image, background)`` after the same cover-resize). Median of
``--repeats`` runs after one warm-up, single image, on real LFW photos upscaled to each size.

Run from the repository root:
    python benchmarks/bench_background.py [--sizes 128 512 1024] [--repeats 10]
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from keras_facehallu.background.blend import cover_resize, hard_paste, laplacian_blend
from keras_facehallu.background.replace import (
    auto_levels,
    clean_mask,
    feather_mask,
    replace_background,
)
from keras_facehallu.background.saliency import saliency_details
from keras_facehallu.background.segmentation import get_segmenter

try:  # run as a script or as a module
    from _machine import LFW, cpu_model
except ImportError:
    from benchmarks._machine import LFW, cpu_model


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512, 1024])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--lfw", type=Path, default=LFW)
    args = parser.parse_args(argv)

    photo = np.array(Image.open(args.lfw / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"))
    backdrop = np.array(Image.open(args.lfw / "Todd_Haynes" / "Todd_Haynes_0001.jpg"))
    segmenter = get_segmenter()
    warnings.simplefilter("ignore")

    print(f"Machine: {platform.machine()}, {cpu_model()}; median of {args.repeats} runs, 1 image.")
    print()
    print("| size | segmentation | saliency | cleanup+feather | blending | replace_background "
          "(total) | hard paste | blending / hard paste |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        image = cv2.resize(photo, (size, size), interpolation=cv2.INTER_CUBIC)
        person = segmenter(image) > 0.5
        union = person | saliency_details(image)[0]
        soft = feather_mask(clean_mask(union))
        levels = auto_levels(size, size)
        seg_ms = _median_ms(lambda image=image: segmenter(image), args.repeats)
        sal_ms = _median_ms(lambda image=image: saliency_details(image), args.repeats)
        clean_ms = _median_ms(lambda union=union: feather_mask(clean_mask(union)), args.repeats)
        blend_ms = _median_ms(
            lambda image=image, soft=soft, levels=levels, size=size: laplacian_blend(
                image, cover_resize(backdrop, size, size), soft, levels
            ),
            args.repeats,
        )
        total_ms = _median_ms(
            lambda image=image: replace_background(image, backdrop), args.repeats
        )
        paste_ms = _median_ms(
            lambda image=image, soft=soft, size=size: hard_paste(
                image, cover_resize(backdrop, size, size), soft
            ),
            args.repeats,
        )
        print(f"| {size}×{size} | {seg_ms:.2f} ms | {sal_ms:.2f} ms | {clean_ms:.2f} ms | "
              f"{blend_ms:.2f} ms ({levels} levels) | {total_ms:.2f} ms | {paste_ms:.2f} ms | "
              f"{blend_ms / paste_ms:.1f}× |")


if __name__ == "__main__":
    main()
