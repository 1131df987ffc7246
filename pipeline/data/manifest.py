"""The data layer's typed contract: what a source prepares and what a stored version records.

    Prepared(arrays, facts, digests)    a source's build: its split arrays and the Facts about them
    Facts                               kind, classes, split, divisor (images), the source's own facts
    Manifest(Facts)                     a stored version (data/processed/<name>/manifest.json,
                                        read and written by versions.py): the facts, the params they
                                        came from, the arrays' shapes and sha256, the batches
                                        retrain merged in

Every fact is a field, so a version that retrain extends (`Manifest.merged`) keeps all of them. A
new kind of source adds the fields it needs to Facts; nothing else reads the manifest by key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Literal

import numpy as np
import pydantic

# Bump when the processing changes what a source turns into: it invalidates caches.
PREP_VERSION = 2  # 2: images stored as uint8 split files


class Facts(pydantic.BaseModel):
    """What a source says about the arrays it prepared (the manifest records it, a merge keeps it)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    # what the arrays hold: x_/y_ per split (images, table, regression), a series' dates_/values_,
    # or a text corpus' characters (a text source's own arrays: nothing here reads them by name)
    kind: Literal["images", "table", "series", "regression", "text"]
    split: str | None = None  # how the examples were split, when it is not the kind's default
    split_seed: int | None = None
    class_names: list[str] = []  # labelled examples: label i is class_names[i]
    divisor: float | None = None  # images: x_* are uint8 = the models' float value x divisor
    unreadable: list[dict[str, str]] | None = None  # image folders: files skipped (file, reason)
    # image folders: the files' own sizes and colour (median, min, max [height, width], color_share,
    # files), what a model's metadata says it was trained on
    native_size: dict[str, Any] | None = None
    feature_names: list[str] | None = None  # tables: the columns of x_*
    fill: Literal["time", "linear", "ffill"] | None = None  # series: how gaps are filled
    filled_gaps: int | None = None  # series: values filled at prep
    date_range: dict[str, list[str]] | None = None  # series: each split's first and last date
    function: str | None = None  # a generated function's name
    # text (codes_<split>): code i is vocabulary[i] (0: <unk>, a character the training text lacks)
    vocabulary: list[str] | None = None
    characters: dict[str, int] | None = None  # text: each split's characters
    unknown_characters: dict[str, int] | None = None  # text: each split's characters coded <unk>
    topics: dict[str, list[str]] | None = None  # the Python reference: each split's topics
    python: str | None = None  # the Python reference: the Python version it shipped with

    @property
    def pixels(self) -> bool:
        """Whether x_* are uint8 images (float value = uint8 / divisor), stored as split files."""
        return self.divisor is not None

    @property
    def streamed(self) -> bool:
        """Whether models train on a split as its own tf.data stream (images: streams.Rows; text:
        corpus.Windows) rather than on arrays Keras batches."""
        return self.kind in ("images", "text")

    @pydantic.model_validator(mode="after")
    def images_are_pixels(self):
        if (self.kind == "images") != self.pixels:
            raise ValueError("images, and only images, are stored as uint8 pixels with a divisor")
        return self


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What a source builds: its arrays (per split, plus any extra like a function's curve), as they
    are stored (images uint8, memory-mapped when written to the staging folder already), the facts
    about them, and for an image folder each row's file digest (the next prep reuses rows by it)."""

    arrays: dict[str, np.ndarray]
    facts: Facts
    digests: dict[str, np.ndarray] | None = None


class BatchEntry(pydantic.BaseModel):
    """A batch retrain merged into the dataset (also kept beside it as batches/<id>.json)."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")

    id: str  # its id in the dataset (the folder name, or <name>-<sha8> when the name was taken)
    name: str  # the folder name it arrived under
    sha256: str | None = None  # of its files: its identity (None: rebuilt without its record)
    examples: int | None = None  # examples (a series: observed points) it added
    seq: int | None = None  # its place in the order batches were ingested
    ingested: str | None = None  # when (UTC, ISO 8601)


class Manifest(Facts):
    """A stored version of a dataset: data/processed/<dataset>/manifest.json."""

    model_config = pydantic.ConfigDict(frozen=True, extra="ignore")  # older manifests' keys dropped

    dataset: str
    source: str  # the `source:` value
    source_detail: str  # where the raw data came from
    params: dict[str, Any]  # the `data.<name>:` entry, resolved
    shapes: dict[str, list[int]]
    sha256: str  # content hash of the arrays (names, dtypes, shapes, bytes)
    class_counts: dict[str, dict[str, int]] | None = None
    cache_key: str  # changes when the raw data or the params do
    prep_version: int = PREP_VERSION
    batches: list[BatchEntry] = []
    created: str = ""

    @pydantic.computed_field
    @property
    def arrays(self) -> str:
        """The file of the arrays that are not images (labels, tables, series)."""
        return f"arrays-{self.sha256[:16]}.npz"

    @pydantic.computed_field
    @property
    def images(self) -> dict[str, str] | None:
        """The folder of the image split files (split_files.py), for an image dataset."""
        return {"folder": self.images_folder} if self.pixels else None

    @property
    def images_folder(self) -> str | None:
        return f"images-{self.sha256[:16]}" if self.pixels else None

    def merged(self, contents: dict[str, Any], batches: list[BatchEntry]) -> Manifest:
        """This version with batches merged in: every fact kept; the contents (shapes, sha256, class
        counts) and the batches replaced."""
        return self.model_copy(update={**contents, "batches": batches, "created": now()})


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
