"""Regression: feature rows in, one number out, scored by its error; for one input, a fitted curve.

Used by `function-approximation`: samples of a 1-D function with noise (the `function` data
source) and networks of different shapes fitting it. Every family is scored the same way:

  test_rmse, test_mae         on the noisy test targets (the noise's standard deviation is the
                              floor no model can beat)
  validation_rmse             the same on the validation split: tune on this, not on test

Artifacts, for a 1-D input: fitted_curve.png (training points, the true function, the model's
curve) and fitted_curve.csv (x, true, predicted on an even grid: the report overlays every run's).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline import inference
from pipeline.errors import UserError
from pipeline.objectives import Objective
from pipeline.specs import RegressionSpec


@dataclasses.dataclass
class Splits:
    x_train: np.ndarray  # (n, features)
    y_train: np.ndarray  # (n,)
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    curve_x: np.ndarray | None = None  # the noiseless function on a grid, when the source has it
    curve_y: np.ndarray | None = None
    class_names: list[str] | None = None  # numbers, not classes

    @property
    def validation(self):
        return (self.x_val, self.y_val) if len(self.x_val) else None


def prepare(dataset, train, params=None) -> tuple[Splits, RegressionSpec]:
    """Arrays for the model; `train.limit` keeps only the first N training examples."""
    if dataset.kind != "regression":
        raise UserError(
            f"dataset '{dataset.name}' is a {dataset.kind}; regression needs a regression dataset"
        )
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        dataset.examples(s) for s in ("train", "val", "test")
    )
    if train.limit is not None:
        if train.limit < 1:
            raise UserError(f"train.limit must be at least 1 (got {train.limit}), e.g. 300, or null for all")
        x_train, y_train = x_train[: train.limit], y_train[: train.limit]  # already shuffled
    curve = (dataset.arrays.get("curve_x"), dataset.arrays.get("curve_y"))
    splits = Splits(x_train, y_train, x_val, y_val, x_test, y_test, *curve)
    return splits, RegressionSpec(tuple(x_train.shape[1:]), train.seed)


def predict(model, x: np.ndarray) -> np.ndarray:
    """One number per row, (n,), from a Keras model or an estimator with .predict(x)."""
    import keras

    out = inference.predict(model, x) if isinstance(model, keras.Model) else model.predict(x)
    return np.asarray(out, dtype=np.float64).reshape(len(x))


def rmse(error: np.ndarray) -> float:
    return float(np.sqrt(np.mean(error**2)))


def evaluate(model, splits: Splits, params=None) -> tuple[dict[str, float], dict]:
    from pipeline import plots

    error = predict(model, splits.x_test) - splits.y_test
    metrics = {"test_rmse": rmse(error), "test_mae": float(np.mean(np.abs(error)))}
    if len(splits.x_val):
        metrics["validation_rmse"] = rmse(predict(model, splits.x_val) - splits.y_val)
    artifacts: dict = {}
    if splits.curve_x is not None and splits.x_test.shape[1:] == (1,):
        grid = predict(model, splits.curve_x.reshape(-1, 1))
        artifacts["fitted_curve.png"] = plots.fitted_curve(
            (splits.x_train[:, 0], splits.y_train),
            (splits.curve_x, splits.curve_y),
            splits.curve_x,
            grid,
            metrics["test_rmse"],
        )
        rows = [
            f"{x:.6g},{t:.6g},{p:.6g}" for x, t, p in zip(splits.curve_x, splits.curve_y, grid, strict=True)
        ]
        artifacts["fitted_curve.csv"] = "\n".join(["x,true,predicted", *rows]) + "\n"
    return metrics, artifacts


def keras_metrics() -> list:
    """A fresh metric object per compile (a Keras metric keeps its state)."""
    import keras

    return [keras.metrics.RootMeanSquaredError(name="rmse")]


OBJECTIVE = Objective(
    name="regression",
    loss="mse",
    headline="test_rmse",
    directions={"rmse": "min", "mae": "min", "loss": "min"},
    prepare=prepare,
    evaluate=evaluate,
    predict=predict,
    keras_metrics=keras_metrics,
)
