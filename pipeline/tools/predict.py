"""Batch prediction with a logged or registered model: `python -m pipeline predict` / `make predict`.

Input: a folder of images (any format Pillow reads; sub-folders are searched too; Thumbs.db,
.DS_Store, __MACOSX/ and dot-files skipped; links and special files refused) or a CSV of numeric
feature columns (a first row of numbers only is data, not a header). Output: a CSV with one row
per input — the predicted class and its probability — written atomically. A folder is read,
predicted and written a chunk at a time (CHUNK_BYTES), so memory does not grow with its size.
The model is loaded by pipeline/training/loading.py: only the forms the pipeline logs
(`--allow-unsafe-model` with PIPELINE_ALLOW_UNSAFE_MODELS=1 for others).

Every call is a run `predict` in the MLflow experiment `predictions`: the model (name, version,
run id), the input count, and how far the images are from the model's training data (the drift
profile logged with its run: `drift_*` metrics and `drift.png`, docs/drift.md).
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import atomic, config, data
from pipeline.errors import UserError
from pipeline.training import loading

CHUNK_BYTES = 32 * 2**20  # images read, predicted and written at a time: about this many float32 bytes


def read_images(
    folder: Path, shape: tuple[int, ...], max_pixels: int = data.readers.MAX_PIXELS
) -> Iterator[tuple[list[str], np.ndarray]]:
    """Every image under `folder` (junk such as .DS_Store skipped; links and special files refused
    now, before any is read), as (names, images) a chunk at a time."""
    if len(shape) != 3:
        raise UserError(f"{folder}: the model expects inputs of shape {shape}, not images")
    files = data.regular_files(folder)
    if not files:
        raise UserError(f"{folder}: no images to predict")
    step = max(1, min(1024, CHUNK_BYTES // (4 * int(np.prod(shape)))))
    parts = (files[start : start + step] for start in range(0, len(files), step))
    return (
        (
            [data.shown(f.relative_to(folder)) for f in part],
            np.stack([data.read_image(f, shape, max_pixels) for f in part]),
        )
        for part in parts
    )


def read_table(path: Path, shape: tuple[int, ...]) -> tuple[list[str], np.ndarray]:
    """A CSV of numeric feature columns; a first row of numbers only is data (no header)."""
    frame = data.read_csv(path, header=None)
    if frame.empty:
        raise UserError(f"{path}: no rows to predict (only a header)")
    x = np.stack([data.numeric_column(frame, c, path, allow_missing=False) for c in frame.columns], axis=1)
    if x.shape[1:] != shape:
        raise UserError(f"{path}: {x.shape[1]} columns, but the model expects inputs of shape {shape}")
    return [f"line {line}" for line in frame.attrs["lines"]], x.astype(np.float32)


def image_cap() -> int:
    """retrain.max_image_pixels of the project's params.yaml (the default without one)."""
    try:
        return config.retrain_params(config.load_params()).max_image_pixels
    except UserError:
        return data.readers.MAX_PIXELS


def main(model_uri: str, input_path: str, output: str, allow_unsafe: bool = False) -> int:
    source, target = Path(input_path), Path(output)
    if not os.path.lexists(source):
        raise UserError(f"--input '{input_path}' does not exist")
    if target.is_dir():
        example = target / "predictions.csv"
        raise UserError(f"--output '{output}' is a folder; give a file name, e.g. {example}")
    max_pixels = image_cap()
    # an alias is read once: the version loaded is the version recorded
    model = loading.load(loading.pinned(model_uri), allow_unsafe)  # only what the pipeline logs
    shape = model.input_shape()
    chunks = read_images(source, shape, max_pixels) if source.is_dir() else iter([read_table(source, shape)])
    drift = Folded.of(model)
    with atomic.atomic_open(target, "w") as handle:  # renamed into place once every row is written
        count = write_predictions(handle, model, model_uri, chunks, drift)
    line = record(model, model_uri, input_path, count, drift)
    version = f" v{model.version}" if model.version else ""
    print(f"predict: {count} inputs → {output} (model {model_uri}{version})\n  {line}")
    return 0


def write_predictions(handle, model, model_uri: str, chunks, drift: Folded) -> int:
    """Predict each chunk, write its CSV rows and fold its drift statistics; returns the count."""
    from pipeline.monitoring import reference

    writer = csv.writer(handle)
    writer.writerow(["input", "predicted_class", "probability"])
    count = 0
    for names, x in chunks:
        proba = np.asarray(model.predict(x), dtype=np.float64)
        if proba.ndim != 2:
            raise UserError(f"model '{model_uri}' answers shape {proba.shape[1:]}, not class probabilities")
        class_names = model.class_names or [str(i) for i in range(proba.shape[1])]
        for name, k, row in zip(names, proba.argmax(axis=1), proba, strict=True):
            writer.writerow([name, class_names[k], f"{row[k]:.6f}"])
        drift.add(x, reference.probabilities(proba))
        count += len(names)
    return count


@dataclasses.dataclass
class Folded:
    """The inputs' drift statistics, folded a chunk at a time (or why they are not measured)."""

    profile: Any  # the model's image drift profile, or None
    why: str = ""
    stats: Any = None  # ImageStats of the chunks so far

    @classmethod
    def of(cls, model) -> Folded:
        from pipeline.monitoring import reference

        try:
            profile = reference.of_model(model)
            if profile is None or profile.KIND != "images":
                raise UserError(f"no image drift profile in the model's run {model.run_id or '(none)'}")
        except UserError as exc:
            return cls(None, str(exc))
        return cls(profile)

    def add(self, x: np.ndarray, probabilities) -> None:
        if self.profile is None:
            return
        try:
            part = self.profile.stats(x, probabilities)
        except UserError as exc:
            self.profile, self.why = None, str(exc)
            return
        self.stats = part if self.stats is None else self.stats.merge(part)


def record(model, uri: str, input_path: str, count: int, drift: Folded) -> str:
    """The call as a run `predict` in the MLflow experiment `predictions`: which model answered, how
    many inputs, and their drift from the model's training data; returns the drift line."""
    import mlflow

    from pipeline import secrets
    from pipeline.training import tracking

    tags = {
        "model.uri": secrets.redact(uri),
        "model.name": model.name,
        "model.version": model.version,
        "model.run_id": model.run_id,
        "predict.input": input_path[:500],
    }
    with tracking.start_run("predictions", "predict", tags):
        mlflow.log_metric("predict_inputs", count)
        if drift.profile is None or drift.stats is None:
            mlflow.set_tag("drift.profile", drift.why[:500])
            return f"drift: not measured ({drift.why})"
        compared = drift.profile.compare(drift.stats)
        compared.log("drift.png")
        return compared.line()
