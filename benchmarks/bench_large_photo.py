"""Large photos: time and peak memory of ``prepare_face`` and of the whole ``facehallu`` command.

Each photo is a real LFW face (shipped fixture) upscaled so the face fills about a third of the
photo's height, on a seeded textured background (noise at five scales, so MTCNN's first stage
sees as many candidates as in a real scene; ``--background flat`` for a plain ramp), written as
PNG. A child whose RSS grows above ``--max-rss-mib`` (8 GiB) is stopped and reported as such: the
former pipeline reached 20 GB on the textured 40 MP photo and was killed by the kernel.

Every measurement runs in a fresh child process (peak RSS is per process):

- ``prepare``: ``prepare_face(path)`` after the detector and landmark model were loaded and warmed
  up on a small photo; the peak is the kernel's high-water mark (``VmHWM``, reset through
  ``/proc/self/clear_refs`` just before the call), reported above the RSS before the call.
- ``facehallu``: the whole command on that one photo (``keras_facehallu.cli.main``), peak RSS of
  the process (``resource.getrusage``) and wall time, start-up and model load included.

``before`` runs the package as it was before the large-photo change (``--before``, default the
commit ``7acd843~1``, exported with ``git archive`` into a temporary folder and put first on
``PYTHONPATH``); ``after`` runs the working tree. The ``prepare`` peak is checked against
:func:`keras_facehallu.face.pipeline.memory_budget`.

Run from the repository root (Linux):
    python benchmarks/bench_large_photo.py [--sizes 6300x6300 6000x4000] [--modes before after]
        [--kinds prepare facehallu] [--before REV] [--background textured|flat]
        [--max-rss-mib 8192]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:  # run as a script or as a module
    from _machine import cpu_model
except ImportError:
    from benchmarks._machine import cpu_model

REPO = Path(__file__).resolve().parents[1]
FACE = REPO / "tests" / "fixtures" / "faces" / "Aaron_Eckhart" / "Aaron_Eckhart_0001.jpg"
MiB = 1 << 20


def make_photo(path: Path, width: int, height: int, background: str = "textured") -> None:
    """A ``width``×``height`` PNG: the fixture face upscaled to a third of the height, centred on
    a seeded ``"textured"`` background or a ``"flat"`` grey ramp."""
    import cv2
    import numpy as np
    from PIL import Image

    face = np.asarray(Image.open(FACE).convert("RGB"))
    side = max(64, height // 3)
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    if background == "flat":
        ramp = np.linspace(60, 190, width).astype(np.uint8)
        photo = np.empty((height, width, 3), np.uint8)
        photo[:] = ramp[None, :, None]
    else:  # detail at every scale, like a real scene; seeded
        rng = np.random.default_rng(0)
        texture = np.zeros((height, width, 3), np.float32)
        for cells in (4, 16, 64, 256, 1024):
            noise = rng.normal(size=(cells * height // max(height, width) + 1, cells + 1, 3))
            texture += cv2.resize(noise.astype(np.float32), (width, height),
                                  interpolation=cv2.INTER_CUBIC)
        photo = np.clip(128 + 18 * texture, 0, 255).astype(np.uint8)
        del texture
    y, x = (height - side) // 2, (width - side) // 2
    photo[y : y + side, x : x + side] = face
    Image.fromarray(photo).save(path, compress_level=1)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def child(kind: str, photo: Path, out: Path) -> dict:
    """One measurement in this (fresh) process; returns the numbers as a dict."""
    import keras_facehallu

    package = str(Path(keras_facehallu.__file__).parent)
    if kind == "prepare":
        from keras_facehallu.face.pipeline import prepare_face

        prepare_face(str(FACE))  # loads MTCNN and dlib's model, warms them up
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = _status_kib("VmRSS")
        start = time.perf_counter()
        result = prepare_face(str(photo))
        seconds = time.perf_counter() - start
        peak = _status_kib("VmHWM")
        return {
            "seconds": seconds,
            "rss_before_mib": before / 1024,
            "peak_mib": peak / 1024,
            "added_mib": (peak - before) / 1024,
            "ok": result.ok,
            "box": [round(v, 1) for v in result.box] if result.box else None,
            "package": package,
        }
    from keras_facehallu import cli

    start = time.perf_counter()
    code = cli.main([str(photo), "-o", str(out), "--overwrite", "--quiet", "--no-progress"])
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_mib": peak_kib / 1024, "exit": code, "package": package}


def export_revision(revision: str, folder: Path) -> Path:
    """The package as of ``revision`` (``git archive``), unpacked under ``folder``."""
    archive = subprocess.run(["git", "archive", revision, "keras_facehallu"], cwd=REPO,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def _run_child(kind: str, photo: Path, out: Path, pythonpath: Path | None,
               max_rss_mib: int) -> dict:
    command = [sys.executable, __file__, "--child", kind, str(photo), str(out)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        process = subprocess.Popen(command, stdout=out_file, stderr=err_file, text=True, env=env,
                                   cwd=REPO)
        peak = 0
        while process.poll() is None:  # the machine is shared: stop a child above the cap
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
                rss = int(next(x for x in status.splitlines() if x.startswith("VmRSS")).split()[1])
            except (OSError, StopIteration, ValueError):
                rss = 0
            peak = max(peak, rss)
            if rss > max_rss_mib * 1024:
                process.kill()
                process.wait()
                return {"error": f"stopped above {max_rss_mib} MiB RSS after "
                                 f"{time.perf_counter() - start:.0f} s"}
            time.sleep(0.1)
        out_file.seek(0)
        err_file.seek(0)
        stdout, stderr = out_file.read(), err_file.read()
    if process.returncode != 0:
        lines = [x for x in stderr.strip().splitlines() if "Error" in x or "error" in x]
        return {"error": f"exit {process.returncode}: {(lines or [''])[-1][:200]}"}
    return json.loads(stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["6300x6300", "6000x4000"],
                        help="photo sizes WIDTHxHEIGHT")
    parser.add_argument("--modes", nargs="+", default=["before", "after"],
                        choices=["before", "after"])
    parser.add_argument("--kinds", nargs="+", default=["prepare", "facehallu"],
                        choices=["prepare", "facehallu"])
    parser.add_argument("--before", default="7acd843~1",
                        help="git revision measured as 'before' (default: the commit before the "
                             "large-photo change)")
    parser.add_argument("--background", default="textured", choices=["textured", "flat"])
    parser.add_argument("--max-rss-mib", type=int, default=8192,
                        help="stop a measurement whose process grows above this (shared machine)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, photo, out = args.child
        print(json.dumps(child(kind, Path(photo), Path(out))))
        return
    from keras_facehallu.face.pipeline import memory_budget

    print(f"# {cpu_model()}, {os.cpu_count()} cores, "
          f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print("| photo | measure | mode | seconds | peak RSS MiB | added MiB (budget) | result |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"after": None}
        if "before" in args.modes:
            paths["before"] = export_revision(args.before, Path(tmp))
            commit = subprocess.check_output(["git", "rev-parse", "--short", args.before],
                                             cwd=REPO, text=True).strip()
            print(f"# before: {args.before} ({commit}); after: the working tree")
        for size in args.sizes:
            width, height = (int(v) for v in size.lower().split("x"))
            photo = Path(tmp) / f"photo_{width}x{height}.png"
            make_photo(photo, width, height, args.background)
            label = f"{width}×{height} ({width * height / 1e6:.1f} MP, {args.background})"
            for kind in args.kinds:
                for mode in args.modes:
                    r = _run_child(kind, photo, Path(tmp) / f"out_{kind}_{mode}", paths[mode],
                                   args.max_rss_mib)
                    expected = str(paths[mode] or REPO)
                    if "error" not in r and not r["package"].startswith(expected):
                        r = {"error": f"imported {r['package']}, expected {expected}"}
                    if "error" in r:
                        print(f"| {label} | {kind} | {mode} | – | – | – | error: {r['error']} |")
                    elif kind == "prepare":
                        budget = memory_budget(width, height) / MiB
                        within = "within" if r["added_mib"] <= budget else "OVER"
                        print(f"| {label} | {kind} | {mode} | {r['seconds']:.1f} | "
                              f"{r['peak_mib']:.0f} | {r['added_mib']:.0f} "
                              f"({budget:.0f}, {within}) | "
                              f"ok={r['ok']} box={r['box']} |")
                    else:
                        print(f"| {label} | {kind} | {mode} | {r['seconds']:.1f} | "
                              f"{r['peak_mib']:.0f} | – | exit {r['exit']} |")
                    sys.stdout.flush()


if __name__ == "__main__":
    main()
