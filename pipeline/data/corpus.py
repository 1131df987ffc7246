"""Text for the character models: split into train, validation and test, stored as integer codes,
and cut into windows on the fly.

    python-reference  the Python reference that ships with Python (`pydoc_data.topics`: 79 topics,
                      about 465,000 characters); whole topics go to one split each
    text-file         your own text file, split into three contiguous blocks (train, val, test)

A split is stored as one array of codes (uint8; uint16 beyond 256 characters) of the vocabulary
of its training text (pipeline/text.py), which the manifest lists: a character the training text
never had is code 0, <unk>. `Windows` reads a split as a network trains on it: windows of T
characters and, shifted by one, the T characters that follow each position.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from pipeline.data import readers
from pipeline.data.manifest import Facts, Prepared
from pipeline.data.splits import SPLITS
from pipeline.errors import UserError
from pipeline.text import Vocabulary

MAX_BYTES = 50 * 2**20  # the largest text file read (whole: a text file is read into memory once)
MIN_CHARACTERS = 64  # each split of a text file holds at least this many characters
SEPARATOR = "\n\n"  # between two topics of one split


def topic_split(topics: dict[str, str], val_fraction: float, test_fraction: float) -> dict[str, list[str]]:
    """{split: topic names}: whole topics, largest first, each to the split furthest below its share
    of the characters (ties: train, val, test; same-sized topics by name). Deterministic, and close
    to the shares even when one topic is an eighth of the text."""
    share = {"train": 1 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    filled = dict.fromkeys(SPLITS, 0)
    parts: dict[str, list[str]] = {split: [] for split in SPLITS}
    for name in sorted(topics, key=lambda n: (-len(topics[n]), n)):
        split = min((s for s in SPLITS if share[s] > 0), key=lambda s: filled[s] / share[s])
        parts[split].append(name)
        filled[split] += len(topics[name])
    return parts


def block_split(text: str, val_fraction: float, test_fraction: float) -> dict[str, str]:
    """{split: text}: three contiguous blocks in order (train, val, test), each cut at the line break
    nearest its share (at the share itself when the text has no line break near it)."""
    ends = [1 - val_fraction - test_fraction, 1 - test_fraction]
    cuts = [0, *(line_break_near(text, round(len(text) * end)) for end in ends), len(text)]
    return {split: text[cuts[i] : cuts[i + 1]] for i, split in enumerate(SPLITS)}


def line_break_near(text: str, at: int, reach: int = 200) -> int:
    """The position just after the line break nearest `at` (within `reach` characters), else `at`."""
    before, after = text.rfind("\n", max(at - reach, 0), at), text.find("\n", at, at + reach)
    found = [p + 1 for p in (before, after) if p >= 0]
    return min(found, key=lambda p: abs(p - at)) if found else at


def encoded(texts: dict[str, str]) -> tuple[dict[str, np.ndarray], Vocabulary]:
    """({codes_<split>: codes}, the training text's vocabulary)."""
    vocabulary = Vocabulary.of(texts["train"])
    return {f"codes_{split}": vocabulary.encode(texts[split]) for split in SPLITS}, vocabulary


def python_reference() -> tuple[dict[str, str], str]:
    """({topic: text} of the bundled Python reference, the Python version it ships with)."""
    from pydoc_data.topics import topics

    return dict(topics), platform.python_version()


def text_file(path: str, where: str) -> Path:
    """The file `path` names; one line when there is none."""
    file = readers.resolve(path)
    if not file.exists() and not file.is_symlink():
        raise UserError(
            f"{where}.path: text file '{readers.shown(path)}' does not exist ({readers.shown(file)})"
        )
    return file


def read_text(path: str, encoding: str, max_bytes: int, where: str) -> tuple[str, Path]:
    """A text file's contents, decoded; one line naming the file when it is missing, not a regular
    file (a link is not followed), larger than `max_bytes`, or not text in `encoding`."""
    file = text_file(path, where)
    with readers.open_regular(file) as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UserError(
            f"{readers.shown(file)}: larger than {max_bytes:,} bytes ({where}.max_bytes); use a smaller file"
        )
    try:
        return data.decode(encoding), file
    except LookupError:
        raise UserError(
            f"{where}.encoding: '{readers.shown(encoding)}' is not an encoding Python knows"
        ) from None
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{readers.shown(file)}: not {encoding} text (byte {exc.start}: {exc.reason}); "
            f"set {where}.encoding to the file's encoding (e.g. latin-1)"
        ) from None


def check_blocks(texts: dict[str, str], where: str) -> None:
    for split, text in texts.items():
        if split in ("train", "test") and len(text) < MIN_CHARACTERS:
            total = sum(len(t) for t in texts.values())
            raise UserError(
                f"{where}: {total:,} characters leave the {split} split {len(text)}, fewer than "
                f"{MIN_CHARACTERS}; use a longer text (or other val_fraction/test_fraction)"
            )


def file_digest(path: str, where: str) -> tuple[str, str]:
    """(sha256 of a text file's bytes, its path), without following a link."""
    file = text_file(path, where)
    with readers.open_regular(file) as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest(), str(file)


# --------------------------------------------------------------------------- windows


@dataclasses.dataclass(frozen=True, eq=False)
class Windows:
    """A split's codes read as windows of `length` characters, `stride` apart (length: windows that
    do not overlap; less: each window repeats the end of the one before as its context).

        x[i], x[i:j]            int32 windows (n, length): what a network reads
        x.targets(i), ...       the characters that follow each position: the windows shifted by one
        x.dataset(batch_size, shuffle=seed)
                                tf.data batches of (windows, targets) for Keras' fit; with a seed,
                                every epoch starts at a new random offset and visits the windows in
                                a new order (same seed, same epochs)
    """

    name: str  # "<dataset>/<split>", for messages
    codes: np.ndarray  # the split's codes
    length: int
    stride: int

    def __post_init__(self):
        if not 1 <= self.stride <= self.length:
            raise ValueError(f"Windows: stride must be in [1, length] (got {self.stride}, {self.length})")

    def __len__(self) -> int:
        return max(0, (len(self.codes) - 1 - self.length) // self.stride + 1)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), self.length)

    dtype = np.dtype(np.int32)

    def starts(self, key=slice(None)) -> np.ndarray:
        return (np.arange(len(self)) * self.stride)[key]

    def __getitem__(self, key) -> np.ndarray:
        return self.read(self.starts(key), 0)

    def targets(self, key=slice(None)) -> np.ndarray:
        return self.read(self.starts(key), 1)

    def read(self, starts, shift: int) -> np.ndarray:
        starts = np.asarray(starts)
        return self.codes[starts[..., None] + shift + np.arange(self.length)].astype(np.int32)

    def overlapping(self, context: int) -> Windows:
        """The same codes in windows that repeat their last `context` characters: scoring only each
        window's positions after its first `context` scores every character once, with at least
        `context` characters before it."""
        return dataclasses.replace(self, stride=self.length - context)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"{self.name}|{self.length}|{self.stride}|{self.codes.dtype}|".encode())
        digest.update(np.ascontiguousarray(self.codes).tobytes())
        return digest.hexdigest()

    def __repr__(self) -> str:
        return f"Windows({self.name}, {len(self)} x {self.length}, stride {self.stride})"

    def dataset(self, batch_size: int, shuffle: int | None = None, targets=None):
        """tf.data (windows, targets) batches. `targets` is unused (the text is its own target);
        it is there so the training core streams windows as it streams images (streams.Rows)."""
        import tensorflow as tf

        codes = tf.constant(self.codes)
        count, length, stride = len(self), self.length, self.stride
        spare = len(self.codes) - 1 - ((count - 1) * stride + length)  # room to shift every window

        def window(start):
            read = tf.cast(tf.gather(codes, start + tf.range(length + 1, dtype=tf.int64)), tf.int32)
            return read[:-1], read[1:]

        starts = tf.data.Dataset.range(count).map(lambda k: k * stride)
        if shuffle is not None:  # an offset drawn anew each time Keras starts an epoch
            offset = tf.data.Dataset.random(seed=shuffle, rerandomize_each_iteration=True).take(1)
            offset = offset.map(lambda r: r % (spare + 1))
            starts = offset.flat_map(lambda o: tf.data.Dataset.range(count).map(lambda k: o + k * stride))
            starts = starts.shuffle(count, seed=shuffle, reshuffle_each_iteration=True)
        data = starts.map(window).batch(batch_size)
        batches = -(-count // batch_size)
        return data.apply(tf.data.experimental.assert_cardinality(batches)).prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- sources

from pipeline.data.sources import Source  # noqa: E402 - sources.py lists these classes at its end


@dataclasses.dataclass(frozen=True)
class TextSource(Source):
    """Text stored as codes_train, codes_val, codes_test with the training text's vocabulary."""

    KIND: ClassVar[str] = "text"

    def texts(self, name: str) -> tuple[dict[str, str], dict[str, Any]]:
        """({split: text}, the source's own Facts fields: split, topics, python)."""
        raise NotImplementedError

    def build(self, name: str, staging: Path | None = None) -> Prepared:
        texts, own = self.texts(name)
        arrays, vocabulary = encoded(texts)
        facts = Facts(
            kind=self.KIND,
            **own,
            vocabulary=list(vocabulary.chars),
            characters={split: len(text) for split, text in texts.items()},
            unknown_characters={split: int(np.sum(arrays[f"codes_{split}"] == 0)) for split in SPLITS},
        )
        return Prepared(arrays, facts)


@dataclasses.dataclass(frozen=True)
class PythonReferenceSource(TextSource):
    """The Python reference that ships with Python (pydoc_data.topics): whole topics per split."""

    source: Literal["python-reference"]
    val_fraction: float
    test_fraction: float

    def raw_key(self, name):
        version = platform.python_version()  # the text changes with the Python release
        return f"python-{version}", f"pydoc_data.topics (Python {version})"

    def texts(self, name):
        topics, version = python_reference()
        parts = topic_split(topics, self.val_fraction, self.test_fraction)
        texts = {split: SEPARATOR.join(topics[t] for t in parts[split]) for split in SPLITS}
        return texts, {"split": "whole topics by character share", "topics": parts, "python": version}


@dataclasses.dataclass(frozen=True)
class TextFileSource(TextSource):
    """Your text file, split into three contiguous blocks: train, val, test (in that order)."""

    source: Literal["text-file"]
    path: str
    val_fraction: float
    test_fraction: float
    encoding: str = "utf-8"
    max_bytes: int = MAX_BYTES  # refuse larger files (read whole)

    def raw_key(self, name):
        return file_digest(self.path, f"data.{name}")

    def watched(self) -> list[str]:
        return [self.path]

    def texts(self, name):
        text, file = read_text(self.path, self.encoding, self.max_bytes, f"data.{name}")
        texts = block_split(text, self.val_fraction, self.test_fraction)
        check_blocks(texts, readers.shown(file))
        return texts, {"split": "contiguous blocks: train, val, test"}
