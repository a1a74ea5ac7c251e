"""Build training and validation data from a folder of photos (one sub-folder per person).

    facehallu-prepare --src ../shared/data/lfw --out work_data/lfw_prepared \
        [--val-fraction 0.1] [--test-fraction 0.05] [--shard-size 500] [--workers 2] [--limit N]

Every photo is detected, aligned about the eyes and masked (:func:`keras_facehallu.prepare_face`)
and written to sharded TFRecords in the format of :mod:`keras_facehallu.data.records`.

- One face per photo: with ``--select central`` (default) the largest face whose box contains the
  photo's centre -- LFW photos are centred on the named person, and a bystander can be larger.
- Split by person into train / validation / test: with ``h`` the first 8 hex digits of the
  sha256 of the name as a fraction of 2**32, a person goes to test when ``h < --test-fraction``,
  to validation when ``h < --val-fraction`` (and not test), else to train -- stable across runs
  and machines. The held-out range is the same as before the test split existed, so the training
  split (and what earlier models saw) did not change: test is cut out of the old validation.
- Shards: each split's photos are put in a seeded order and cut into shards of ``--shard-size``
  photos, so every shard has a fixed list of inputs.
- Workers: shards are processed by ``--workers`` spawned processes (TensorFlow limited to one
  thread each); ``--workers 0`` runs in this process.
- Resumable and atomic: a shard is written under a temporary name and renamed when complete; only
  then is its record ``progress/<shard>.json`` written. A re-run skips shards that have both,
  deletes stale temporary files, and refuses an ``--out`` prepared with other settings.
- Reports: ``skipped.csv`` (file, reason, message) and a summary (images in, aligned, skipped by
  reason) printed and stored in ``manifest.json``, which is written last.
"""

from __future__ import annotations

import argparse
import collections
import csv
import hashlib
import json
import os
import queue
import sys
import time
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
CONFIG_FILE = "prepare_config.json"
PROGRESS_DIR = "progress"
SKIP_REPORT = "skipped.csv"


def person_split(person: str, val_fraction: float, test_fraction: float = 0.0) -> str:
    """``"test"``, ``"validation"`` or ``"train"`` from a stable hash of the person's name.

    Example:
        >>> person_split("Aaron_Eckhart", 0.1, 0.05)
        'train'
    """
    digest = hashlib.sha256(person.encode("utf-8")).hexdigest()
    h = int(digest[:8], 16) / 2**32
    if h < test_fraction:
        return "test"
    return "validation" if h < val_fraction else "train"


def list_photos(src: Path, limit: int | None = None) -> list[tuple[str, str]]:
    """Sorted ``(relative_path, person)`` of every image in ``src/PERSON/``; first ``limit``."""
    if not src.is_dir():
        raise SystemExit(f"--src {src}: not a folder")
    photos = []
    for person_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        for path in sorted(person_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                photos.append((f"{person_dir.name}/{path.name}", person_dir.name))
    if not photos:
        raise SystemExit(f"--src {src}: no images found in PERSON/ sub-folders ({IMAGE_SUFFIXES})")
    return photos[:limit] if limit else photos


def plan_shards(
    photos, val_fraction: float, shard_size: int, seed: int, test_fraction: float = 0.0
) -> list[dict]:
    """Shard specs ``{"split", "name", "files": [(rel, person), ...]}`` in a seeded order."""
    import numpy as np

    from keras_facehallu.data.records import SPLITS, shard_name

    specs = []
    for split in SPLITS:
        items = [p for p in photos if person_split(p[1], val_fraction, test_fraction) == split]
        if not items:
            continue
        order = np.random.default_rng([seed, SPLITS.index(split)]).permutation(len(items))
        items = [items[i] for i in order]
        count = (len(items) + shard_size - 1) // shard_size
        for index in range(count):
            chunk = items[index * shard_size:(index + 1) * shard_size]
            specs.append({"split": split, "name": shard_name(split, index, count), "files": chunk})
    return specs


# Per-worker state, set once by the pool initializer in each worker process.
_WORKER_STATE: dict = {}


def _init_worker(options: dict, progress_queue, limit_threads: bool) -> None:
    if limit_threads:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ["OMP_NUM_THREADS"] = "1"
        import cv2
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        cv2.setNumThreads(1)
    _WORKER_STATE.update(options=options, queue=progress_queue, parent=os.getppid())


def process_shard(spec: dict) -> dict:
    """Prepares every photo of one shard, writes the shard atomically, returns its record."""
    from keras_facehallu.data.records import write_examples
    from keras_facehallu.face.pipeline import prepare_face

    options = _WORKER_STATE["options"]
    progress = _WORKER_STATE.get("queue")
    src, out = Path(options["src"]), Path(options["out"])
    people = options["people_index"]
    examples, skipped, ticks = [], [], 0
    for relative, person in spec["files"]:
        if progress is not None and os.getppid() != _WORKER_STATE["parent"]:
            raise SystemExit("prepare: the main process is gone; worker stops")  # orphaned
        try:
            result = prepare_face(
                src / relative,
                size=options["size"],
                forehead_margin=options["forehead_margin"],
                border=options["border"],
                min_confidence=options["min_confidence"],
                max_pixels=options["max_pixels"],
                select=options["select"],
            )
        except Exception as exc:  # one broken photo must not stop a 12k-photo run
            skipped.append({"file": relative, "reason": "internal_error",
                            "message": f"{relative}: {type(exc).__name__}: {exc}"})
        else:
            if result.ok:
                examples.append({
                    "image": result.image, "mask": result.mask, "landmarks": result.landmarks,
                    "transform": result.transform, "person": person,
                    "person_index": people[person], "source": relative,
                    "confidence": result.confidence, "num_faces": result.num_faces,
                })
            else:
                message = result.message.replace(str(src / relative), relative)
                skipped.append({"file": relative, "reason": result.reason, "message": message})
        ticks += 1
        if progress is not None and ticks == 10:
            progress.put(ticks)
            ticks = 0
    if progress is not None and ticks:
        progress.put(ticks)
    written = write_examples(out / spec["name"], examples)
    record = {
        "shard": spec["name"], "split": spec["split"], "images": len(spec["files"]),
        "examples": written, "skipped": skipped,
        "multiple_faces": sum(1 for e in examples if e["num_faces"] > 1),
    }
    from keras_facehallu.data.records import write_json_atomic

    write_json_atomic(out / PROGRESS_DIR / f"{spec['name']}.json", record)
    return record


def _load_record(out: Path, name: str) -> dict | None:
    path = out / PROGRESS_DIR / f"{name}.json"
    if not (path.is_file() and (out / name).is_file()):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def _remove_stale_temporaries(out: Path) -> int:
    stale = [p for p in list(out.glob(".*.tmp")) + list((out / PROGRESS_DIR).glob(".*.tmp"))]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _check_config(out: Path, config: dict) -> None:
    from keras_facehallu.data.records import write_json_atomic

    path = out / CONFIG_FILE
    if path.is_file():
        with open(path) as f:
            previous = json.load(f)
        if previous != config:
            changed = sorted(k for k in set(previous) | set(config)
                             if previous.get(k) != config.get(k))
            raise SystemExit(
                f"--out {out} was prepared with other settings (differs in {changed}); "
                "use another --out or delete the folder"
            )
    else:
        write_json_atomic(path, config)


def _run_shards(todo, options, workers: int, total: int):
    """Processes shard specs; yields records as they finish, updating a tqdm bar."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit="img", desc="prepare", dynamic_ncols=True, mininterval=1.0)
    try:
        if workers <= 0:
            _init_worker(options, None, limit_threads=False)
            for spec in todo:
                record = process_shard(spec)
                bar.update(record["images"])
                yield record
            return
        import multiprocessing as mp

        context = mp.get_context("spawn")
        progress = context.Queue()
        with context.Pool(workers, initializer=_init_worker,
                          initargs=(options, progress, True)) as pool:
            pending = [pool.apply_async(process_shard, (spec,)) for spec in todo]
            while pending:
                try:
                    bar.update(progress.get(timeout=0.5))
                except queue.Empty:
                    pass
                for job in [j for j in pending if j.ready()]:
                    pending.remove(job)
                    yield job.get()
            while True:
                try:
                    bar.update(progress.get_nowait())
                except queue.Empty:
                    break
    finally:
        bar.close()


def summarize(records: list[dict]) -> dict:
    """Images in, aligned, skipped by reason, and the aligned rate."""
    images = sum(r["images"] for r in records)
    aligned = sum(r["examples"] for r in records)
    reasons = collections.Counter(s["reason"] for r in records for s in r["skipped"])
    return {
        "images_in": images,
        "aligned": aligned,
        "skipped": images - aligned,
        "skipped_by_reason": dict(sorted(reasons.items())),
        "aligned_rate": round(aligned / images, 6) if images else 0.0,
        "aligned_with_several_faces_in_photo": sum(r.get("multiple_faces", 0) for r in records),
    }


def prepare(args) -> dict:
    """Runs the whole build (see the module docstring); returns the manifest."""
    from keras_facehallu.data.records import SPLITS, write_manifest
    from keras_facehallu.face.io import DEFAULT_MAX_PIXELS

    src, out = Path(args.src).resolve(), Path(args.out)
    if not 0.0 <= args.val_fraction < 1.0:
        raise SystemExit(f"--val-fraction: expected a value in [0, 1), found {args.val_fraction}")
    if not 0.0 <= args.test_fraction <= args.val_fraction:
        raise SystemExit(
            f"--test-fraction: expected a value in [0, --val-fraction={args.val_fraction}], "
            f"found {args.test_fraction}"
        )
    if args.shard_size < 1:
        raise SystemExit(f"--shard-size: expected a positive integer, found {args.shard_size}")
    photos = list_photos(src, args.limit)
    people = sorted({person for _, person in photos})
    specs = plan_shards(photos, args.val_fraction, args.shard_size, args.seed, args.test_fraction)
    listing = hashlib.sha256("\n".join(rel for rel, _ in photos).encode()).hexdigest()
    config = {
        "src": str(src), "files": len(photos), "files_sha256": listing, "size": args.size,
        "val_fraction": args.val_fraction, "test_fraction": args.test_fraction,
        "shard_size": args.shard_size, "seed": args.seed,
        "forehead_margin": args.forehead_margin, "border": args.border,
        "min_confidence": args.min_confidence, "max_pixels": DEFAULT_MAX_PIXELS,
        "select": args.select,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / PROGRESS_DIR).mkdir(exist_ok=True)
    _check_config(out, config)
    stale = _remove_stale_temporaries(out)
    records = {s["name"]: _load_record(out, s["name"]) for s in specs}
    todo = [s for s in specs if records[s["name"]] is None]
    print(
        f"prepare: {len(photos)} photos of {len(people)} people in {len(specs)} shards; "
        f"{len(specs) - len(todo)} shards already done, {len(todo)} to do"
        + (f"; removed {stale} stale temporary files" if stale else ""),
        file=sys.stderr,
    )
    options = {
        "src": str(src), "out": str(out), "size": args.size,
        "forehead_margin": args.forehead_margin, "border": args.border,
        "min_confidence": args.min_confidence, "max_pixels": DEFAULT_MAX_PIXELS,
        "select": args.select, "people_index": {p: i for i, p in enumerate(people)},
    }
    start = time.perf_counter()
    total = sum(len(s["files"]) for s in todo)
    failures = []
    first_shard = None  # seconds until the first shard finished (worker start-up included)
    workers = min(args.workers, len(todo)) if args.workers > 0 else 0
    try:
        for record in _run_shards(todo, options, workers, total):
            records[record["shard"]] = record
            if first_shard is None:
                first_shard = (time.perf_counter() - start, record["images"])
    except Exception as exc:  # a worker crashed: finished shards stay, a re-run resumes
        failures.append(f"{type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - start
    missing = [name for name, r in records.items() if r is None]
    if failures or missing:
        raise SystemExit(
            f"prepare: {len(missing)} shards unfinished ({failures}); re-run to resume"
        )
    done = [records[s["name"]] for s in specs]
    with open(out / SKIP_REPORT, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "reason", "message"])
        writer.writeheader()
        for record in done:
            writer.writerows(record["skipped"])
    summary = summarize(done)
    splits = {}
    for split in SPLITS:
        mine = [r for r in done if r["split"] == split]
        splits[split] = {
            "shards": [r["shard"] for r in mine],
            "examples": sum(r["examples"] for r in mine),
            "images_in": sum(r["images"] for r in mine),
            "people": len({p for s in specs if s["split"] == split for _, p in s["files"]}),
        }
    manifest = {
        "created_by": "facehallu-prepare",
        "config": config,
        "image_size": args.size,
        "people": people,
        "shards": {split: info["shards"] for split, info in splits.items()},
        "splits": {s: {k: v for k, v in i.items() if k != "shards"} for s, i in splits.items()},
        "summary": summary,
        "skip_report": SKIP_REPORT,
        "split_rule": "h = sha256(person)[:8] / 2**32; h < test_fraction -> test, "
                      "h < val_fraction -> validation, else train",
        "last_run": {"shards_processed": len(todo), "images_processed": total,
                     "seconds": round(elapsed, 1), "workers": args.workers,
                     "first_shard": first_shard and {"seconds": round(first_shard[0], 2),
                                                     "images": first_shard[1]}},
    }
    write_manifest(out, manifest)
    reasons = ", ".join(f"{k} {v}" for k, v in summary["skipped_by_reason"].items()) or "none"
    print(
        f"prepare: {summary['images_in']} images in, {summary['aligned']} aligned "
        f"({100 * summary['aligned_rate']:.2f}%), {summary['skipped']} skipped ({reasons}); "
        + "; ".join(f"{k} {v['examples']}" for k, v in splits.items())
        + "; "
        f"this run {total} images in {elapsed:.1f} s",
        file=sys.stderr,
    )
    return manifest


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facehallu-prepare", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--src", required=True, help="folder with one sub-folder per person")
    parser.add_argument("--out", required=True, help="output folder (created; resumable)")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="share of people held out of training (validation + test)")
    parser.add_argument("--test-fraction", type=float, default=0.05,
                        help="share of people in the test split (a part of the held-out share)")
    parser.add_argument("--shard-size", type=int, default=500, help="photos per shard")
    parser.add_argument("--workers", type=int, default=2, help="processes; 0 = in this process")
    parser.add_argument("--limit", type=int, default=None, help="only the first N photos (sorted)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the order within shards")
    parser.add_argument("--size", type=int, default=128, help="crop size")
    parser.add_argument("--forehead-margin", type=float, default=0.0)
    parser.add_argument("--border", default="reflect", choices=("reflect", "replicate", "constant"))
    parser.add_argument("--min-confidence", type=float, default=0.9)
    parser.add_argument("--select", default="central", choices=("central", "largest"),
                        help="which face of a photo: the largest one containing the centre "
                             "(default; LFW photos are centred on their subject) or the largest")
    return parser


def _terminate(signum, frame):
    raise SystemExit(f"prepare: stopped by signal {signum}; re-run to resume")


def main(argv: list[str] | None = None) -> int:
    import signal

    signal.signal(signal.SIGTERM, _terminate)  # unwinds the pool, which terminates its workers
    prepare(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
