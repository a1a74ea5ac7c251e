"""Packed training data: one TensorFlow-free ``.npz`` file per split, read with numpy and Pillow.

A prepared folder of TFRecords (:mod:`keras_facehallu.data.records`) needs TensorFlow to be read;
machines that have JAX and no TensorFlow train from a *packed* folder instead, exported once:

    python -m keras_facehallu.data.packed export work_data/lfw_prepared work_data/packed

A packed folder holds ``{split}.npz`` (``numpy.savez_compressed``, no pickles) and
``manifest.json`` (the prepared manifest's ``people`` and ``config``, each split's count, size and
sha256). Each ``.npz`` holds:

=================  ==================  ============================================================
key                dtype / shape       content
=================  ==================  ============================================================
``meta``           uint8 [bytes]       UTF-8 JSON: format, version, split, size, codec, quality,
                                       count, ``sources`` (photo paths), ``people`` (names)
``image_bytes``    uint8 [bytes]       ``codec`` ``jpeg``/``webp``: every encoded image, one after
                                       the other; ``raw``: uint8 [N, S, S, 3]
``image_offsets``  int64 [N + 1]       where image ``i`` lies in ``image_bytes`` (encoded codecs)
``mask_bits``      uint8 [N, S*S/8]    ``numpy.packbits`` of each {0, 1} face mask, row-major
``person_index``   int32 [N]           index into the manifest's ``people``
=================  ==================  ============================================================

JPEG at quality 85 without chroma subsampling keeps LFW's 10,879 training faces in about 58 MB
(40 dB PSNR against the prepared PNGs); masks are lossless. Landmarks and transforms are not
packed (training does not read them).

:func:`make_packed_dataset` yields the same batches as
:func:`keras_facehallu.data.pipeline.make_dataset`: ``({"masked_image", "mask"}, image)``,
float32 in [-1, 1], masked pixels -1, seeded flips of image and mask together. Shuffling is a
full permutation per pass over the split, drawn from ``(seed, pass)``, so a stream can be started
at any batch (``start``): a resumed run continues exactly where the finished epochs left off.

Example:
    >>> export_prepared("work_data/lfw_prepared", "work_data/packed")  # doctest: +SKIP
    >>> ds = make_packed_dataset("work_data/packed", "train", 16, flip=True, repeat=True)
    ... # doctest: +SKIP
    >>> gan.fit(ds, steps_per_epoch=ds.batches_per_pass, epochs=2)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from keras_facehallu.assets import sha256_of
from keras_facehallu.atomic import atomic_path, write_json
from keras_facehallu.preprocessing import from_uint8

FORMAT = "keras_facehallu.packed"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SPLITS = ("train", "validation", "test")
CODECS = ("jpeg", "webp", "raw")
_PIL_FORMAT = {"jpeg": "JPEG", "webp": "WEBP"}


class PackedDataError(ValueError):
    """A packed file or folder is missing, damaged, or not of this format."""


def split_path(folder: str | os.PathLike, split: str) -> Path:
    """``folder/{split}.npz``."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, found {split!r}")
    return Path(folder) / f"{split}.npz"


def is_packed(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a packed folder (its manifest says so)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("format") == FORMAT
    except (OSError, ValueError):
        return False


def _encode(image: np.ndarray, codec: str, quality: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    options = {"quality": int(quality)}
    if codec == "jpeg":
        options["subsampling"] = 0  # 4:4:4: chroma at full resolution (hair, skin edges)
    else:
        options["method"] = 6  # WebP's slowest, smallest encoding (decoding is as fast)
    Image.fromarray(image).save(buffer, _PIL_FORMAT[codec], **options)
    return buffer.getvalue()


def _decode(data: bytes, size: int, where: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image.convert("RGB"))
    except Exception as error:  # Pillow raises several types for damaged data
        raise PackedDataError(f"{where}: image cannot be decoded ({error})") from None
    if array.shape != (size, size, 3):
        raise PackedDataError(f"{where}: image is {array.shape}, expected {(size, size, 3)}")
    return array


def write_packed(
    path: str | os.PathLike,
    examples,
    split: str,
    codec: str = "jpeg",
    quality: int = 85,
    people: list[str] | None = None,
) -> dict:
    """Writes examples into one packed ``.npz`` file atomically; returns its ``meta``.

    Args:
        path: the file to write (``{split}.npz`` in a packed folder).
        examples: iterable of dicts with ``image`` (uint8 [S, S, 3]), ``mask`` ([S, S, 1] or
            [S, S], nonzero inside the face mask), ``person_index``, ``source`` (numpy or
            TensorFlow values, as :func:`keras_facehallu.data.records.load_examples` yields).
        split: ``"train"``, ``"validation"`` or ``"test"``.
        codec: ``"jpeg"`` (default), ``"webp"`` or ``"raw"`` (uint8, lossless, large).
        quality: JPEG / WebP quality.
        people: person names, indexed by ``person_index`` (stored in ``meta``).

    Example:
        >>> write_packed("packed/train.npz", examples, "train")  # doctest: +SKIP
    """
    if codec not in CODECS:
        raise ValueError(f"codec: expected one of {CODECS}, found {codec!r}")
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, found {split!r}")
    chunks, images, bits, persons, sources = [], [], [], [], []
    size = None
    for position, example in enumerate(examples):
        image = np.asarray(example["image"], np.uint8)
        mask = np.asarray(example["mask"])
        source = example["source"]
        source = source.numpy() if hasattr(source, "numpy") else source
        source = source.decode() if isinstance(source, bytes) else str(source)
        if size is None:
            size = image.shape[0]
            if size % 8 or image.shape != (size, size, 3):
                raise ValueError(
                    f"{path}: example 0 ({source}): image must be [S, S, 3] with S a multiple of "
                    f"8, found {image.shape}"
                )
        if image.shape != (size, size, 3) or mask.shape[:2] != (size, size):
            raise ValueError(
                f"{path}: example {position} ({source}): image {image.shape} and mask "
                f"{mask.shape}, expected {(size, size, 3)} and {(size, size, 1)} like example 0"
            )
        if codec == "raw":
            images.append(image)
        else:
            chunks.append(_encode(image, codec, quality))
        bits.append(np.packbits(mask.reshape(-1) > 0))
        persons.append(int(np.asarray(example["person_index"])))
        sources.append(source)
    if size is None:
        raise ValueError(f"{path}: no examples to pack for split {split!r}")
    meta = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "split": split, "size": int(size),
        "codec": codec, "quality": int(quality) if codec != "raw" else None,
        "count": len(sources), "sources": sources, "people": list(people or []),
    }
    if codec == "raw":
        image_bytes = np.stack(images)
        offsets = np.zeros(0, np.int64)
    else:
        offsets = np.cumsum([0] + [len(c) for c in chunks]).astype(np.int64)
        image_bytes = np.frombuffer(b"".join(chunks), np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
            image_bytes=image_bytes,
            image_offsets=offsets,
            mask_bits=np.stack(bits),
            person_index=np.asarray(persons, np.int32),
        )
    return meta


def write_manifest(folder: str | os.PathLike, splits: dict, people=(), config=None) -> Path:
    """Writes a packed folder's ``manifest.json`` (each split's file, count, bytes and sha256)."""
    folder = Path(folder)
    entries = {}
    for split, meta in splits.items():
        path = split_path(folder, split)
        entries[split] = {
            "file": path.name, "count": meta["count"], "size": meta["size"],
            "codec": meta["codec"], "quality": meta["quality"],
            "bytes": path.stat().st_size, "sha256": sha256_of(path),
        }
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "splits": entries,
        "people": list(people), "prepared_config": dict(config or {}),
    }
    return write_json(folder / MANIFEST, manifest)


def export_prepared(
    prepared: str | os.PathLike,
    out: str | os.PathLike,
    splits=("train", "validation", "test"),
    codec: str = "jpeg",
    quality: int = 85,
) -> dict:
    """Exports the splits of a prepared TFRecord folder into a packed folder (needs TensorFlow).

    The person split is kept as prepared: each split's faces go to its own file, in record order.
    Splits the prepared folder does not have are skipped. Returns the packed manifest.

    Example:
        >>> export_prepared("work_data/lfw_prepared", "work_data/packed")  # doctest: +SKIP
    """
    from keras_facehallu.data.records import MANIFEST as PREPARED_MANIFEST
    from keras_facehallu.data.records import load_examples, read_manifest, shard_paths

    prepared, out = Path(prepared), Path(out)
    if prepared.resolve() == out.resolve():
        raise ValueError(f"{out}: write the packed folder beside the prepared one, not into it")
    manifest = read_manifest(prepared) if (prepared / PREPARED_MANIFEST).is_file() else {}
    people = manifest.get("people", [])
    written = {}
    for split in splits:
        try:
            shard_paths(prepared, split)
        except FileNotFoundError:
            continue

        examples = load_examples(prepared, split).as_numpy_iterator()
        written[split] = write_packed(
            split_path(out, split), examples, split, codec=codec, quality=quality,
            people=people,
        )
    if not written:
        raise FileNotFoundError(f"{prepared}: none of the splits {list(splits)} has shards")
    persons = {}
    for split in written:
        with np.load(split_path(out, split), allow_pickle=False) as npz:
            persons[split] = npz["person_index"]
    _check_person_split(persons, people, out)
    write_manifest(out, written, people=people, config=manifest.get("config", {}))
    return json.loads((out / MANIFEST).read_text())


def _check_person_split(persons: dict, people, where) -> None:
    """Raises when two splits share a person (``persons``: split -> person indices)."""
    seen = {}
    for split, indices in persons.items():
        names = set(indices.tolist())
        for other, other_names in seen.items():
            shared = [people[i] if i < len(people) else i for i in sorted(names & other_names)]
            if shared:
                raise PackedDataError(
                    f"{where}: splits {other!r} and {split!r} share people {shared[:5]}; the "
                    "prepared person split is broken"
                )
        seen[split] = names


class PackedSplit:
    """One packed split in memory: decoded uint8 images, {0, 1} masks, people and sources.

    Args:
        path: a packed ``.npz`` file, or a packed folder (then ``split`` picks the file).
        split: the split, when ``path`` is a folder.
        threads: decoding threads (Pillow releases the GIL while decoding).

    Example:
        >>> train = PackedSplit("work_data/packed", "train")  # doctest: +SKIP
        >>> train.images.shape, train.masks.shape  # doctest: +SKIP
        ((10879, 128, 128, 3), (10879, 128, 128, 1))
    """

    def __init__(self, path: str | os.PathLike, split: str | None = None, threads: int = 4):
        path = Path(path)
        if path.is_dir():
            if split is None:
                raise ValueError(f"{path} is a folder: name the split")
            path = split_path(path, split)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no packed split; export one with `python -m "
                "keras_facehallu.data.packed export PREPARED_DIR OUT_DIR`"
            )
        self.path = path
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except Exception as error:  # zipfile / numpy raise several types for damaged files
            raise PackedDataError(f"{path}: not a readable .npz file ({error})") from None
        missing = {"meta", "image_bytes", "image_offsets", "mask_bits", "person_index"} - set(
            arrays
        )
        if missing:
            raise PackedDataError(f"{path}: missing arrays {sorted(missing)}; not a packed split")
        try:
            meta = json.loads(arrays["meta"].tobytes().decode())
        except (UnicodeDecodeError, ValueError) as error:
            raise PackedDataError(f"{path}: meta is not JSON ({error})") from None
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise PackedDataError(
                f"{path}: format {meta.get('format')!r} version {meta.get('format_version')!r}, "
                f"expected {FORMAT!r} version {FORMAT_VERSION}"
            )
        if split is not None and meta["split"] != split:
            raise PackedDataError(f"{path}: holds split {meta['split']!r}, expected {split!r}")
        self.meta = meta
        self.split = meta["split"]
        self.size = size = int(meta["size"])
        count = int(meta["count"])
        bits = arrays["mask_bits"]
        if bits.shape != (count, size * size // 8) or arrays["person_index"].shape != (count,):
            raise PackedDataError(
                f"{path}: mask_bits {bits.shape} / person_index {arrays['person_index'].shape} "
                f"do not match {count} faces of {size}x{size}"
            )
        self.masks = np.unpackbits(bits, axis=1).reshape(count, size, size, 1)
        self.person_index = arrays["person_index"]
        self.sources = list(meta["sources"])
        self.people = list(meta.get("people", []))
        if meta["codec"] == "raw":
            self.images = arrays["image_bytes"]
            if self.images.shape != (count, size, size, 3):
                raise PackedDataError(
                    f"{path}: raw images {self.images.shape}, expected {(count, size, size, 3)}"
                )
        else:
            self.images = self._decode_all(arrays["image_bytes"], arrays["image_offsets"], threads)

    def _decode_all(self, data: np.ndarray, offsets: np.ndarray, threads: int) -> np.ndarray:
        count, size = len(self.sources), self.size
        if (offsets.shape != (count + 1,) or offsets[-1] != data.size
                or np.any(np.diff(offsets) < 0)):
            raise PackedDataError(f"{self.path}: image_offsets do not index image_bytes")
        images = np.empty((count, size, size, 3), np.uint8)
        raw = data.tobytes()

        def decode(i):
            where = f"{self.path}: face {i} ({self.sources[i]})"
            images[i] = _decode(raw[offsets[i]:offsets[i + 1]], size, where)

        with ThreadPoolExecutor(max(1, int(threads))) as pool:
            list(pool.map(decode, range(count)))
        return images

    def __len__(self) -> int:
        return len(self.sources)


class PackedBatches:
    """Batches of a :class:`PackedSplit` in the model's format; numpy only.

    Batch ``i`` is a pure function of ``(seed, i)``: pass ``p`` over the split uses the
    permutation drawn from ``(seed, p)`` and the flips drawn from ``(seed, 0x5EED, p)``.

    Args:
        split: a :class:`PackedSplit`.
        batch_size: faces per batch.
        flip: random horizontal flips (image and mask together), probability 0.5.
        shuffle: a new permutation each pass; without it, file order.
        seed: seed of the permutations and flips.
        repeat: an endless stream (``num_batches`` None) of passes.
        drop_remainder: drop each pass's last, smaller batch.
        start: index of the first batch (a resumed run: epochs done × steps per epoch).
    """

    def __init__(self, split: PackedSplit, batch_size: int = 16, flip: bool = False,
                 shuffle: bool = True, seed: int = 0, repeat: bool = False,
                 drop_remainder: bool = False, start: int = 0):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size: expected a positive integer, found {batch_size}")
        n = len(split)
        if drop_remainder and n < batch_size:
            raise ValueError(
                f"{split.path}: {n} faces, fewer than one batch of {batch_size} (drop_remainder)"
            )
        self.split, self.batch_size, self.flip = split, int(batch_size), bool(flip)
        self.shuffle, self.seed, self.repeat = bool(shuffle), int(seed), bool(repeat)
        self.drop_remainder, self.start = bool(drop_remainder), int(start)
        full, rest = divmod(n, self.batch_size)
        self.batches_per_pass = full if (drop_remainder or rest == 0) else full + 1
        self._pass_cache: tuple[int, np.ndarray, np.ndarray] | None = None

    @property
    def num_batches(self) -> int | None:
        """Batches in the stream: None when it repeats, else one pass from ``start``."""
        if self.repeat:
            return None
        return max(0, self.batches_per_pass - self.start)

    def _pass(self, p: int) -> tuple[np.ndarray, np.ndarray]:
        if self._pass_cache is None or self._pass_cache[0] != p:
            n = len(self.split)
            order = (np.random.default_rng([self.seed, p]).permutation(n) if self.shuffle
                     else np.arange(n))
            flips = (np.random.default_rng([self.seed, 0x5EED, p]).random(n) < 0.5 if self.flip
                     else np.zeros(n, bool))
            self._pass_cache = (p, order, flips)
        return self._pass_cache[1], self._pass_cache[2]

    def indices(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Face indices and flips of batch ``i`` of the stream."""
        i = self.start + int(i)
        if not self.repeat and not 0 <= i < self.batches_per_pass:
            raise IndexError(f"batch {i - self.start} out of range ({self.num_batches} batches)")
        p, b = divmod(i, self.batches_per_pass)
        order, flips = self._pass(p)
        chosen = slice(b * self.batch_size, (b + 1) * self.batch_size)
        return order[chosen], flips[order[chosen]]

    def __getitem__(self, i: int):
        index, flip = self.indices(i)
        image = from_uint8(self.split.images[index])
        mask = self.split.masks[index].astype(np.float32)
        if flip.any():
            image[flip] = image[flip, :, ::-1]
            mask[flip] = mask[flip, :, ::-1]
        masked = image * mask - (1.0 - mask)
        return {"masked_image": masked, "mask": mask}, image

    def __len__(self) -> int:
        if self.repeat:
            raise TypeError("a repeating stream has no length")
        return self.num_batches

    def __iter__(self):
        count = self.num_batches
        i = 0
        while count is None or i < count:
            yield self[i]
            i += 1


def make_packed_dataset(
    folder: str | os.PathLike,
    split: str = "train",
    batch_size: int = 16,
    flip: bool = False,
    shuffle: bool = True,
    seed: int = 0,
    repeat: bool = False,
    drop_remainder: bool = False,
    start: int = 0,
    workers: int = 1,
    packed_split: PackedSplit | None = None,
):
    """A ``keras.utils.PyDataset`` of packed batches, for ``model.fit`` on any backend.

    Arguments as :class:`PackedBatches`; ``workers`` > 1 prepares batches in that many threads.
    The returned object also has ``batches_per_pass`` and ``num_batches``; iterating it yields
    the batches. ``packed_split`` reuses an already decoded split.

    Example:
        >>> ds = make_packed_dataset("work_data/packed", "validation", 16, shuffle=False)
        ... # doctest: +SKIP
    """
    import keras

    data = packed_split if packed_split is not None else PackedSplit(folder, split)
    batches = PackedBatches(data, batch_size, flip=flip, shuffle=shuffle, seed=seed,
                            repeat=repeat, drop_remainder=drop_remainder, start=start)

    class PackedDataset(keras.utils.PyDataset):
        def __init__(self):
            super().__init__(workers=int(workers), use_multiprocessing=False, max_queue_size=8)
            self.batches = batches
            self.batches_per_pass = batches.batches_per_pass

        @property
        def num_batches(self):
            return batches.num_batches

        def __len__(self):
            return len(batches)

        def __getitem__(self, i):
            return batches[i]

        def __iter__(self):
            return iter(batches)

    return PackedDataset()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m keras_facehallu.data.packed", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="prepared TFRecords -> packed folder (needs TensorFlow)")
    export.add_argument("prepared", type=Path, help="folder made by facehallu-prepare")
    export.add_argument("out", type=Path, help="packed folder to write")
    export.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    export.add_argument("--codec", default="jpeg", choices=CODECS)
    export.add_argument("--quality", type=int, default=85, help="JPEG / WebP quality")
    info = sub.add_parser("info", help="counts and sizes of a packed folder")
    info.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    if args.command == "export":
        manifest = export_prepared(args.prepared, args.out, args.splits, args.codec, args.quality)
    else:
        if not is_packed(args.folder):
            print(f"{args.folder}: not a packed folder (no {MANIFEST} of format {FORMAT})",
                  file=sys.stderr)
            return 2
        manifest = json.loads((args.folder / MANIFEST).read_text())
    for split, entry in manifest["splits"].items():
        quality = "" if entry["quality"] is None else f" quality {entry['quality']}"
        print(f"{split}: {entry['count']} faces, {entry['bytes'] / 1e6:.1f} MB "
              f"({entry['codec']}{quality})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
