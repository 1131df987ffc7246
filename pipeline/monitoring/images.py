"""Drift of images: do new images look like the ones the model was trained on?

Three statistics per image, each tested against the training split with a two-sample
Kolmogorov-Smirnov test, and one histogram:

- brightness: the image's mean intensity (inverted, darker or washed-out images move it);
- mean_image: the image's RMS distance to the training split's per-pixel mean image (shifted,
  rotated, rescaled or cropped digits move it, though their brightness stays the same);
- confidence: the served model's highest class probability (inputs unlike anything it learnt
  lower it), when the model's probabilities are given;
- the pooled pixel-intensity histogram, compared by its population stability index (PSI).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, ClassVar

import numpy as np

from pipeline import inference
from pipeline.data.streams import Rows
from pipeline.errors import UserError
from pipeline.monitoring.drift import Drift, Reference, floats, score_of

LABELS = {
    "brightness": "mean intensity",
    "mean_image": "distance to the training mean image",
    "confidence": "model confidence",
}
BINS = 16  # intensity histogram bins over the training split's pixel range
PSI_FLOOR = 1e-4  # an empty bin counts as this share (PSI divides by shares)
CHUNK_BYTES = 32 * 2**20  # float64 images a profile reads at a time


def as_images(x, where: str = "images") -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or len(x) == 0:
        raise UserError(f"{where}: expected a non-empty batch of images, got shape {x.shape}")
    return x


def chunks(x, chunk_bytes: int = CHUNK_BYTES):
    """Images (an array or data.streams.Rows) as float64 arrays of about `chunk_bytes` each."""
    # read as float32 pieces of half that size, then widened
    for part in inference.pieces(x, rows=max(1, len(x)), nbytes=chunk_bytes // 2):
        if len(part):
            yield np.asarray(part, dtype=np.float64)


def confidences(probabilities, count: int, where: str = "probabilities") -> np.ndarray:
    """The highest class probability of each image."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or len(p) != count:
        raise UserError(f"{where}: expected ({count}, classes) class probabilities, got shape {p.shape}")
    return p.max(axis=1)


def population_stability(expected: np.ndarray, observed: np.ndarray) -> float:
    """PSI = sum (o - e) ln(o / e) over bins of shares; about 0.1 is a small shift, 0.25 a large one."""
    e = np.maximum(expected / max(expected.sum(), 1e-12), PSI_FLOOR)
    o = np.maximum(observed / max(observed.sum(), 1e-12), PSI_FLOOR)
    return float(np.sum((o - e) * np.log(o / e)))


@dataclasses.dataclass(frozen=True)
class ImageStats:
    """What a batch (or a window of requests) contributes: per-image statistics and pixel sums.

    The per-image arrays may be a sample of the images counted (a server's window keeps a bounded
    sample); the sums cover every image."""

    PER_EXAMPLE: ClassVar[tuple[str, ...]] = ("brightness", "distance", "confidence")

    brightness: np.ndarray  # (n,) mean intensity
    distance: np.ndarray  # (n,) RMS distance to the training mean image
    confidence: np.ndarray | None  # (n,) the model's highest class probability, when given
    pixel_sum: np.ndarray  # (image shape) sum of every image counted
    histogram: np.ndarray  # (BINS,) pixel-intensity counts of every image counted
    count: int  # images counted

    def merge(self, other: ImageStats) -> ImageStats:
        both = self.confidence is not None and other.confidence is not None
        return ImageStats(
            np.concatenate([self.brightness, other.brightness]),
            np.concatenate([self.distance, other.distance]),
            np.concatenate([self.confidence, other.confidence]) if both else None,
            self.pixel_sum + other.pixel_sum,
            self.histogram + other.histogram,
            self.count + other.count,
        )


@dataclasses.dataclass(frozen=True)
class ImageProfile:
    """The training split's image statistics: what new images are compared against."""

    KIND: ClassVar[str] = "images"

    shape: tuple[int, ...]  # one image's shape, e.g. (8, 8, 1)
    mean_image: np.ndarray  # per-pixel mean of the training split
    edges: np.ndarray  # (BINS + 1,) intensity histogram bin edges
    histogram: np.ndarray  # (BINS,) the training split's pixel-intensity counts
    brightness: Reference
    distance: Reference
    confidence: Reference | None  # None: the profile was made without the model's probabilities

    @classmethod
    def fit(cls, x_train, probabilities=None) -> ImageProfile:
        """Profile the training images (an array, or data.streams.Rows: read a chunk at a time, in
        two passes, never whole); `probabilities` are the model's class probabilities on
        held-out images of the same data (its validation split): on the very images it was fitted
        on a model is more confident than on any new image, so a batch like the training data
        would look drifted."""
        x_train = x_train if isinstance(x_train, Rows) else np.asarray(x_train, np.float64)
        shape = x_train.image_shape if isinstance(x_train, Rows) else x_train.shape[1:]
        if not shape or len(x_train) == 0:
            got = (len(x_train), *shape) if shape else np.shape(x_train)
            raise UserError(f"training images: expected a non-empty batch of images, got shape {got}")
        lo, hi, total = np.inf, -np.inf, 0.0
        for x in chunks(x_train):
            lo, hi, total = min(lo, float(x.min())), max(hi, float(x.max())), total + x.sum(axis=0)
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, BINS + 1)
        mean_image = total / len(x_train)
        profile = cls(tuple(shape), mean_image, edges, np.zeros(BINS), None, None, None)
        stats = functools.reduce(ImageStats.merge, (profile.stats(x) for x in chunks(x_train)))
        confidence = None
        if probabilities is not None:
            confidence = Reference.of(confidences(probabilities, len(probabilities)))
        return dataclasses.replace(
            profile,
            histogram=stats.histogram,
            brightness=Reference.of(stats.brightness),
            distance=Reference.of(stats.distance),
            confidence=confidence,
        )

    def stats(self, x, probabilities=None) -> ImageStats:
        """A batch's statistics (`probabilities`: the model's answers for these images, if any)."""
        x = as_images(x)
        if tuple(x.shape[1:]) != self.shape:
            raise UserError(f"images of shape {x.shape[1:]}, but the training images are {self.shape}")
        flat = x.reshape(len(x), -1)
        distance = np.sqrt(np.mean((flat - self.mean_image.reshape(1, -1)) ** 2, axis=1))
        counts, _ = np.histogram(np.clip(flat, self.edges[0], self.edges[-1]), bins=self.edges)
        confidence = None if probabilities is None else confidences(probabilities, len(x))
        return ImageStats(flat.mean(axis=1), distance, confidence, x.sum(axis=0), counts, len(x))

    def compare(self, stats: ImageStats) -> Drift:
        tests = {"brightness": self.brightness.test(stats.brightness)}
        tests["mean_image"] = self.distance.test(stats.distance)
        if self.confidence is not None and stats.confidence is not None:
            tests["confidence"] = self.confidence.test(stats.confidence)
        score, worst = score_of(tests)
        metrics = {"drift_score": score, "drift_examples": float(stats.count)}
        for name, test in tests.items():
            metrics[f"drift_{name}_ks"] = test.statistic
            metrics[f"drift_{name}_pvalue"] = test.pvalue
        metrics["drift_intensity_psi"] = population_stability(self.histogram, stats.histogram)
        return Drift(self.KIND, stats.count, score, worst, metrics, self, stats)

    def figure(self, stats: ImageStats, drift: Drift):
        from pipeline import plots

        samples = {"brightness": (self.brightness, stats.brightness)}
        samples["mean_image"] = (self.distance, stats.distance)
        if self.confidence is not None and stats.confidence is not None:
            samples["confidence"] = (self.confidence, stats.confidence)
        name = drift.worst or max(samples, key=lambda k: drift.metrics[f"drift_{k}_ks"])
        reference, values = samples[name]
        return plots.image_drift(
            self.mean_image,
            stats.pixel_sum / stats.count,
            (self.edges, self.histogram, stats.histogram),
            (LABELS[name], reference.quantiles, values),
            drift.line(),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.KIND,
            "shape": list(self.shape),
            "mean_image": self.mean_image.ravel().tolist(),
            "edges": self.edges.tolist(),
            "histogram": self.histogram.tolist(),
            "brightness": self.brightness.to_json(),
            "distance": self.distance.to_json(),
            "confidence": None if self.confidence is None else self.confidence.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageProfile:
        shape = tuple(int(n) for n in data["shape"])
        edges, histogram = floats(data["edges"]), floats(data["histogram"])
        if len(edges) != len(histogram) + 1:
            raise ValueError("histogram and edges disagree")
        confidence = data["confidence"]
        return cls(
            shape,
            floats(data["mean_image"]).reshape(shape),
            edges,
            histogram,
            Reference.from_json(data["brightness"]),
            Reference.from_json(data["distance"]),
            None if confidence is None else Reference.from_json(confidence),
        )
