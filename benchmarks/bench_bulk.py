"""Photos/s of ``facehallu-bulk`` (Apache Beam, local runners) against the plain ``facehallu`` CLI.

    python benchmarks/bench_bulk.py [--src ../shared/data/lfw] [--photos 32] [--preset NAME]

The same N real LFW photos (the first photo of every k-th person), the same preset, in the same
run: ``facehallu`` (one process, batches of 16), then ``facehallu-bulk`` on the DirectRunner in
one process (``in_memory``) and with 1 and 2 worker processes (``multi_processing``). Each command
is a fresh process timed from start to exit, so every row includes start-up (TensorFlow import,
MTCNN, dlib and model loading); the first row measures that start-up alone (``facehallu`` on one
photo). For the Beam rows the job's own metrics say where the time went, summed over workers:
prepare (read, decode, MTCNN, dlib landmarks, align, mask), inference (the model inside
RunInference), write (paste back, PNGs) and model loading. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:  # run as a script or as a module
    from _machine import LFW, cpu_model
except ImportError:
    from benchmarks._machine import LFW, cpu_model

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def pick_photos(src: Path, count: int) -> list[Path]:
    """The first photo of every k-th person (sorted by name), ``count`` of them."""
    people = sorted(p for p in src.iterdir() if p.is_dir())
    photos = []
    for person in people[:: max(1, len(people) // count)]:
        files = sorted(person.glob("*.jpg"))
        if files:
            photos.append(files[0])
        if len(photos) == count:
            break
    return photos


def timed(command: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: some photos failed, which is a result too
        raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, done.stdout


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", default=str(LFW), help="LFW folder (one folder per person)")
    parser.add_argument("--photos", type=int, default=32)
    parser.add_argument("--preset", default="lfw_cascade_small")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    photos = pick_photos(Path(args.src), args.photos)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
        tmp = Path(tmp)
        for photo in photos:
            (tmp / "in" / photo.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, tmp / "in" / photo.parent.name / photo.name)
        cli = [str(BIN / "facehallu"), "--preset", args.preset, "--batch-size",
               str(args.batch_size), "--quiet"]
        wall, _ = timed(cli + [str(photos[0]), "-o", str(tmp / "one")], env)
        rows.append({"what": "`facehallu`, 1 photo (start-up alone)", "photos": 1, "wall": wall})
        wall, _ = timed(cli + [str(tmp / "in"), "-o", str(tmp / "cli")], env)
        faces = len(list((tmp / "cli").glob("*_in_photo.png")))
        rows.append({"what": "`facehallu` (plain CLI)", "photos": len(photos), "faces": faces,
                     "wall": wall})
        bulk = [str(BIN / "facehallu-bulk"), "--input", str(tmp / "in"), "--preset", args.preset,
                "--batch-size", str(args.batch_size), "--json", "--runner", "DirectRunner"]
        for label, workers, mode in (("in_memory", 1, "in_memory"),
                                     ("1 worker process", 1, "multi_processing"),
                                     ("2 worker processes", 2, "multi_processing")):
            out = tmp / f"bulk-{mode}-{workers}"
            wall, stdout = timed(bulk + ["--output", str(out), "--direct_num_workers",
                                         str(workers), "--direct_running_mode", mode], env)
            report = json.loads(stdout)
            rows.append({"what": f"`facehallu-bulk`, DirectRunner {label}",
                         "photos": report["photos_read"], "faces": report["faces_written"],
                         "wall": wall, **report})
    load = os.getloadavg()
    print(f"\nbulk on {len(photos)} LFW photos, preset {args.preset}, batch {args.batch_size}; "
          f"{os.cpu_count()}-CPU machine, {cpu_model()}; {time.strftime('%Y-%m-%d %H:%M')}; "
          f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}\n")
    print("| run | photos | faces | wall s (with start-up) | photos/s | prepare s | inference s "
          "| write s | model load s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        parts = [f"{r.get(k, 0):.1f}" if k in r else "–"
                 for k in ("prepare_s", "inference_s", "write_s", "load_model_s")]
        print(f"| {r['what']} | {r['photos']} | {r.get('faces', '–')} | {r['wall']:.1f} | "
              f"{r['photos'] / r['wall']:.2f} | " + " | ".join(parts) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
