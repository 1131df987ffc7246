"""Batch prediction with a logged or registered model: `python -m pipeline predict` / `make predict`.

Input: a folder of images (any format Pillow reads; sub-folders are searched too; Thumbs.db,
.DS_Store, __MACOSX/ and dot-files skipped; links and special files refused) or a CSV of numeric
feature columns (a first row of numbers only is data, not a header). Output: a CSV with one row
per input — the predicted class and its probability — written atomically.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from pipeline import atomic, config, data
from pipeline.errors import UserError
from pipeline.training import tracking


def load_model(uri: str):
    import mlflow
    from mlflow.exceptions import MlflowException

    import pipeline.models.layers  # noqa: F401 - registers the package's Keras layers (min pooling)

    tracking.configure()
    try:
        return mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as exc:
        reason = str(exc).splitlines()[0][:200]
        raise UserError(
            f"model '{uri}' could not be loaded from {tracking.tracking_uri()}: {reason}"
        ) from None


def input_shape(model) -> tuple[int, ...]:
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.is_tensor_spec():
        raise UserError("the model has no tensor input signature; cannot tell what input it expects")
    return tuple(schema.inputs[0].shape[1:])


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


def main(model_uri: str, input_path: str, output: str) -> int:
    source, target = Path(input_path), Path(output)
    if not os.path.lexists(source):
        raise UserError(f"--input '{input_path}' does not exist")
    if target.is_dir():
        example = target / "predictions.csv"
        raise UserError(f"--output '{output}' is a folder; give a file name, e.g. {example}")
    max_pixels = image_cap()
    model = load_model(model_uri)
    shape = input_shape(model)
    names, x = read_images(source, shape, max_pixels) if source.is_dir() else read_table(source, shape)
    proba = np.asarray(model.predict(x), dtype=np.float64)
    class_names = (model.metadata.metadata or {}).get("class_names") or [
        str(i) for i in range(proba.shape[1])
    ]
    predicted = proba.argmax(axis=1)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["input", "predicted_class", "probability"])
    for name, k, row in zip(names, predicted, proba, strict=True):
        writer.writerow([name, class_names[k], f"{row[k]:.6f}"])
    atomic.write_text(target, buffer.getvalue())
    print(f"predict: {len(names)} inputs → {output} (model {model_uri})")
    return 0
