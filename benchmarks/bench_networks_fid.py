"""ms/image of the Keras FID Inception-v3 port vs the reference TorchScript file on CPU.

Both get the same real LFW images (128×128 centre crops, resized to 299 inside each pipeline) at
the same batch size, in the same run; one warm-up batch each is not timed. Prints a Markdown table.

    python -m benchmarks.bench_networks_fid --images 32 --batch-size 8
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from keras_facehallu.nets.fid_inception import FID_INCEPTION, fid_features

try:  # run as a script or as a module
    from _machine import LFW, cpu_model
except ImportError:
    from benchmarks._machine import LFW, cpu_model


def _images(folder: Path, count: int) -> np.ndarray:
    photos = sorted(folder.glob("*/*_0001.jpg"))[:count]
    if len(photos) < count:
        raise SystemExit(f"need {count} photos under {folder}, found {len(photos)}")
    return np.stack([np.asarray(Image.open(p).convert("RGB"))[61:189, 61:189] for p in photos])


def _torch_features(images: np.ndarray, batch_size: int):
    import torch

    from keras_facehallu.assets import get_asset

    net = torch.jit.load(str(get_asset(FID_INCEPTION.name)), map_location="cpu").eval()

    def run(batch):
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255
        n, c, h, w = x.shape
        theta = torch.eye(2, 3)
        theta[0, 2] += 1 / w - 1 / 299
        theta[1, 2] += 1 / h - 1 / 299
        grid = torch.nn.functional.affine_grid(theta[None].repeat(n, 1, 1), [n, c, 299, 299],
                                               align_corners=False)
        x = torch.nn.functional.grid_sample(x * 255, grid, mode="bilinear",
                                            padding_mode="border", align_corners=False) / 255
        with torch.no_grad():
            return net((x * 1.9921875 - 1).clamp(-1, 0.9921875)).numpy()

    run(images[:batch_size])
    start = time.perf_counter()
    for s in range(0, len(images), batch_size):
        run(images[s:s + batch_size])
    return time.perf_counter() - start, torch.get_num_threads()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lfw", type=Path, default=LFW)
    args = parser.parse_args(argv)
    images = _images(args.lfw, args.images)

    import keras

    fid_features(images[: args.batch_size], batch_size=args.batch_size)  # build + trace
    start = time.perf_counter()
    fid_features(images, batch_size=args.batch_size)
    keras_s = time.perf_counter() - start
    rows = [(f"Keras port ({keras.backend.backend()})", keras_s)]
    try:
        torch_s, threads = _torch_features(images, args.batch_size)
        rows.append((f"TorchScript reference (torch, {threads} threads)", torch_s))
    except ImportError:
        rows.append(("TorchScript reference: torch not installed", float("nan")))

    print(f"FID Inception-v3, {args.images} LFW 128×128 crops resized to 299, batch "
          f"{args.batch_size}; {cpu_model()}\n")
    print("| network | ms/image | ratio to torch |")
    print("|---|---:|---:|")
    torch_ms = rows[-1][1] / args.images * 1e3
    for name, seconds in rows:
        ms = seconds / args.images * 1e3
        print(f"| {name} | {ms:.1f} | {ms / torch_ms:.2f} |")


if __name__ == "__main__":
    main()
