"""A forecaster as MLflow serves it (models-from-code): a history of dated values in, the next
`horizon` values with their dates out.

Input: records {"date": "2001-12-29", "value": 371.2}, one per observation, in any order. The model
reads the last `lookback` steps of the series' frequency (`freq`, e.g. W-SAT: weekly on Saturdays)
ending at the newest date; a missing step inside that span is filled as the training data was
(`fill`: time or linear interpolation, or ffill). Output: `horizon` records {"date", "value"}, the
dates continuing the history at the same frequency.

The model's config (MLmodel) holds lookback, horizon, freq and fill. Bad input raises MLflow's
INVALID_PARAMETER_VALUE with one line, which MLflow's scoring protocol answers with a 400.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException


def invalid(message: str) -> MlflowException:
    return MlflowException.invalid_parameter_value(message)


def history(frame: pd.DataFrame) -> pd.Series:
    """The records as a series on their dates: sorted, each date once, every value a finite number."""
    for column in ("date", "value"):
        if column not in frame.columns:
            raise invalid(f"every record needs 'date' and 'value' (missing '{column}')")
    dates = pd.to_datetime(frame["date"].astype(str), errors="coerce", utc=True)
    values = pd.to_numeric(frame["value"], errors="coerce")
    for i in range(len(frame)):
        if pd.isna(dates.iloc[i]):
            raise invalid(f"record {i}: 'date' {frame['date'].iloc[i]!r} is not a date")
        if not np.isfinite(values.iloc[i]):
            raise invalid(f"record {i}: 'value' {frame['value'].iloc[i]} is not a finite number")
    index = pd.DatetimeIndex(dates.dt.tz_localize(None).dt.normalize())
    series = pd.Series(values.to_numpy(np.float64), index=index).sort_index()
    if series.index.has_duplicates:
        raise invalid(f"date {series.index[series.index.duplicated()][0].date()} is given twice")
    return series


class Forecaster(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import keras

        config = context.model_config
        self.lookback, self.horizon = int(config["lookback"]), int(config["horizon"])
        self.freq, self.fill = str(config["freq"]), str(config["fill"])
        self.step = pd.tseries.frequencies.to_offset(self.freq)
        self.model = keras.saving.load_model(context.artifacts["keras_model"], compile=False, safe_mode=True)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        if len(frame) == 0:
            raise invalid(f"no history: give at least {self.lookback} dated values")
        window, last = self.window(history(frame))
        forecast = np.asarray(self.model.predict(window, verbose=0), dtype=np.float64)[0]
        dates = pd.date_range(last, periods=self.horizon + 1, freq=self.step)[1:]
        return pd.DataFrame({"date": [d.date().isoformat() for d in dates], "value": forecast})

    def window(self, series: pd.Series) -> tuple[np.ndarray, pd.Timestamp]:
        """The last `lookback` steps ending at the newest date, as the model's (1, lookback, 1) input."""
        last = series.index[-1]
        if not self.step.is_on_offset(last):
            raise invalid(f"the newest date {last.date()} is not on the model's {self.freq} steps")
        grid = pd.date_range(end=last, periods=self.lookback, freq=self.step)
        if grid[0] < series.index[0]:
            raise invalid(
                f"the history starts {series.index[0].date()}; the model reads {self.lookback} "
                f"{self.freq} steps, from {grid[0].date()} to {last.date()}"
            )
        span = series.reindex(series.index.union(grid))
        filled = span.ffill() if self.fill == "ffill" else span.interpolate(method=self.fill)
        return filled.reindex(grid).to_numpy(np.float32).reshape(1, self.lookback, 1), last


mlflow.models.set_model(Forecaster())
