"""An image classifier as MLflow serves it (models-from-code): records in, a class and its
probabilities out.

A record is either {"image": "<base64 PNG or JPEG bytes>"} (a data: URL works too), decoded with
the pipeline's image rules (pipeline/images.py, logged beside this file: size checked from the
header, converted to grey or RGB, resized to the model's input, scaled to [0, 1]), or
{"pixels": [...]}: the model's input values themselves (height x width x channels numbers in [0, 1],
flat or nested). The answer per record: {"class": "<name>", "probabilities": {"<name>": p, ...}}.

The model's config (MLmodel) holds what this file needs: class_names, input_shape, max_pixels,
max_bytes, formats. Bad records raise MLflow's INVALID_PARAMETER_VALUE with one line naming the
record, which MLflow's scoring protocol answers with a 400.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import math
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException


def invalid(message: str) -> MlflowException:
    return MlflowException.invalid_parameter_value(message)


def load_module(name: str, path: str):
    """A Python file logged as one of the model's artifacts (the image rules), loaded by path:
    nothing on sys.path can stand in for it."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class ImageClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import keras

        config = context.model_config
        self.class_names = [str(name) for name in config["class_names"]]
        self.shape = tuple(int(d) for d in config["input_shape"])
        self.max_pixels, self.max_bytes = int(config["max_pixels"]), int(config["max_bytes"])
        self.formats = tuple(config["formats"])
        self.images = load_module("served_image_rules", context.artifacts["images"])
        self.model = keras.saving.load_model(context.artifacts["keras_model"], compile=False, safe_mode=True)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> list[dict]:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if len(frame) == 0:  # MLflow drops the columns its signature does not know
            raise invalid(
                f"no records with 'image' (base64 PNG or JPEG) or 'pixels' ({math.prod(self.shape)} values)"
            )
        x = np.stack([self.record(i, row) for i, row in enumerate(frame.to_dict("records"))])
        proba = np.asarray(self.model.predict(x, verbose=0), dtype=np.float64)
        proba /= proba.sum(axis=1, keepdims=True)  # float32 softmax rows sum to 1 ± 1e-7
        return [
            {
                "class": self.class_names[int(row.argmax())],
                "probabilities": {name: float(p) for name, p in zip(self.class_names, row, strict=True)},
            }
            for row in proba
        ]

    def record(self, i: int, row: dict) -> np.ndarray:
        image, pixels = row.get("image"), row.get("pixels")
        if isinstance(image, str):
            return self.decode(i, image)
        if not missing(image):
            raise invalid(f"record {i}: 'image' must be a base64 string, not {type(image).__name__}")
        if missing(pixels):
            size = math.prod(self.shape)
            raise invalid(f"record {i}: give 'image' (base64 PNG or JPEG) or 'pixels' ({size} values)")
        try:
            values = np.asarray(pixels, dtype=np.float32)
        except (TypeError, ValueError):
            raise invalid(f"record {i}: 'pixels' must be numbers (a flat or nested list)") from None
        if values.size != math.prod(self.shape) or not np.isfinite(values).all():
            raise invalid(
                f"record {i}: 'pixels' must be {math.prod(self.shape)} finite numbers "
                f"(shape {list(self.shape)}), got {values.size}"
            )
        return values.reshape(self.shape)

    def decode(self, i: int, text: str) -> np.ndarray:
        if len(self.shape) != 3:
            raise invalid(f"record {i}: this model reads {math.prod(self.shape)} 'pixels' values, not images")
        text = text.split(",", 1)[1] if text.startswith("data:") else text  # a data: URL
        if len(text) > 4 * (self.max_bytes // 3 + 1):
            raise invalid(f"record {i}: 'image' is larger than {self.max_bytes} bytes")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise invalid(f"record {i}: 'image' is not valid base64") from None
        try:
            return self.images.decode(data, self.shape, self.max_pixels, self.formats)
        except self.images.ImageError as exc:
            raise invalid(f"record {i}: 'image' {exc}") from None


mlflow.models.set_model(ImageClassifier())
