"""An image split as the models read it: the rows an objective keeps, read as float values only when
asked, and a tf.data stream that trains within a fixed memory budget.

    x, y = dataset.examples("train", keep)   # Rows: the rows kept (stored order), nothing read yet
    x.select(rows)                           # fewer of them, still unread
    x.read(rows)                             # those rows as float32 images (uint8 / divisor)
    x.chunks(256)                            # the whole selection, a float piece at a time
    x.load()                                 # the whole selection as floats: small data only
                                             # (refused beyond IN_MEMORY_BYTES, with one line)
    x.dataset(32, shuffle=seed, targets=y)   # tf.data: (float images, targets) batches for fit

The stream reads the split file with TensorFlow's own reader (`FixedLengthRecordDataset`: no Python
in the loop, so a run with op determinism on still reads in parallel) every epoch, only the records
the selection holds when they form a few runs (a `train.limit`, a few-shot sample); the kernel's
page cache keeps a file that fits in memory, the process holds no copy. It shuffles uint8 in a
buffer of at most SHUFFLE_BYTES (every row at once for small data), scales each batch to float
(split_files.to_float), and prefetches. A selection of at most HELD_BYTES is read into memory once
instead of from the file every epoch, in the same order: the same batches.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.data import split_files
from pipeline.errors import UserError

SHUFFLE_BYTES = 64 * 2**20  # uint8 images in the shuffle buffer
# a selection this small (uint8) is held, not read from its file every epoch: a fixed cap a stream
# (the training split of a 2,000-photo folder at 224², about 1,260 images or 181 MiB, fits)
HELD_BYTES = 256 * 2**20
IN_MEMORY_BYTES = 256 * 2**20  # the largest float copy of a selection `load` makes
RANGES = 64  # a selection of at most this many runs of rows is read run by run; else filtered


@dataclasses.dataclass(frozen=True, eq=False)
class Rows:
    """Rows of a stored uint8 image split, read as float32 values only when asked."""

    name: str  # "<dataset>/<split>", for messages
    sha256: str  # the dataset version's content hash
    stored: np.ndarray  # the split (n, h, w, c) uint8: memory-mapped from its file, or in memory
    divisor: float  # float value = uint8 / divisor
    index: np.ndarray | None = None  # the rows kept, increasing; None: every row

    def __len__(self) -> int:
        return len(self.stored) if self.index is None else len(self.index)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.stored.shape[1:])

    @property
    def float_bytes(self) -> int:
        """What the whole selection takes as float32 images."""
        return len(self) * int(np.prod(self.image_shape)) * 4

    def select(self, rows) -> Rows:
        """The rows at `rows` (increasing positions in this selection, or a boolean mask), unread.
        Rows keep their stored order: the stream reads them as they lie in the file."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        index = rows.astype(np.int64) if self.index is None else self.index[rows]
        if len(index) and np.any(np.diff(index) <= 0):
            raise ValueError("Rows.select: rows must be increasing (rows keep their stored order)")
        whole = len(index) == len(self.stored)  # every row, in order
        return dataclasses.replace(self, index=None if whole else index)

    def read(self, rows) -> np.ndarray:
        """The float images at `rows` of this selection: a slice, or positions in any order."""
        picked = self.stored[rows] if self.index is None else self.stored[self.index[rows]]
        return split_files.to_float(np.asarray(picked), self.divisor)

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        """The selection as float images, `rows` at a time (one empty piece when it has none)."""
        for start in range(0, len(self), rows) or [0]:
            yield self.read(slice(start, start + rows))

    def load(self, cap: int = IN_MEMORY_BYTES) -> np.ndarray:
        """The whole selection as float images, refused (one line) beyond `cap` bytes: the
        estimator families fit and score whole arrays."""
        self.require_in_memory(cap)
        return self.read(slice(None))

    def require_in_memory(self, cap: int = IN_MEMORY_BYTES) -> None:
        """Refuse (one line) a selection whose float images take more than `cap` bytes."""
        if self.float_bytes > cap:
            h_w_c = "×".join(str(n) for n in self.image_shape)
            raise UserError(
                f"{self.name}: {len(self)} images of {h_w_c} take {self.float_bytes / 2**30:.1f} GiB as "
                f"floats, more than the {cap // 2**20} MiB a whole-array step may hold (the estimator "
                "families fit whole arrays: use a Keras family, or fewer rows with train.limit)"
            )

    def fingerprint(self) -> str:
        """What the selection is: the dataset version, the split, the rows kept, the scale."""
        digest = hashlib.sha256(f"{self.sha256}|{self.name}|{self.divisor}|".encode())
        digest.update(b"all" if self.index is None else np.ascontiguousarray(self.index).tobytes())
        return digest.hexdigest()

    def __repr__(self) -> str:
        return f"Rows({self.name}, {len(self)} of {len(self.stored)}, {self.fingerprint()[:12]})"

    def features(self, values: np.ndarray) -> Features:
        """`values` computed from these images row for row (a frozen module's features), to stream
        in their stead."""
        return Features(self, values)

    def dataset(self, batch_size: int, shuffle: int | None = None, targets=None, values=None):
        """A tf.data.Dataset of (float images, targets) batches for Keras' fit and evaluate.

        targets  an array with one target per row; None: the images themselves (an autoencoder
                 learns x → x)
        shuffle  a seed: reshuffled every epoch (same seed, same orders); None: in order
        values   an array computed from the images row for row, streamed instead of them in the
                 same order (the shuffle buffer is sized by the images: see Features)
        """
        import tensorflow as tf

        data = self.pixels() if values is None else tf.data.Dataset.from_tensor_slices(np.asarray(values))
        if targets is not None:
            data = tf.data.Dataset.zip((data, tf.data.Dataset.from_tensor_slices(targets)))
        if shuffle is not None:
            buffer = max(1, min(len(self), SHUFFLE_BYTES // int(np.prod(self.image_shape))))
            data = data.shuffle(buffer, seed=shuffle, reshuffle_each_iteration=True)
        data = data.batch(batch_size)
        if values is None:
            to_float = functools.partial(split_files.to_float, divisor=self.divisor)
            scaled = reconstructed(to_float) if targets is None else labelled(to_float)
            data = data.map(scaled, num_parallel_calls=tf.data.AUTOTUNE)
        return data.prefetch(tf.data.AUTOTUNE)

    def pixels(self):
        """The selected uint8 images, in order, as a tf.data.Dataset: at most HELD_BYTES of them
        read into memory once; more read from the split file every epoch, only the selected records
        when they form at most RANGES runs, else filtered while reading."""
        import tensorflow as tf

        # held in memory already (tests, small merges), or small enough to hold: read once (a
        # reader per run of rows, every epoch, costs more than the copy)
        if not isinstance(self.stored, np.memmap) or self.float_bytes // 4 <= HELD_BYTES:
            rows = self.stored if self.index is None else self.stored[self.index]
            return tf.data.Dataset.from_tensor_slices(np.asarray(rows))
        path, shape = Path(self.stored.filename), self.image_shape
        runs = [(0, len(self.stored))] if self.index is None else runs_of(self.index)
        if len(runs) <= RANGES:
            parts = [split_files.tf_pixels(path, shape, start, stop) for start, stop in runs]
            pixels = functools.reduce(lambda a, b: a.concatenate(b), parts)
        else:
            keep = np.zeros(len(self.stored), bool)
            keep[self.index] = True
            kept = tf.constant(keep)
            every = split_files.tf_pixels(path, shape, 0, len(self.stored))
            kept_rows = every.enumerate().filter(lambda row, _: kept[row])
            pixels = kept_rows.map(lambda _, image: image)
        # Keras then knows an epoch's batches (the reader and the filter cannot say)
        return pixels.apply(tf.data.experimental.assert_cardinality(len(self)))


def runs_of(index: np.ndarray) -> list[tuple[int, int]]:
    """Increasing row numbers as [start, stop) runs of consecutive rows."""
    if not len(index):
        return [(0, 0)]
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(index)]])
    return [(int(index[a]), int(index[b - 1]) + 1) for a, b in zip(starts, stops, strict=True)]


def labelled(to_float):
    def scaled(x, y):
        return to_float(x), y

    return scaled


def reconstructed(to_float):
    def scaled(x):
        return to_float(x), to_float(x)

    return scaled


@dataclasses.dataclass(frozen=True, eq=False)
class Features:
    """Values computed from images row for row (a frozen module's features), streamed in the order
    the images would be: a head trained on them sees its examples as the whole model would."""

    rows: Rows
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def dataset(self, batch_size: int, shuffle: int | None = None, targets=None):
        return self.rows.dataset(batch_size, shuffle, targets, values=self.values)


def floats(x, cap: int = IN_MEMORY_BYTES) -> np.ndarray:
    """`x` as one float array, what the estimator families fit and score: images (Rows) loaded
    whole, refused beyond `cap` with one line; an array as it is."""
    return x.load(cap) if isinstance(x, Rows) else x


def require_in_memory(x, cap: int = IN_MEMORY_BYTES) -> None:
    """What `floats(x)` would refuse, refused now (before a run starts), without reading."""
    if isinstance(x, Rows):
        x.require_in_memory(cap)


def shape_only(x) -> np.ndarray:
    """An array with `x`'s shape and float dtype that holds no data (a broadcast zero): what MLflow's
    dataset input records of a split (its schema and size), without reading the split."""
    if isinstance(x, Rows):
        return np.broadcast_to(np.zeros((), np.float32), (len(x), *x.image_shape))
    return np.broadcast_to(np.zeros((), x.dtype), x.shape)
