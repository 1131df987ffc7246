"""What a run leaves behind besides metrics: the MLflow model (one function per flavour), the
model's summary and per-layer parameter table, and the objective's figures and tables.
"""

from __future__ import annotations

import keras
import mlflow
import numpy as np
import tensorflow as tf

from pipeline import plots
from pipeline.models import Family

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


def log_model(family: Family, model, x_example: np.ndarray, output: np.ndarray, metadata: dict | None):
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
            pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"],
        )
    if logged.flavor == "pyfunc":
        return log_pyfunc(logged.wrap(model), x_example, signature, metadata)
    return log_sklearn(model, signature, metadata, logged.trusted_types, logged.pyfunc_method)


def log_sklearn(model, signature, metadata: dict | None, trusted: tuple[str, ...], method: str):
    """A scikit-learn model (skops format) with pinned requirements; returns MLflow's ModelInfo."""
    import sklearn

    return mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        metadata=metadata,
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}"],
        skops_trusted_types=[*SKOPS_TRUSTED, *trusted],
        pyfunc_predict_fn=method,
    )


def log_pyfunc(python_model, x_example: np.ndarray, signature, metadata: dict | None):
    """A baseline as an MLflow pyfunc (e.g. windows of levels in, forecast levels out)."""
    import sys

    import cloudpickle
    import statsmodels

    # pickle the model's module by value: loading the model needs numpy/statsmodels, not this package
    module = sys.modules[type(python_model).__module__]
    cloudpickle.register_pickle_by_value(module)
    try:
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=python_model,
            signature=signature,
            input_example=x_example[:1],
            metadata=metadata,
            pip_requirements=[f"numpy=={np.__version__}", f"statsmodels=={statsmodels.__version__}"],
        )
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def label_figure(figure, label: str) -> None:
    """Title a figure with the run it belongs to (a report shows figures of many runs)."""
    existing = figure.get_suptitle()
    figure.suptitle(f"{label} · {existing}" if existing else label, fontsize=10)
    figure.tight_layout()


def log_artifacts(artifacts: dict, label: str) -> None:
    """Texts as text files, figures as PNGs titled with `label` (the run), then closed."""
    for name, item in artifacts.items():
        if isinstance(item, str):
            mlflow.log_text(item, name)
        else:  # a matplotlib figure
            label_figure(item, label)
            mlflow.log_figure(item, name)
            plots.plt.close(item)
