"""The bulk job's per-element steps, as Beam DoFns around the package's own functions.

- :class:`PrepareFaces`: read a photo, then decode, detect, align and mask it with
  :func:`keras_facehallu.face.pipeline.prepare_face` (the call ``facehallu`` makes). MTCNN and
  dlib's landmark model are loaded once per worker process, in ``setup``.
- :class:`WriteFaceOutputs`: paste the model's result back into the photo
  (:func:`keras_facehallu.outputs.paste_into_photo`), optionally put a new background behind it
  (:func:`keras_facehallu.background.replace.replace_background`), write the PNGs marked as
  synthetic (:func:`keras_facehallu.outputs.synthetic_metadata`) and emit the manifest row.

Both send every failure to the :data:`FAILED` output as a dead-letter row
(:func:`keras_facehallu.bulk.manifest.failure_row`); nothing is dropped silently.

Example:
    >>> import apache_beam as beam
    >>> prepared = paths | beam.ParDo(PrepareFaces()).with_outputs(FAILED, main="faces")
    ...     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from typing import NamedTuple

import apache_beam as beam

from keras_facehallu.bulk.files import (
    DEFAULT_MAX_BYTES,
    join,
    make_folder,
    read_bytes,
    write_png_to,
)
from keras_facehallu.bulk.manifest import failure_row, manifest_row
from keras_facehallu.bulk.names import face_stem, pick_index

FAILED = "failed"
IMAGES_FOLDER = "images"


class FaceJob(NamedTuple):
    """One aligned face on its way to the model.

    Args:
        source: the photo's path or URL.
        face: the :class:`~keras_facehallu.face.pipeline.FaceResult` (``ok``; ``source`` and
            ``message`` name the photo).
        photo: the photo's encoded bytes, decoded again to paste the result back.
    """

    source: str
    face: object
    photo: bytes


class PrepareFaces(beam.DoFn):
    """``(path, size_in_bytes)`` → a :class:`FaceJob` per aligned face; failures to ``FAILED``.

    Args:
        all_faces: every face of a photo, not only the largest (as ``facehallu --all-faces``).
        forehead_margin: keep this much forehead in the face mask (as ``facehallu``).
        min_confidence: MTCNN detections below this are ignored.
        max_bytes: photos larger than this are refused before they are read.
    """

    def __init__(self, all_faces: bool = False, forehead_margin: float = 0.0,
                 min_confidence: float = 0.9, max_bytes: int = DEFAULT_MAX_BYTES):
        self.all_faces = bool(all_faces)
        self.forehead_margin = float(forehead_margin)
        self.min_confidence = float(min_confidence)
        self.max_bytes = int(max_bytes)
        self.photos = beam.metrics.Metrics.counter("facehallu", "photos_read")
        self.faces = beam.metrics.Metrics.counter("facehallu", "faces_aligned")
        self.failures = beam.metrics.Metrics.counter("facehallu", "failures")
        self.millis = beam.metrics.Metrics.distribution("facehallu", "prepare_ms")

    def setup(self):
        from keras_facehallu.face.detect import get_detector
        from keras_facehallu.face.landmarks import get_landmark_predictor

        self.detector = get_detector(self.min_confidence)
        self.predictor = get_landmark_predictor()
        _ = self.detector.mtcnn, self.predictor.predictor  # load both now, once per process

    def _fail(self, source, reason, message, stage, face_index=None):
        self.failures.inc()
        return beam.pvalue.TaggedOutput(
            FAILED, failure_row(source, reason, message, stage, face_index)
        )

    def process(self, element):
        from keras_facehallu.face.pipeline import prepare_face

        source, size = element
        if size is not None and size > self.max_bytes:
            yield self._fail(source, "too_large",
                             f"{source}: file is {size:,} bytes, above the limit of "
                             f"{self.max_bytes:,} (--max-bytes); not read", "read")
            return
        try:
            data = read_bytes(source)
        except Exception as exc:  # file systems raise many types
            yield self._fail(source, "unreadable",
                             f"{source}: cannot be read: {type(exc).__name__}: {exc}", "read")
            return
        self.photos.inc()
        start = time.perf_counter()
        try:
            found = prepare_face(data, all_faces=self.all_faces,
                                 forehead_margin=self.forehead_margin,
                                 min_confidence=self.min_confidence, detector=self.detector,
                                 predictor=self.predictor)
        except Exception as exc:  # prepare_face reports bad photos itself; this is a bug's net
            yield self._fail(source, "prepare_failed",
                             f"{source}: the face pipeline failed: {type(exc).__name__}: {exc}",
                             "prepare")
            return
        self.millis.update(int(1000 * (time.perf_counter() - start)))
        for index, face in enumerate(found if self.all_faces else [found]):
            # prepare_face names bytes "<bytes>"; name the photo instead.
            face = dataclasses.replace(face, source=source,
                                       message=face.message.replace("<bytes>", source, 1))
            if not face.ok:
                index = index if face.num_faces else None  # None: the photo itself failed
                yield self._fail(source, face.reason, face.message, "prepare", index)
                continue
            self.faces.inc()
            yield FaceJob(source, face, data)


class WriteFaceOutputs(beam.DoFn):
    """A ``PredictionResult`` of a :class:`FaceJob` → PNGs written, a manifest row emitted.

    Files (under ``output/images/``, named by :func:`~keras_facehallu.bulk.names.face_stem`):
    ``STEM.png`` (the 128×128 result), ``STEM_in_photo.png`` (the result in the photo) and, with
    backgrounds, ``STEM_background.png``.

    Args:
        output: the output folder or URL.
        backgrounds: background image paths; one is picked per face by a seeded hash of the
            photo's path and face index.
        seed: the seed of that pick.
    """

    def __init__(self, output: str, backgrounds=(), seed: int = 0):
        self.output = str(output)
        self.backgrounds = tuple(str(b) for b in backgrounds)
        self.seed = int(seed)
        self.written = beam.metrics.Metrics.counter("facehallu", "faces_written")
        self.failures = beam.metrics.Metrics.counter("facehallu", "failures")
        self.millis = beam.metrics.Metrics.distribution("facehallu", "write_ms")

    def setup(self):
        self.images = join(self.output, IMAGES_FOLDER)
        make_folder(self.images)
        self._background_cache = {}
        if self.backgrounds:
            from keras_facehallu.background.segmentation import get_segmenter

            get_segmenter()  # load the person segmenter now, once per process

    def _background(self, path):
        from keras_facehallu.face.io import load_image

        if path not in self._background_cache:
            if len(self._background_cache) >= 16:
                self._background_cache.pop(next(iter(self._background_cache)))
            self._background_cache[path] = load_image(read_bytes(path), max_pixels=None)
        return self._background_cache[path]

    def process(self, prediction):
        from keras_facehallu.face.io import load_image
        from keras_facehallu.outputs import paste_into_photo, synthetic_metadata

        job, made = prediction.example, prediction.inference
        face = job.face
        stem = face_stem(job.source, face.face_index)
        start = time.perf_counter()
        try:
            meta = synthetic_metadata(made.model, made.preset)
            files = {"result": write_png_to(join(self.images, f"{stem}.png"), made.image, meta)}
            mapped = paste_into_photo(load_image(job.photo), made.image, face.transform)
            files["in_photo"] = write_png_to(join(self.images, f"{stem}_in_photo.png"), mapped,
                                             meta)
            background = None
            if self.backgrounds:
                from keras_facehallu.background.replace import replace_background

                key = f"{job.source}#{face.face_index}"
                background = self.backgrounds[pick_index(key, len(self.backgrounds), self.seed)]
                composite, _ = replace_background(made.image, self._background(background),
                                                  face.mask)
                files["background"] = write_png_to(
                    join(self.images, f"{stem}_background.png"), composite, meta
                )
        except Exception as exc:  # one face's failure must not fail the bundle
            self.failures.inc()
            yield beam.pvalue.TaggedOutput(FAILED, failure_row(
                job.source, "write_failed",
                f"{job.source}: face {face.face_index}: writing its results failed: "
                f"{type(exc).__name__}: {exc}", "write", face.face_index,
            ))
            return
        self.written.inc()
        self.millis.update(int(1000 * (time.perf_counter() - start)))
        yield manifest_row(job.source, face, made.model, made.preset, files, background)


def inference_failures(failed):
    """Dead-letter rows for a batch that ``RunInference`` could not run: ``(batch, exception)``."""
    batch, exc = failed
    for job in batch:
        yield failure_row(
            job.source, "inference_failed",
            f"{job.source}: face {job.face.face_index}: the model failed on its batch: "
            f"{type(exc).__name__}: {exc}", "inference", job.face.face_index,
        )
