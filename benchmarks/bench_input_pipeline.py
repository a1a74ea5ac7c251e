"""Images/s of the tf.data training pipeline (`make_dataset`) against a plain read-only baseline.

    python benchmarks/bench_input_pipeline.py [--folder work_data/lfw_prepared] [--batches 100]

The baseline reads the same TFRecord shards as raw bytes (no parsing, no PNG decoding), so the
gap is the cost of parsing, decoding, flipping and converting. Without a prepared folder, one of
2,000 random 128×128 examples is written to a temporary folder first. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def synthetic_folder(path: Path, count: int = 2000, shards: int = 4) -> Path:
    import numpy as np

    from keras_facehallu.data import records

    rng = np.random.default_rng(0)
    names = []
    for shard in range(shards):
        def examples(shard=shard):
            for i in range(shard, count, shards):
                mask = np.zeros((128, 128, 1), np.uint8)
                mask[40:100, 35:95] = 1
                yield {"image": rng.integers(0, 256, (128, 128, 3), dtype=np.uint8),
                       "mask": mask, "landmarks": np.zeros((68, 2)), "transform": np.eye(2, 3),
                       "person": f"p{i % 50}", "person_index": i % 50, "source": f"{i}.jpg"}
        name = records.shard_name("train", shard, shards)
        records.write_examples(path / name, examples())
        names.append(name)
    records.write_manifest(path, {"shards": {"train": names, "validation": []}})
    return path


def measure(dataset, batches: int, batch_size: int, warmup: int = 10, repeats: int = 2) -> float:
    """Best of ``repeats`` timed runs of ``batches`` batches, after ``warmup`` batches."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        images = 0
        for _ in range(batches):
            batch = next(iterator)
            images += batch_size if not isinstance(batch, tuple) else int(batch[1].shape[0])
        rates.append(images / (time.perf_counter() - start))
    return max(rates)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", default=str(REPO / "work_data" / "lfw_prepared"))
    parser.add_argument("--split", default="train")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=100)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    from keras_facehallu.data.pipeline import make_dataset
    from keras_facehallu.data.records import shard_paths

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder)
        try:
            paths = shard_paths(folder, args.split)
            source = str(folder)
        except (FileNotFoundError, ValueError):
            folder = synthetic_folder(Path(tmp))
            paths = shard_paths(folder, "train")
            args.split, source = "train", "2,000 random examples"
        baseline = (tf.data.TFRecordDataset([str(p) for p in paths]).repeat()
                    .batch(args.batch_size).prefetch(tf.data.AUTOTUNE))
        rows = [("read-only baseline (raw records, no decode)",
                 measure(baseline, args.batches, args.batch_size))]
        for flip, shuffle in ((False, False), (True, True)):
            ds = make_dataset(folder, args.split, args.batch_size, flip=flip, shuffle=shuffle,
                              repeat=True, seed=0)
            rows.append((f"make_dataset(flip={flip}, shuffle={shuffle})",
                         measure(ds, args.batches, args.batch_size)))
    print(f"\ninput pipeline on {source} ({args.split}), batch {args.batch_size}, "
          f"{args.batches} batches; {os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d')}\n")
    print("| pipeline | images/s |")
    print("|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
