"""Photos/s of ``facehallu-bulk`` (Apache Beam, local runners) against the plain ``facehallu`` CLI.

    python benchmarks/bench_bulk.py [--src ../shared/data/lfw] [--photos 32] [--preset NAME]

The same N real LFW photos (the first photo of every k-th person), the same preset, in the same
run: ``facehallu`` (one process, batches of 16), then ``facehallu-bulk`` on the DirectRunner in
one process (``in_memory``) and with 1 and 2 worker processes (``multi_processing``). Each command
is a fresh process timed from start to exit, so every wall time includes start-up (TensorFlow
import, MTCNN, dlib and model loading, Beam's workers); each command is also run on one photo,
and "photos/s after start-up" is (N - 1) / (wall N - wall 1). For the Beam rows the job's own
metrics say where the time went, summed over workers: prepare (read, decode, MTCNN, dlib
landmarks, align, mask), inference (the model inside RunInference, first-call tracing included),
write (paste back, PNGs) and model loading. Prints a Markdown table.
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
        (tmp / "one" / photos[0].parent.name).mkdir(parents=True)
        shutil.copy(photos[0], tmp / "one" / photos[0].parent.name / photos[0].name)
        cli = [str(BIN / "facehallu"), "--preset", args.preset, "--batch-size",
               str(args.batch_size), "--quiet"]
        row = {"what": "`facehallu` (plain CLI)", "photos": len(photos)}
        row["wall_1"], _ = timed(cli + [str(tmp / "one"), "-o", str(tmp / "cli-1")], env)
        row["wall"], _ = timed(cli + [str(tmp / "in"), "-o", str(tmp / "cli")], env)
        row["faces"] = len(list((tmp / "cli").glob("*_in_photo.png")))
        rows.append(row)
        for label, workers, mode in (("in_memory", 1, "in_memory"),
                                     ("1 worker process", 1, "multi_processing"),
                                     ("2 worker processes", 2, "multi_processing")):
            bulk = [str(BIN / "facehallu-bulk"), "--preset", args.preset, "--batch-size",
                    str(args.batch_size), "--json", "--runner", "DirectRunner",
                    "--direct_num_workers", str(workers), "--direct_running_mode", mode]
            row = {"what": f"`facehallu-bulk`, DirectRunner {label}"}
            row["wall_1"], _ = timed(bulk + ["--input", str(tmp / "one"), "--output",
                                             str(tmp / f"bulk-{mode}-{workers}-1")], env)
            row["wall"], stdout = timed(bulk + ["--input", str(tmp / "in"), "--output",
                                                str(tmp / f"bulk-{mode}-{workers}")], env)
            report = json.loads(stdout)
            row.update(report, photos=report["photos_read"], faces=report["faces_written"])
            rows.append(row)
    load = os.getloadavg()
    print(f"\nbulk on {len(photos)} LFW photos, preset {args.preset}, batch {args.batch_size}; "
          f"{os.cpu_count()}-CPU machine, {cpu_model()}; {time.strftime('%Y-%m-%d %H:%M')}; "
          f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}\n")
    print(f"| run | photos | faces | wall s, 1 photo (start-up) | wall s, {len(photos)} photos | "
          "photos/s | photos/s after start-up | prepare s | inference s | write s "
          "| model load s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        after = (r["photos"] - 1) / max(r["wall"] - r["wall_1"], 1e-9)
        parts = [f"{r[k]:.1f}" if k in r else "–"
                 for k in ("prepare_s", "inference_s", "write_s", "load_model_s")]
        print(f"| {r['what']} | {r['photos']} | {r['faces']} | {r['wall_1']:.1f} | "
              f"{r['wall']:.1f} | {r['photos'] / r['wall']:.2f} | {after:.2f} | "
              + " | ".join(parts) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
