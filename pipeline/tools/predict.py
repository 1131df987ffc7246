"""Batch prediction with a logged or registered model: `python -m pipeline predict` / `make predict`.

Input: a folder of images (any format Pillow reads; sub-folders are searched too) or a CSV of
numeric feature columns. Output: a CSV with one row per input — the predicted class and its
probability — written atomically.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from pipeline import atomic, data
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


def read_images(folder: Path, shape: tuple[int, ...]) -> tuple[list[str], np.ndarray]:
    if len(shape) != 3:
        raise UserError(f"{folder}: the model expects inputs of shape {shape}, not images")
    files = sorted(
        f
        for f in folder.rglob("*")
        if f.is_file() and not any(p.startswith(".") for p in f.relative_to(folder).parts)
    )
    if not files:
        raise UserError(f"{folder}: no images to predict")
    return [str(f.relative_to(folder)) for f in files], np.stack([data.read_image(f, shape) for f in files])


def read_table(path: Path, shape: tuple[int, ...]) -> tuple[list[str], np.ndarray]:
    frame = data.read_csv(path)
    x = np.stack([data.numeric_column(frame, c, path, allow_missing=False) for c in frame.columns], axis=1)
    if x.shape[1:] != shape:
        raise UserError(f"{path}: {x.shape[1]} columns, but the model expects inputs of shape {shape}")
    return [f"row {i + 1}" for i in range(len(x))], x.astype(np.float32)


def main(model_uri: str, input_path: str, output: str) -> int:
    source = Path(input_path)
    if not source.exists():
        raise UserError(f"--input '{input_path}' does not exist")
    model = load_model(model_uri)
    shape = input_shape(model)
    names, x = read_images(source, shape) if source.is_dir() else read_table(source, shape)
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
    atomic.write_text(Path(output), buffer.getvalue())
    print(f"predict: {len(names)} inputs → {output} (model {model_uri})")
    return 0
