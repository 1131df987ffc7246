"""Batch prediction with a logged or registered model: `python -m pipeline predict` / `make predict`.

Input: a folder of images (any format Pillow reads; sub-folders are searched too; Thumbs.db,
.DS_Store, __MACOSX/ and dot-files skipped; links and special files refused) or a CSV of numeric
feature columns (a first row of numbers only is data, not a header). Output: a CSV with one row
per input — the predicted class and its probability — written atomically.
The model is loaded by pipeline/training/loading.py: only the forms the pipeline logs
(`--allow-unsafe-model` with PIPELINE_ALLOW_UNSAFE_MODELS=1 for others).

Every call is a run `predict` in the MLflow experiment `predictions`: the model (name, version,
run id), the input count, and how far the images are from the model's training data (the drift
profile logged with its run: `drift_*` metrics and `drift.png`, docs/drift.md).
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from pipeline import atomic, config, data
from pipeline.errors import UserError
from pipeline.training import loading


def read_images(
    folder: Path, shape: tuple[int, ...], max_pixels: int = data.readers.MAX_PIXELS
) -> tuple[list[str], np.ndarray]:
    """Every image under `folder` (junk such as .DS_Store skipped; links and special files refused)."""
    if len(shape) != 3:
        raise UserError(f"{folder}: the model expects inputs of shape {shape}, not images")
    files = data.regular_files(folder)
    if not files:
        raise UserError(f"{folder}: no images to predict")
    names = [data.shown(f.relative_to(folder)) for f in files]
    return names, np.stack([data.read_image(f, shape, max_pixels) for f in files])


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
    names, x = read_images(source, shape, max_pixels) if source.is_dir() else read_table(source, shape)
    proba = np.asarray(model.predict(x), dtype=np.float64)
    if proba.ndim != 2:
        raise UserError(f"model '{model_uri}' answers shape {proba.shape[1:]}, not class probabilities")
    class_names = model.class_names or [str(i) for i in range(proba.shape[1])]
    predicted = proba.argmax(axis=1)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["input", "predicted_class", "probability"])
    for name, k, row in zip(names, predicted, proba, strict=True):
        writer.writerow([name, class_names[k], f"{row[k]:.6f}"])
    atomic.write_text(target, buffer.getvalue())
    drift = record(model, model_uri, input_path, x, proba)
    version = f" v{model.version}" if model.version else ""
    print(f"predict: {len(names)} inputs → {output} (model {model_uri}{version})\n  {drift}")
    return 0


def record(model, uri: str, input_path: str, x: np.ndarray, proba: np.ndarray) -> str:
    """The call as a run `predict` in the MLflow experiment `predictions`: which model answered, how
    many inputs, and their drift from the model's training data; returns the drift line."""
    import mlflow

    from pipeline import secrets
    from pipeline.monitoring import reference
    from pipeline.training import tracking

    tags = {
        "model.uri": secrets.redact(uri),
        "model.name": model.name,
        "model.version": model.version,
        "model.run_id": model.run_id,
        "predict.input": input_path[:500],
    }
    with tracking.start_run("predictions", "predict", tags):
        mlflow.log_metric("predict_inputs", len(x))
        try:
            profile = reference.of_model(model)
            if profile is None or profile.KIND != "images":
                raise UserError(f"no image drift profile in the model's run {model.run_id or '(none)'}")
            drift = profile.compare(profile.stats(x, reference.probabilities(proba)))
        except UserError as exc:
            mlflow.set_tag("drift.profile", str(exc)[:500])
            return f"drift: not measured ({exc})"
        drift.log("drift.png")
        return drift.line()
