"""Images/s of `facehallu-prepare` on N real LFW photos, with 1 and with 2 workers.

    python benchmarks/bench_prepare.py [--src ../shared/data/lfw] [--images 40] [--workers 1 2]

Prints a Markdown table. Wall time includes starting the worker processes (TensorFlow + MTCNN
import, about 5-10 s each on this VM), so small N understates the steady-state rate; the
"steady" column (approximate) excludes everything before the first finished shard.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

try:  # run as a script or as a module
    from _machine import cpu_model
except ImportError:
    from benchmarks._machine import cpu_model

REPO = Path(__file__).resolve().parents[1]


def run(src: str, images: int, workers: int, shard_size: int) -> dict:
    from keras_facehallu.training import prepare

    with tempfile.TemporaryDirectory() as out:
        args = prepare.build_parser().parse_args(
            ["--src", src, "--out", out, "--limit", str(images), "--workers", str(workers),
             "--shard-size", str(shard_size)]
        )
        start = time.perf_counter()
        manifest = prepare.prepare(args)
        wall = time.perf_counter() - start
    summary = manifest["summary"]
    first = manifest["last_run"]["first_shard"]
    steady = (summary["images_in"] - first["images"]) / max(wall - first["seconds"], 1e-9)
    return {"workers": workers, "images": summary["images_in"], "aligned": summary["aligned"],
            "wall": wall, "rate": summary["images_in"] / wall, "steady": steady}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", default=str(REPO.parent / "shared" / "data" / "lfw"))
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shard-size", type=int, default=10)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    rows = [run(args.src, args.images, w, args.shard_size) for w in args.workers]
    print(f"\nprepare on {args.images} LFW photos; {os.cpu_count()}-CPU machine, {cpu_model()}; "
          f"{time.strftime('%Y-%m-%d')}\n")
    print("| workers | images | aligned | wall s (with start-up) | images/s | steady images/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r['images']} | {r['aligned']} | {r['wall']:.1f} | "
              f"{r['rate']:.2f} | {r['steady']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
