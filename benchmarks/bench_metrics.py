"""Seconds per 1,000 images for each metric and baseline, on this machine; prints Markdown.

Each row is timed on ``--images`` real LFW photos (128×128 centre crops; an elliptical mask of
about a quarter of the crop stands in for the face mask, which only matters for the inpainting
rows) and scaled linearly to 1,000 images. Networks get one untimed warm-up batch first (their
build and weight loading are not counted). FID/KID rows time the distance computation from
features for N images (a fixed cost per evaluation that does not scale linearly: shown as
measured). PieAPP's network forward pass is timed with random weights, because its weights are
absent here: a speed, never a PieAPP value.

    python -m benchmarks.bench_metrics --images 64
"""

from __future__ import annotations

import argparse
import datetime
import time

import numpy as np
from PIL import Image

try:  # run as a script or as a module
    from _machine import LFW, cpu_model
except ImportError:
    from benchmarks._machine import LFW, cpu_model


def _data(count: int):
    photos = sorted(LFW.glob("*/*_0001.jpg"))[:count]
    if len(photos) < count:
        raise SystemExit(f"need {count} photos under {LFW}, found {len(photos)}")
    images = np.stack([np.asarray(Image.open(p).convert("RGB"))[61:189, 61:189] for p in photos])
    yy, xx = np.mgrid[:128, :128]
    ellipse = ((xx - 64) / 30.0) ** 2 + ((yy - 70) / 38.0) ** 2 <= 1
    masks = np.broadcast_to(ellipse[None, ..., None], images.shape[:3] + (1,)).astype(np.uint8)
    return images, masks


def _time(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--skip-networks", action="store_true",
                        help="time only the numpy/OpenCV rows")
    parser.add_argument("--with-sqrtm", action="store_true",
                        help="also time the reference scipy sqrtm route (minutes at D=2048)")
    args = parser.parse_args(argv)
    n = args.images
    images, masks = _data(n)
    rng = np.random.default_rng(0)
    noisy = np.clip(images.astype(int) + rng.integers(-20, 20, images.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    masked = images * masks

    from keras_facehallu.baselines import MeanContext, inpaint_context
    from keras_facehallu.metrics import fid, kid, match_score, ssim

    rows = []  # (row, seconds for n, per-1000 or None, note)

    def scaled(name, seconds, note=""):
        rows.append((name, seconds, seconds * 1000 / n, note))

    scaled("SSIM (whole image)", _time(lambda: ssim.ssim(images, noisy), 3))
    scaled("SSIM (hallucinated region)", _time(lambda: ssim.ssim(images, noisy, mask=masks), 3))
    scaled("OpenCV Telea inpainting", _time(lambda: inpaint_context(masked, masks, "telea"), 2))
    scaled("OpenCV Navier-Stokes inpainting",
           _time(lambda: inpaint_context(masked, masks, "ns"), 2))
    mean = MeanContext.from_images(images)
    scaled("mean context (paste)", _time(lambda: mean(masked, masks), 3))

    feats_a = rng.normal(size=(n, 2048))
    feats_b = rng.normal(size=(n, 2048)) + 0.1
    rows.append((f"FID distance from features (N={n}, Gram route)",
                 _time(lambda: fid.fid_from_features(feats_a, feats_b), 3), None,
                 "per evaluation, not per image"))
    if args.with_sqrtm:
        rows.append((f"FID distance from features (N={n}, scipy sqrtm reference)",
                     _time(lambda: fid.fid_from_features(feats_a, feats_b, "sqrtm")), None,
                     "per evaluation, not per image"))
    rows.append((f"KID from features (N={n}, 100 subsets)",
                 _time(lambda: kid.kernel_inception_distance(feats_a, feats_b)), None,
                 "per evaluation, not per image"))
    if not args.skip_networks:
        from keras_facehallu.nets.fid_inception import fid_features

        fid_features(images[:8])
        scaled("FID/KID features (Inception-v3 at 299, batch 32)",
               _time(lambda: fid_features(images)))
        match_score.face_descriptors(images[:8])
        scaled("match score descriptors (dlib ResNet port, batch 32)",
               _time(lambda: match_score.face_descriptors(images)))
        from keras_facehallu.metrics.pieapp import PieAPPNetwork, pieapp_scores

        net = PieAPPNetwork()
        pieapp_scores(net, noisy[:2], images[:2])
        scaled("PieAPP network (9 patches/image; random weights: speed only)",
               _time(lambda: pieapp_scores(net, noisy, images)))

    print(f"Machine: 2-core CPU VM, no GPU ({cpu_model()}); {datetime.date.today()}; "
          f"{n} images timed, scaled linearly to 1,000. CPU shared with other jobs: noisy.")
    print()
    print("| metric / baseline | seconds for the timed images | seconds per 1,000 images | note |")
    print("|---|---|---|---|")
    for name, seconds, per_k, note in rows:
        per = f"{per_k:.2f}" if per_k is not None else "—"
        print(f"| {name} | {seconds:.3f} | {per} | {note} |")


if __name__ == "__main__":
    main()
