"""``facehallu-bulk``: the ``facehallu`` job for a whole dataset, on Apache Beam.

Every argument this command does not know is one of Beam's pipeline options and goes to the runner
unchanged (``--runner``, ``--direct_num_workers``, ``--project``, ``--num_workers``, …); without
``--runner`` the job runs on this machine (DirectRunner). Exit code: 0 when every photo gave its
faces, 1 when any failed (see ``OUTPUT/failures-*.jsonl``), 2 for usage errors.

Example:
    facehallu-bulk --input 'photos/**.jpg' --output out/ --all-faces \\
        --runner DirectRunner --direct_num_workers 2 --direct_running_mode multi_processing
"""

from __future__ import annotations

import argparse
import json
import sys

from keras_facehallu.bulk.files import DEFAULT_MAX_BYTES, is_remote, local_path


def build_parser() -> argparse.ArgumentParser:
    from keras_facehallu.cli import DEFAULT_PRESET

    parser = argparse.ArgumentParser(
        prog="facehallu-bulk",
        description="Hallucinate the context of every face in a dataset, on Apache Beam. "
        "Arguments not listed here are Beam pipeline options (--runner, --num_workers, ...).",
    )
    parser.add_argument("--input", nargs="+", required=True, metavar="GLOB",
                        help="photos: file globs on any file system Beam knows "
                        "('photos/**.jpg', 'gs://bucket/lfw/*/*.jpg'); a local folder means "
                        "every file under it")
    parser.add_argument("--output", required=True, help="output folder or URL")
    parser.add_argument("--preset", default=DEFAULT_PRESET,
                        help="preset name, folder, or folder URL (gs://...) the workers can read")
    parser.add_argument("--all-faces", action="store_true", help="every face, not the largest")
    parser.add_argument("--background-dir", metavar="FOLDER_OR_GLOB",
                        help="background images; one is picked per face by a seeded hash")
    parser.add_argument("--seed", type=int, default=0, help="seed of the background pick")
    parser.add_argument("--batch-size", type=int, default=16, help="most faces per model call")
    parser.add_argument("--no-paste-face", action="store_true",
                        help="keep the network's own face pixels instead of the original ones")
    parser.add_argument("--forehead-margin", type=float, default=0.0,
                        help="keep this much forehead in the face mask (fraction of face height)")
    parser.add_argument("--min-confidence", type=float, default=0.9, help="MTCNN threshold")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help="refuse photos larger than this many bytes without reading them")
    parser.add_argument("--shards", type=int, default=1,
                        help="files of the manifest and of the dead letters (fixed, so that a "
                        "re-run replaces them; raise it for millions of photos)")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    return parser


def _as_glob(pattern: str) -> str:
    """A local folder stands for every file under it; anything else is a glob as it is."""
    import os

    if not is_remote(pattern) and os.path.isdir(local_path(pattern)):
        return os.path.join(local_path(pattern), "**")
    return pattern


def _matches(pattern: str) -> list[str]:
    from apache_beam.io.filesystems import FileSystems

    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def _backgrounds(pattern: str) -> list[str]:
    from keras_facehallu.cli import IMAGE_SUFFIXES

    found = [p for p in _matches(_as_glob(pattern))
             if any(p.lower().endswith(s) for s in IMAGE_SUFFIXES)]
    if not found:
        raise SystemExit(f"facehallu-bulk: --background-dir {pattern}: no image files "
                         f"({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    return found


def config_from_args(args):
    """The :class:`~keras_facehallu.bulk.pipeline.BulkConfig` of parsed ``args`` (checked)."""
    from keras_facehallu.bulk.pipeline import BulkConfig

    inputs = [_as_glob(p) for p in args.input]
    empty = [p for p in inputs if not _matches(p)]
    if empty:
        raise SystemExit(f"facehallu-bulk: --input: no file matches {', '.join(empty)}")
    backgrounds = _backgrounds(args.background_dir) if args.background_dir else ()
    try:
        return BulkConfig(
            inputs=tuple(inputs), output=args.output, preset=args.preset,
            all_faces=args.all_faces, backgrounds=tuple(backgrounds), seed=args.seed,
            batch_size=args.batch_size, forehead_margin=args.forehead_margin,
            paste_face=not args.no_paste_face, min_confidence=args.min_confidence,
            max_bytes=args.max_bytes, shards=args.shards,
        )
    except ValueError as exc:
        raise SystemExit(f"facehallu-bulk: {exc}") from None


def main(argv=None) -> int:
    """Runs ``facehallu-bulk``; returns the exit code."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from keras_facehallu.bulk.pipeline import FAILURES, MANIFEST, run_pipeline
    from keras_facehallu.presets import PresetError, resolve_preset

    args, beam_args = build_parser().parse_known_args(argv)
    try:
        config = config_from_args(args)
        if not is_remote(config.preset):
            resolve_preset(config.preset)  # a wrong name fails here, not on every worker
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        raise
    except PresetError as exc:
        print(f"facehallu-bulk: {exc}", file=sys.stderr)
        return 2
    from keras_facehallu.startup import start_backend

    start_backend()  # TensorFlow's native start-up lines kept off stderr (and off local workers')
    counts = run_pipeline(config, PipelineOptions(beam_args))
    if args.json:
        print(json.dumps({"output": config.output, **counts}, indent=2))
    else:
        print(
            f"{counts['photos_read']} photos read, {counts['faces_written']} faces written, "
            f"{counts['failures']} failures; manifest {config.output}/{MANIFEST}-*.parquet, "
            f"failures {config.output}/{FAILURES}-*.jsonl"
        )
    return 1 if counts["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
