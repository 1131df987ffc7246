"""What a run leaves behind besides metrics: the MLflow model (one function per form), the
model's summary and per-layer parameter table, and the objective's figures and tables.

A model is logged in one of the forms pipeline/training/loading.py loads back, nothing pickled:
the Keras flavour, the scikit-learn flavour in skops format, or MLflow models-from-code (a family's
own module, or a registered model wrapped as its objective serves it) whose files' sha256 the
model's metadata records under `pipeline`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import keras
import mlflow
import numpy as np
from matplotlib.figure import Figure

from pipeline import plots
from pipeline.models import Family, Logged
from pipeline.objectives import Served

# Types our scikit-learn baselines use that skops does not trust by default (all from numpy/sklearn).
SKOPS_TRUSTED = [
    "numpy.reshape",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
]


def layer_table(model, total: int | None = None) -> str:
    """CSV of every layer's parameters (Conv2D/Dense rows also show the formula's count), then a
    `total` row: the run's `model_params`. An estimator has one row: its total, as its family counts it."""
    rows = ["layer,type,output_shape,params,expected_params"]
    if not isinstance(model, keras.Model):
        return "\n".join([*rows, f"total,{type(model).__name__},,{total},"]) + "\n"
    for layer in model.layers:
        expected = ""
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            in_channels = layer.input.shape[-1]
            expected = (kh * kw * in_channels + int(layer.use_bias)) * layer.filters
        elif isinstance(layer, keras.layers.Dense):
            expected = (layer.input.shape[-1] + int(layer.use_bias)) * layer.units
        shape = "x".join(str(d) for d in layer.output.shape[1:])
        rows.append(f"{layer.name},{type(layer).__name__},{shape},{layer.count_params()},{expected}")
    rows.append(f"total,{type(model).__name__},,{model.count_params() if total is None else total},")
    return "\n".join(rows) + "\n"


def model_summary(model) -> str:
    if isinstance(model, keras.Model):
        lines: list[str] = []
        model.summary(print_fn=lambda line, *a, **k: lines.append(line), line_length=100)
        return "\n".join(lines) + "\n"
    return f"{model!r}\n"


# the model metadata's key for what the pipeline records about how it logged the model
PIPELINE_KEY = "pipeline"


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def code_record(module: ModuleType) -> dict[str, str]:
    """What the loader checks a logged code file against: its module and its sha256."""
    return {"module": module.__name__, "sha256": sha256(module.__file__)}


def requirements(*packages: str) -> list[str]:
    """Pinned pip requirements: the versions installed here."""
    return [f"{name}=={installed(name)}" for name in packages]


def installed(package: str) -> str:
    return importlib.metadata.version(package)


def log_model(family: Family, model, x_example: np.ndarray, output: np.ndarray, metadata: dict):
    """Log the trained model as the run's MLflow model `model`, as its family says; returns ModelInfo.

    `output` is the signature's output for `x_example` (what the logged model returns).
    """
    signature = mlflow.models.infer_signature(x_example, output)
    logged = family.logged
    if logged.flavor == "keras":
        # explicit requirements: MLflow's inference would re-import the model in a subprocess
        return mlflow.keras.log_model(
            model,
            name="model",
            signature=signature,
            metadata=metadata,
            pip_requirements=requirements("tensorflow", "keras"),
        )
    if logged.flavor == "code":
        return log_code(logged, model, x_example, signature, metadata)
    return log_sklearn(model, signature, metadata, logged.trusted_types, logged.pyfunc_method)


def log_sklearn(model, signature, metadata: dict, trusted: tuple[str, ...], method: str):
    """A scikit-learn model (skops format) with pinned requirements; returns MLflow's ModelInfo."""
    return mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        metadata=metadata,
        pip_requirements=requirements("scikit-learn", "numpy"),
        skops_trusted_types=[*SKOPS_TRUSTED, *trusted],
        pyfunc_predict_fn=method,
    )


def log_code(logged: Logged, model, x_example: np.ndarray, signature, metadata: dict):
    """MLflow models-from-code: the family's module file, the fitted state as its config, files it
    reads as artifacts; the file's sha256 in the metadata (nothing is pickled)."""
    code = Path(logged.code.__file__)
    with tempfile.TemporaryDirectory() as folder:
        files = logged.files(model, Path(folder)) if logged.files else {}
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            model_config=logged.config(model) if logged.config else None,
            artifacts={name: str(path) for name, path in files.items()} or None,
            signature=signature,
            input_example=x_example[:1],
            metadata={**metadata, PIPELINE_KEY: {"code": {code.name: code_record(logged.code)}}},
            pip_requirements=requirements("mlflow", "numpy", *logged.requirements),
        )


def log_served(served: Served, model, splits, dataset, metadata: dict):
    """A registered Keras model as its objective serves it: models-from-code around the `.keras`
    file (artifact `keras_model`), with the helper files the code loads, all hashed in the metadata."""
    code = Path(served.code.__file__)
    records = {code.name: code_record(served.code)}
    records |= {f"artifacts/{Path(m.__file__).name}": code_record(m) for m in served.helpers.values()}
    with tempfile.TemporaryDirectory() as folder:
        keras_file = Path(folder) / "model.keras"
        # the same layers and weights without the optimizer's state (a third of the size);
        # keras.models.clone_model would compile the copy, optimizer included
        inference = type(model).from_config(model.get_config())
        inference.set_weights(model.get_weights())
        inference.save(keras_file)
        artifacts = {"keras_model": str(keras_file), **{k: m.__file__ for k, m in served.helpers.items()}}
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            model_config=served.config(splits, dataset),
            artifacts=artifacts,
            signature=served.signature(),
            input_example=served.example(splits, dataset),
            metadata={**metadata, PIPELINE_KEY: {"code": records}},
            pip_requirements=requirements(
                "mlflow", "numpy", "pandas", "pillow", "pillow-heif", "tensorflow", "keras"
            ),
        )


def log_artifacts(found: Mapping[str, str | Figure], label: str) -> None:
    """A run's tables and reports as text files, its figures as PNGs titled with `label` (the run)."""
    for name, item in found.items():
        if isinstance(item, str):
            mlflow.log_text(item, name)
        else:
            plots.title(item, label)
            mlflow.log_figure(item, name)
