"""An image split as the models read it: the rows an objective keeps, as float values on read, and
as a tf.data stream that trains within a fixed memory budget.

    x = dataset.examples("train")[0]     # Rows: every image of the split, nothing read yet
    x = x.take(keep)                      # the rows an objective keeps (stored order), still unread
    x[i:j], x[rows]                       # float32 images (uint8 / divisor): only those rows are read
    x.batches(256)                        # the whole selection, a float batch at a time
    np.asarray(x)                         # the whole selection as floats: small data only (refused
                                          # beyond IN_MEMORY_BYTES, with one line)
    x.stream(y, batch_size, shuffle=seed) # tf.data: (float images, targets) batches for Keras' fit

The stream reads the split file with TensorFlow's own reader (`FixedLengthRecordDataset`: no Python
in the loop, so a run with op determinism on still reads in parallel) every epoch (the kernel's page
cache keeps a file that fits in memory; the process holds no copy); shuffles uint8 in a buffer of at
most SHUFFLE_BYTES (every row at once for small data), scales each batch to float, and prefetches.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.data import split_files
from pipeline.errors import UserError

SHUFFLE_BYTES = 64 * 2**20  # uint8 images in the shuffle buffer
IN_MEMORY_BYTES = 256 * 2**20  # the largest float copy of a selection np.asarray makes


@dataclasses.dataclass(frozen=True, eq=False)
class Rows:
    """Rows of a stored uint8 image split, read as float32 values only when used."""

    name: str  # "<dataset>/<split>", for messages
    sha256: str  # the dataset version's content hash
    stored: np.ndarray  # the split (n, h, w, c) uint8: memory-mapped from its file, or in memory
    divisor: float  # float value = uint8 / divisor
    index: np.ndarray | None = None  # the rows kept, increasing; None: every row

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.stored.shape[1:])

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.image_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.image_shape)

    dtype = np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @property
    def record_bytes(self) -> int:
        return int(np.prod(self.image_shape))

    def __len__(self) -> int:
        return len(self.stored) if self.index is None else len(self.index)

    def __getitem__(self, key) -> np.ndarray:
        """numpy indexing of the selection (an int, a slice, indices, a mask): those images as floats."""
        picked = self.stored[key] if self.index is None else self.stored[self.index[key]]
        return split_files.to_float(np.asarray(picked), self.divisor)

    def take(self, indices, axis: int = 0) -> Rows:
        """The rows at `indices` (or a boolean mask) of this selection, unread; like ndarray.take,
        so objectives select rows of images and of tables alike. Rows keep their stored order."""
        indices = np.asarray(indices)
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        index = indices.astype(np.int64) if self.index is None else self.index[indices]
        if len(index) and np.any(np.diff(index) <= 0):
            raise ValueError("Rows.take: indices must be increasing (rows keep their stored order)")
        whole = len(index) == len(self.stored)  # every row, in order
        return dataclasses.replace(self, index=None if whole else index)

    def batches(self, size: int = 1024) -> Iterator[np.ndarray]:
        """The selection as float images, `size` rows at a time."""
        for start in range(0, len(self), size):
            yield self[start : start + size]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        require_in_memory(self)
        x = self[:]
        return x if dtype is None else x.astype(dtype)

    def fingerprint(self) -> str:
        """What the selection is: the dataset version, the split, the rows kept, the scale."""
        digest = hashlib.sha256(f"{self.sha256}|{self.name}|{self.divisor}|".encode())
        digest.update(b"all" if self.index is None else np.ascontiguousarray(self.index).tobytes())
        return digest.hexdigest()

    def __repr__(self) -> str:
        return f"Rows({self.name}, {len(self)} of {len(self.stored)}, {self.fingerprint()[:12]})"

    def stream(self, targets, batch_size: int, shuffle: int | None = None, values=None):
        """A tf.data.Dataset of (float images, targets) batches for Keras' fit and evaluate.

        targets  an array with one target per row, or this Rows itself (an autoencoder's x → x)
        shuffle  a seed: reshuffled every epoch (same seed, same orders); None: in order
        values   an array computed from the images row for row (a frozen module's features),
                 streamed instead of them in the same order (the buffer is sized by the images)
        """
        import tensorflow as tf

        data = self.pixels() if values is None else tf.data.Dataset.from_tensor_slices(np.asarray(values))
        autoencoder = targets is self
        if not autoencoder:
            data = tf.data.Dataset.zip((data, tf.data.Dataset.from_tensor_slices(targets)))
        if shuffle is not None:
            buffer = max(1, min(len(self), SHUFFLE_BYTES // self.record_bytes))
            data = data.shuffle(buffer, seed=shuffle, reshuffle_each_iteration=True)
        divisor = tf.constant(self.divisor, tf.float32)

        def scale(x):
            return tf.cast(x, tf.float32) / divisor  # the same float32 values as split_files.to_float

        def scaled(x, y):
            return scale(x), y

        def reconstructed(x):
            return scale(x), scale(x)

        data = data.batch(batch_size)
        if values is None:
            data = data.map(reconstructed if autoencoder else scaled, num_parallel_calls=tf.data.AUTOTUNE)
        return data.prefetch(tf.data.AUTOTUNE)

    def pixels(self):
        """The selected uint8 images, in order, as a tf.data.Dataset read from the split file."""
        import tensorflow as tf

        if isinstance(self.stored, np.memmap):
            pixels = split_files.tf_pixels(Path(self.stored.filename), self.image_shape, len(self.stored))
        else:  # held in memory already (a retrain candidate before its commit)
            pixels = tf.data.Dataset.from_tensor_slices(np.asarray(self.stored))
        if self.index is not None:
            keep = np.zeros(len(self.stored), bool)
            keep[self.index] = True
            kept = tf.constant(keep)

            def selected(i, x):
                return kept[i]

            def image(i, x):
                return x

            pixels = pixels.enumerate().filter(selected).map(image)
        # Keras then knows an epoch's batches (the reader and the filter cannot say)
        return pixels.apply(tf.data.experimental.assert_cardinality(len(self)))


@dataclasses.dataclass(frozen=True, eq=False)
class Computed:
    """Values computed from images row for row (a frozen module's features), streamed in the order
    the images would be: a head trained on them sees its examples as the whole model would."""

    rows: Rows
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def stream(self, targets, batch_size: int, shuffle: int | None = None):
        return self.rows.stream(targets, batch_size, shuffle, values=self.values)


def require_in_memory(x) -> None:
    """Refuse (one line) images too large to hold whole as floats: the estimator families fit and
    score whole arrays. Arrays pass: they are in memory already."""
    if isinstance(x, Rows) and x.nbytes > IN_MEMORY_BYTES:
        h_w_c = "×".join(str(n) for n in x.image_shape)
        raise UserError(
            f"{x.name}: {len(x)} images of {h_w_c} take {x.nbytes / 2**30:.1f} GiB as floats, more "
            f"than the {IN_MEMORY_BYTES // 2**20} MiB a whole-array step may hold (the estimator "
            "families fit whole arrays: use a Keras family, or fewer rows with train.limit)"
        )


def shape_only(x) -> np.ndarray:
    """An array with `x`'s shape and dtype that holds no data (a broadcast zero): what MLflow's
    dataset input records of a split (its schema and size), without reading the split."""
    return np.broadcast_to(np.zeros((), x.dtype), x.shape)
