"""Forecasting objective: windows of a series, a loss in ppm, and the same test metrics for every family.

Every family sees the same thing: a window of the last `lookback` levels, shaped (lookback, 1), and
forecasts the next `horizon` levels, shaped (horizon,). Baselines and networks therefore compare
directly, and every logged model maps a window of levels to forecast levels.

Windows (keras.utils.timeseries_dataset_from_array, stride 1): a window belongs to the split its
*targets* fall in, so no target is shared between splits. Validation and test windows may take
their inputs from the end of the earlier split (the history a forecaster would have had at that
time); these are inputs, never targets, so nothing of the test period leaks into training.
Scaling is fitted on the training split only: the mean and standard deviation of its weekly
differences (`ForecastSpec.diff_mean`, `ForecastSpec.diff_std`), which the networks use to scale their inputs.

Metrics, in the series' unit (ppm for CO2), over every test window and every step ahead:
  test_rmse, test_mae   root mean squared / mean absolute error
  test_mase             mean absolute scaled error: test MAE divided by the in-sample MAE of the
                        seasonal-naive forecast (y_t = y_{t-season}) on the training split
                        (Hyndman & Koehler, 2006): below 1 beats seasonal-naive's training error
validation_rmse and validation_mae are the same on the validation split: tune on these, not test.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline import data, inference
from pipeline.errors import UserError
from pipeline.objectives import Objective, Served, limit_rows
from pipeline.objectives.served import forecaster
from pipeline.specs import ForecastSpec


def keras_metrics() -> list:
    """A fresh metric object per compile (a Keras metric keeps its state)."""
    import keras

    return ["mae", keras.metrics.RootMeanSquaredError(name="rmse")]


@dataclasses.dataclass(frozen=True)
class Params:
    """The `objective:` section, shared by every run of a forecasting task."""

    lookback: int  # weeks of history each forecast sees
    horizon: int  # weeks ahead forecast at once (multi-step output)
    season: int  # period of the seasonal-naive forecast and of the MASE scale (52 weeks)


@dataclasses.dataclass
class Splits:
    x_train: np.ndarray  # (windows, lookback, 1) levels
    y_train: np.ndarray  # (windows, horizon) levels that follow each window
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    dates_test: np.ndarray  # (windows, horizon) the date of each test target
    mase_scale: float  # in-sample seasonal-naive MAE on the training split
    season: int
    class_names: list[str] | None = None  # forecasts are levels, not classes

    @property
    def validation(self):
        return (self.x_val, self.y_val) if len(self.x_val) else None


def check_params(params: Params) -> None:
    for key in ("lookback", "horizon", "season"):
        value = getattr(params, key)
        if value < 1:
            raise UserError(f"objective.{key} must be at least 1 (got {value})")


def make_windows(values: np.ndarray, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Every run of lookback + horizon consecutive values, stride 1: (inputs, targets)."""
    import keras

    count = len(values) - lookback - horizon + 1
    windows = keras.utils.timeseries_dataset_from_array(
        values.astype(np.float32), None, sequence_length=lookback + horizon, batch_size=count
    )
    batch = np.asarray(next(iter(windows)))
    return batch[:, :lookback, np.newaxis], batch[:, lookback:]


def split_windows(dataset, params: Params) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{split: (x, y, target dates)}; val/test inputs may start in the split before (targets never)."""
    lookback, horizon = params.lookback, params.horizon
    # `recent`: weeks `retrain` appended after the test period (training targets; see data.merge_batches)
    segments = data.series.segments(dataset.arrays)
    dates, values = whole_series(dataset)
    where = f"dataset '{dataset.name}' ({dataset.manifest.source_detail})"
    start, out = 0, {}
    for split in segments:
        end = start + len(dataset.arrays[f"values_{split}"])
        first = 0 if split == "train" else max(start - lookback, 0)  # inputs from the split before
        # no validation split (val_fraction: 0), or too few new weeks for one target window yet
        if (split == "val" and end == start) or (split == "recent" and end - first < lookback + horizon):
            out[split] = (np.zeros((0, lookback, 1), np.float32), np.zeros((0, horizon), np.float32), None)
            start = end
            continue
        if end - first < lookback + horizon:
            raise UserError(
                f"{where}: the {split} split has {end - start} points, too few for "
                f"lookback {lookback} + horizon {horizon} (objective.lookback, objective.horizon)"
            )
        x, y = make_windows(values[first:end], lookback, horizon)
        target_dates = np.lib.stride_tricks.sliding_window_view(dates[first + lookback : end], horizon)
        out[split] = (x, y, target_dates)
        start = end
    return out


def seasonal_naive_scale(train_values: np.ndarray, season: int, where: str) -> float:
    if len(train_values) <= season:
        raise UserError(f"{where}: MASE needs more than objective.season = {season} training points")
    return float(np.mean(np.abs(train_values[season:] - train_values[:-season])))


def prepare(dataset, train, params: Params) -> tuple[Splits, ForecastSpec]:
    """Windows for the model; `train.limit` keeps only the newest N training windows of the original
    series (the `recent` weeks' windows, from retrain batches, are always kept)."""
    if dataset.kind != "series":
        raise UserError(f"dataset '{dataset.name}' is {dataset.kind}; forecasting needs a series")
    check_params(params)
    windows = split_windows(dataset, params)
    (x_train, y_train, _), (x_val, y_val, _), (x_test, y_test, dates_test) = (
        windows[s] for s in ("train", "val", "test")
    )
    if train.limit is not None:  # the newest N windows of the original series
        first = len(y_train) - len(limit_rows(len(y_train), train.limit))
        x_train, y_train = x_train[first:], y_train[first:]
    if "recent" in windows:  # the new weeks' windows, appended last: `train.limit` never drops them
        x_train = np.concatenate([x_train, windows["recent"][0]])
        y_train = np.concatenate([y_train, windows["recent"][1]])
    values_train = dataset.arrays["values_train"]
    diffs = np.diff(values_train)  # scaling statistics: the training split only
    scale = seasonal_naive_scale(values_train, params.season, f"dataset '{dataset.name}'")
    splits = Splits(x_train, y_train, x_val, y_val, x_test, y_test, dates_test, scale, params.season)
    spec = ForecastSpec(
        params.lookback,
        params.horizon,
        params.season,
        float(diffs.mean()),
        float(diffs.std()) or 1.0,  # a constant series: nothing to scale
        train.seed,
    )
    return splits, spec


def predict(model, x: np.ndarray) -> np.ndarray:
    """Forecast levels, (windows, horizon), from a Keras model or a baseline with .predict(x)."""
    import keras

    if isinstance(model, keras.Model):
        return np.asarray(inference.predict(model, x), dtype=np.float64)
    return np.asarray(model.predict(x), dtype=np.float64)


def errors_by_horizon(y: np.ndarray, forecast: np.ndarray, mase_scale: float) -> str:
    """CSV: one row per step ahead, then all steps together."""
    error = forecast - y
    rows = ["horizon,rmse,mae,mase"]
    for k in range(y.shape[1]):
        e = error[:, k]
        mae = np.abs(e).mean()
        rows.append(f"{k + 1},{np.sqrt((e**2).mean()):.4f},{mae:.4f},{mae / mase_scale:.4f}")
    mae = np.abs(error).mean()
    rows.append(f"all,{np.sqrt((error**2).mean()):.4f},{mae:.4f},{mae / mase_scale:.4f}")
    return "\n".join(rows) + "\n"


def evaluate(model, splits: Splits, params: Params | None = None) -> tuple[dict[str, float], dict]:
    """Test (and validation) errors in the series' unit, the per-horizon table and the forecast plot."""
    from pipeline import plots

    forecast = predict(model, splits.x_test)
    error = forecast - splits.y_test
    metrics = {
        "test_rmse": float(np.sqrt(np.mean(error**2))),
        "test_mae": float(np.mean(np.abs(error))),
        "test_mase": float(np.mean(np.abs(error)) / splits.mase_scale),
    }
    if len(splits.x_val):
        val_error = predict(model, splits.x_val) - splits.y_val
        metrics["validation_rmse"] = float(np.sqrt(np.mean(val_error**2)))
        metrics["validation_mae"] = float(np.mean(np.abs(val_error)))
    artifacts = {
        "errors_by_horizon.csv": errors_by_horizon(splits.y_test, forecast, splits.mase_scale),
        "forecast.png": plots.forecast(splits.dates_test, splits.y_test, forecast, metrics["test_rmse"]),
    }
    return metrics, artifacts


def whole_series(dataset) -> tuple[np.ndarray, np.ndarray]:
    """(dates, values) of every segment in order: train, val, test, then retrain's recent weeks."""
    segments = data.series.segments(dataset.arrays)
    dates = np.concatenate([dataset.arrays[f"dates_{s}"] for s in segments])
    return dates, np.concatenate([dataset.arrays[f"values_{s}"] for s in segments])


def served_config(splits: Splits, dataset) -> dict:
    """What the served forecaster needs: window sizes, the series' step and how its gaps are filled."""
    dates, _ = whole_series(dataset)
    return {
        "lookback": int(splits.x_test.shape[1]),
        "horizon": int(splits.y_test.shape[1]),
        "freq": data.series.frequency(dates, dataset.name),
        "fill": dataset.manifest.fill or "time",
    }


def served_example(splits: Splits, dataset) -> list[dict]:
    """The history the first test window reads: `lookback` dated values."""
    dates, values = whole_series(dataset)
    end = int(np.searchsorted(dates, splits.dates_test[0, 0]))
    history = slice(end - splits.x_test.shape[1], end)
    return [{"date": str(d), "value": float(v)} for d, v in zip(dates[history], values[history], strict=True)]


def served_signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    # both are needed; not `required` here, so the model's own one-line message names what is missing
    history = Schema([ColSpec(AnyType(), "date", required=False), ColSpec("double", "value", required=False)])
    forecast = Schema([ColSpec("string", "date"), ColSpec("double", "value")])
    return ModelSignature(history, forecast)


def problem(dataset, params: Params) -> str:
    """Runs forecasting the same series the same number of steps ahead are ranked together."""
    return f"{dataset.name}: {params.horizon} steps ahead"


OBJECTIVE = Objective(
    name="forecasting",
    loss="mse",  # on forecast levels, so the loss is in ppm²
    headline="test_rmse",
    directions={"rmse": "min", "mae": "min", "mase": "min", "loss": "min"},
    prepare=prepare,
    evaluate=evaluate,
    predict=predict,
    params=Params,
    keras_metrics=keras_metrics,
    problem=problem,
    # a registered forecaster takes {"date", "value"} records, answers the next horizon dates and values
    served=Served(code=forecaster, config=served_config, example=served_example, signature=served_signature),
)
