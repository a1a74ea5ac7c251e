"""The bulk Beam pipeline: match photos → prepare faces → RunInference → write results.

Stages (names as they appear in the runner's UI):

1. ``Match``: every file matching the ``--input`` globs (any file system Beam knows), each path
   once (``Distinct``, which also spreads the paths over the workers).
2. ``Prepare``: read, decode, detect, align, mask
   (:class:`~keras_facehallu.bulk.dofns.PrepareFaces`).
3. ``Hallucinate``: ``RunInference`` with the
   :class:`~keras_facehallu.bulk.model_handler.HallucinatorModelHandler`; it batches the faces
   with ``BatchElements`` (up to ``batch_size``) and loads the model once per worker process.
4. ``Write``: paste back, backgrounds, PNGs (:class:`~keras_facehallu.bulk.dofns.WriteFaceOutputs`).
5. ``Manifest`` (Parquet) and ``Failures`` (the dead letters, JSON lines), written with a fixed
   number of shards so that a re-run replaces the same files.

Output folder::

    OUTPUT/images/<stem>.png, <stem>_in_photo.png[, <stem>_background.png]
    OUTPUT/manifest-00000-of-00001.parquet
    OUTPUT/failures-00000-of-00001.jsonl

Example:
    >>> import apache_beam as beam
    >>> config = BulkConfig(inputs=["photos/**.jpg"], output="out/")
    >>> with beam.Pipeline() as pipeline:  # doctest: +SKIP
    ...     build_pipeline(pipeline, config)
"""

from __future__ import annotations

import dataclasses
import json

import apache_beam as beam
from apache_beam.io.fileio import EmptyMatchTreatment, MatchAll
from apache_beam.ml.inference.base import RunInference

from keras_facehallu.bulk.dofns import (
    FAILED,
    PrepareFaces,
    WriteFaceOutputs,
    inference_failures,
)
from keras_facehallu.bulk.files import DEFAULT_MAX_BYTES, join
from keras_facehallu.bulk.manifest import MANIFEST_SCHEMA
from keras_facehallu.bulk.model_handler import HallucinatorModelHandler

MANIFEST = "manifest"
FAILURES = "failures"


@dataclasses.dataclass(frozen=True)
class BulkConfig:
    """What the bulk job does (the ``facehallu-bulk`` arguments other than Beam's own).

    Args:
        inputs: file globs (``photos/**.jpg``, ``gs://bucket/lfw/*/*.jpg``).
        output: output folder or URL.
        preset: preset name, local folder, or remote preset folder URL.
        all_faces: every face of each photo, not only the largest.
        backgrounds: background image paths (one picked per face); empty: no background step.
        seed: seed of the background pick.
        batch_size: most faces per model call.
        forehead_margin: keep this much forehead in the face mask.
        paste_face: put the original face pixels back into the result.
        min_confidence: MTCNN threshold.
        max_bytes: photos larger than this are refused unread.
        shards: number of manifest and dead-letter files (fixed, so re-runs replace them).
    """

    inputs: tuple
    output: str
    preset: str = "lfw_cascade_small"
    all_faces: bool = False
    backgrounds: tuple = ()
    seed: int = 0
    batch_size: int = 16
    forehead_margin: float = 0.0
    paste_face: bool = True
    min_confidence: float = 0.9
    max_bytes: int = DEFAULT_MAX_BYTES
    shards: int = 1

    def __post_init__(self):
        if isinstance(self.inputs, str):
            object.__setattr__(self, "inputs", (self.inputs,))
        object.__setattr__(self, "inputs", tuple(str(i) for i in self.inputs))
        object.__setattr__(self, "backgrounds", tuple(str(b) for b in self.backgrounds))
        if not self.inputs:
            raise ValueError("inputs: expected at least one file glob, found none")
        for name in ("batch_size", "shards", "max_bytes"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected a positive number, found {getattr(self, name)}")


def build_pipeline(pipeline: beam.Pipeline, config: BulkConfig) -> dict:
    """Adds the bulk job to ``pipeline``; returns its main PCollections by name.

    Returns:
        ``{"faces": …, "rows": …, "failures": …}``: prepared faces, manifest rows, dead letters.
    """
    paths = (
        pipeline
        | "Globs" >> beam.Create(list(config.inputs))
        | "Match" >> MatchAll(EmptyMatchTreatment.ALLOW)
        | "PathAndSize" >> beam.Map(lambda meta: (meta.path, meta.size_in_bytes))
        | "EachOnce" >> beam.Distinct()
    )
    prepared = paths | "Prepare" >> beam.ParDo(
        PrepareFaces(config.all_faces, config.forehead_margin, config.min_confidence,
                     config.max_bytes)
    ).with_outputs(FAILED, main="faces")
    handler = HallucinatorModelHandler(config.preset, paste_face=config.paste_face,
                                       max_batch_size=config.batch_size)
    predictions, dead = (
        prepared.faces | "Hallucinate" >> RunInference(handler).with_exception_handling()
    )
    written = predictions | "Write" >> beam.ParDo(
        WriteFaceOutputs(config.output, config.backgrounds, config.seed)
    ).with_outputs(FAILED, main="rows")
    failed = (
        prepared[FAILED],
        dead.failed_inferences | "InferenceFailures" >> beam.FlatMap(inference_failures),
        written[FAILED],
    ) | "AllFailures" >> beam.Flatten()
    _ = written.rows | "Manifest" >> beam.io.WriteToParquet(
        join(config.output, MANIFEST), MANIFEST_SCHEMA, file_name_suffix=".parquet",
        num_shards=config.shards,
    )
    _ = (
        failed
        | "FailureJson" >> beam.Map(lambda row: json.dumps(row, sort_keys=True))
        | "Failures" >> beam.io.WriteToText(
            join(config.output, FAILURES), file_name_suffix=".jsonl", num_shards=config.shards
        )
    )
    return {"faces": prepared.faces, "rows": written.rows, "failures": failed}


# Distributions summed into seconds by run_pipeline: ours, and RunInference's own (it reports in
# the handler's namespace, "facehallu").
TIMINGS = {
    "prepare_s": ("prepare_ms", 1e-3),
    "inference_s": ("inference_batch_latency_micro_secs", 1e-6),
    "write_s": ("write_ms", 1e-3),
    "load_model_s": ("load_model_latency_milli_secs", 1e-3),
}
COUNTERS = ("photos_read", "faces_aligned", "faces_written", "failures")


def run_pipeline(config: BulkConfig, options=None) -> dict:
    """Runs the bulk job to the end with Beam ``options``; returns its counters and timings.

    Args:
        config: the :class:`BulkConfig`.
        options: ``PipelineOptions`` (default: the DirectRunner).

    Returns:
        ``{"photos_read", "faces_aligned", "faces_written", "failures"}`` counts and the seconds
        spent in each stage, summed over workers (``prepare_s``, ``inference_s``, ``write_s``,
        ``load_model_s``), as the runner reports them (0 where a metric never moved).
    """
    from apache_beam.metrics.metric import MetricsFilter

    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, config)
    result = pipeline.run()
    result.wait_until_finish()
    report = {**dict.fromkeys(COUNTERS, 0), **dict.fromkeys(TIMINGS, 0.0)}
    query = result.metrics().query(MetricsFilter().with_namespace("facehallu"))
    for counter in query["counters"]:
        name = counter.key.metric.name
        if name in COUNTERS:
            value = counter.committed if counter.committed is not None else counter.attempted
            report[name] += int(value or 0)
    for distribution in query["distributions"]:
        name = distribution.key.metric.name
        for key, (metric, scale) in TIMINGS.items():
            if name == metric:
                value = distribution.committed or distribution.attempted
                report[key] += round(float(value.sum if value else 0) * scale, 3)
    return report
