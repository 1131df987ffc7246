"""Prepared images on disk, and how they are read back.

An image dataset's splits are stored as uint8 (value = float value x divisor: 255 for image files,
16 for sklearn's digits), one raw file per split: fixed-length records of height x width x
channels bytes, in the split's order, beside the labels (`arrays-<sha>.npz`). numpy reads a split
memory-mapped (file pages, dropped by the kernel when memory is short); tf.data streams it with
`FixedLengthRecordDataset` (a TF-native reader: no Python in the loop, so a deterministic run still
reads in parallel). Nothing here imports TensorFlow until `tf_pixels` (or `to_float` on a tensor) is
called. `to_float` is the one place uint8 becomes the float values the models see.

    images-<sha16>/x_train.u8, x_val.u8, x_test.u8   the pixels
    images-<sha16>/digests.npz                         each row's file content sha256 (reuse)

A retrain merge appends (`append_version`): the new version's folder holds hard links to the
current version's files (no bytes copied), and the batch's rows are written to the training split
past its current length. The shared file grows under the current version too, which is harmless:
a reader trusts only the manifest's row counts, and the rows up to them never change (anything past
them that no manifest counts, left by a killed append, is cut by the next append).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from pipeline import atomic
from pipeline.data.splits import SPLITS

IMAGE_KEYS = tuple(f"x_{s}" for s in SPLITS)
CHUNK_BYTES = 16 * 2**20  # rows copied or hashed at a time: about this many bytes


def split_file(key: str) -> str:
    return f"{key}.u8"


def chunks(array: np.ndarray) -> Iterator[np.ndarray]:
    """An array's rows, a bounded number of bytes at a time (a memory map stays on disk)."""
    if array.ndim == 0 or len(array) == 0:
        yield array
        return
    step = max(1, CHUNK_BYTES // max(1, array[0].nbytes))
    for start in range(0, len(array), step):
        yield array[start : start + step]


def write_rows(path: Path, array: np.ndarray) -> None:
    """`array` (uint8 images) as one raw file of fixed-length records, through a temp name."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        for part in chunks(array):
            handle.write(np.ascontiguousarray(part, np.uint8).tobytes())
    os.replace(tmp, path)


def open_rows(path: Path, shape, count: int) -> np.ndarray:
    """A split file as a read-only (count, h, w, c) uint8 array, memory-mapped."""
    if count == 0:
        return np.zeros((0, *shape), np.uint8)
    return np.memmap(path, np.uint8, "r", shape=(count, *shape))


def stage(folder: Path, arrays: Mapping[str, np.ndarray], digests: dict[str, np.ndarray] | None):
    """Write the image splits of `arrays` into `folder` (those already there, memory-mapped from
    the very file, are kept), with the rows' content digests when known; returns `arrays` with the
    images memory-mapped from those files (what is hashed is what was written)."""
    folder.mkdir(parents=True, exist_ok=True)
    for key in IMAGE_KEYS:
        target = folder / split_file(key)
        if not mapped_from(arrays[key], target):
            write_rows(target, arrays[key])
    if digests:
        with open(folder / "digests.npz", "wb") as handle:
            np.savez(handle, **digests)
    counts = {key: len(arrays[key]) for key in IMAGE_KEYS}
    return {**arrays, **read_images(folder, arrays["x_train"].shape[1:], counts)}


def link_or_copy(source: Path, target: Path) -> None:
    """`target` as a second name of `source` (a hard link: nothing copied; a copy where the file
    system has no hard links)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def append_rows(path: Path, count: int, shape, rows: Iterable[np.ndarray]) -> int:
    """Write `rows` (uint8 images) after the first `count` records of a split file, cutting first
    whatever lies past them; synced to disk before it returns. Returns the new count."""
    record = int(np.prod(shape))
    with open(path, "r+b") as handle:
        handle.truncate(count * record)
        handle.seek(count * record)
        for part in rows:
            for piece in chunks(np.asarray(part, np.uint8)):
                handle.write(np.ascontiguousarray(piece).tobytes())
                count += len(piece)
        handle.flush()
        os.fsync(handle.fileno())
    return count


def append_version(source: Path, folder: Path, counts: dict[str, int], shape, rows: list[np.ndarray]) -> None:
    """A new version's image files in `folder` (new): the current version's (`source`, holding
    `counts` rows per split) linked, and `rows` appended to the training split."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in [*(split_file(k) for k in IMAGE_KEYS), "digests.npz"]:
        if (source / name).exists():
            link_or_copy(source / name, folder / name)
    append_rows(folder / split_file("x_train"), counts["x_train"], shape, rows)
    atomic.sync_folder(folder)


def mapped_from(array: np.ndarray, path: Path) -> bool:
    """Whether `array` is memory-mapped from the file `path` (np.memmap keeps its file's name)."""
    filename = getattr(array, "filename", None)
    return filename is not None and Path(filename).resolve() == path.resolve()


def read_images(folder: Path, shape, counts: dict[str, int]) -> dict[str, np.ndarray]:
    return {key: open_rows(folder / split_file(key), shape, counts[key]) for key in IMAGE_KEYS}


def read_digests(folder: Path) -> dict[str, np.ndarray]:
    """Each stored row's file content sha256 (empty for rows merged from batches); {} if none."""
    try:
        with np.load(folder / "digests.npz", allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (FileNotFoundError, ValueError, OSError):
        return {}


def to_float(x, divisor: float):
    """Stored uint8 images as the float32 values the models see (x / divisor, in [0, 1]): a numpy
    array read from a split, or a batch of the training stream (a TensorFlow tensor), the same
    float32 division either way."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float32) / np.float32(divisor)
    import tensorflow as tf

    return tf.cast(x, tf.float32) / tf.constant(divisor, tf.float32)


def to_stored(x: np.ndarray, divisor: float) -> np.ndarray:
    """Float images in [0, 1] as stored uint8 (rounded to the nearest 1/divisor)."""
    if x.dtype == np.uint8:
        return x
    return np.rint(np.clip(x, 0.0, 1.0) * divisor).astype(np.uint8)


def tf_pixels(path: Path, shape, start: int, stop: int):
    """A tf.data.Dataset of the uint8 images (h, w, c) of rows [start, stop) of a split file, in
    order: only those records are read."""
    import tensorflow as tf

    if stop <= start:
        return tf.data.Dataset.from_tensor_slices(np.zeros((0, *shape), np.uint8))
    record = int(np.prod(shape))
    # the rows asked for only: before them a header to skip; after them, rows the manifest does not
    # count (a killed append's) or that this selection leaves out
    pixels = tf.data.FixedLengthRecordDataset(
        str(path), record, header_bytes=start * record, buffer_size=CHUNK_BYTES
    ).take(stop - start)
    return pixels.map(
        lambda raw: tf.reshape(tf.io.decode_raw(raw, tf.uint8), shape),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
