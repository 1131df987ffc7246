"""Forecasters a user would otherwise pick, with the .fit(x, y) / .predict(x) of the objective's windows.

x: (windows, lookback, 1) levels; y and forecasts: (windows, horizon) levels.

This file is also how they are logged (MLflow models-from-code, nothing pickled): MLflow runs it
to get `Forecaster`, which rebuilds the fitted forecaster from the model's config: its kind and
spec, and for SARIMAX the fitted parameters (the Kalman filter is rerun on each window, as it is
here). So it imports nothing from the pipeline: the model loads with numpy, statsmodels and MLflow.
"""

from __future__ import annotations

import warnings

import mlflow
import numpy as np


def series_from_windows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The series that consecutive stride-1 windows were cut from (first window, then each new target).

    Only the leading contiguous run counts: windows after a jump (a retrain batch's weeks, which
    follow the test period) do not continue the series, so a classical model is fitted without them.
    """
    breaks = np.flatnonzero(x[1:, -1, 0] != y[:-1, 0])  # window i+1 ends where window i's target starts
    n = breaks[0] + 1 if len(breaks) else len(x)
    x, y = x[:n], y[:n]
    return np.concatenate([x[0, :, 0], y[:, 0], y[-1, 1:]]).astype(np.float64)


class Naive:
    """Every step ahead = the last observed value."""

    def __init__(self, horizon: int):
        self.horizon = horizon

    def config(self) -> dict:
        return {"kind": "naive", "horizon": self.horizon}

    def fit(self, x, y):
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.repeat(x[:, -1, :1], self.horizon, axis=1)


class SeasonalNaive:
    """Step k ahead = the value one season (52 weeks) before the target: y_{t+k} = y_{t+k-season}."""

    def __init__(self, horizon: int, season: int):
        self.horizon, self.season = horizon, season

    def config(self) -> dict:
        return {"kind": "seasonal-naive", "horizon": self.horizon, "season": self.season}

    def positions(self, lookback: int) -> np.ndarray:
        k = np.arange(1, self.horizon + 1)
        # horizons beyond one season reach back whole seasons more, into the window
        return lookback - 1 + k - self.season * np.ceil(k / self.season).astype(int)

    def fit(self, x, y):
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x[:, self.positions(x.shape[1]), 0]


class Sarimax:
    """statsmodels SARIMAX fitted once on the training series; each window is then filtered with
    the fitted parameters (no refit) and forecast `horizon` steps ahead."""

    def __init__(self, horizon: int, order, seasonal_order, simple_differencing: bool, params=None):
        self.horizon = horizon
        self.order, self.seasonal_order = tuple(order), tuple(seasonal_order)
        self.simple_differencing = simple_differencing
        self.params = None if params is None else np.asarray(params, dtype=np.float64)

    def config(self) -> dict:
        """What forecasting needs: the spec and the fitted parameters (not the fit's filter history)."""
        return {
            "kind": "sarimax",
            "horizon": self.horizon,
            "order": list(self.order),
            "seasonal_order": list(self.seasonal_order),
            "simple_differencing": self.simple_differencing,
            "params": [float(p) for p in self.params],  # YAML keeps every digit of a float
        }

    def model(self, values: np.ndarray):
        from statsmodels.tsa.statespace.sarimax import SARIMAX

        return SARIMAX(
            values,
            order=self.order,
            seasonal_order=self.seasonal_order,
            simple_differencing=self.simple_differencing,
        )

    def fit(self, x, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; the fit time and metrics say enough
            self.params = np.asarray(self.model(series_from_windows(x, y)).fit(disp=False).params)
        return self

    def difference_polynomial(self) -> np.ndarray:
        """Coefficients of (1 - B)^d (1 - B^s)^D, lag 0 first."""
        _, d, _ = self.order
        _, big_d, _, s = self.seasonal_order
        poly = np.array([1.0])
        for factor in [np.array([1.0, -1.0])] * d + [np.r_[1.0, np.zeros(s - 1), -1.0]] * big_d:
            poly = np.convolve(poly, factor)
        return poly

    def forecast(self, window: np.ndarray) -> np.ndarray:
        # the fitted parameters on this window's data: no covariance, nothing re-estimated
        forecast = self.model(window).filter(self.params, cov_type="none").forecast(self.horizon)
        if not self.simple_differencing:
            return forecast
        # the model saw the differenced series: integrate w_t back, y_t = w_t - sum_j c_j y_{t-j}
        poly = self.difference_polynomial()
        history = list(window)
        for w in forecast:
            history.append(w - float(np.dot(poly[1:], history[: -len(poly) : -1])))
        return np.array(history[len(window) :])

    def predict(self, x: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.stack([self.forecast(w[:, 0].astype(np.float64)) for w in x])


def rebuild(config: dict):
    """A fitted forecaster from its `config()`."""
    spec = {k: v for k, v in config.items() if k != "kind"}
    kinds = {"naive": Naive, "seasonal-naive": SeasonalNaive, "sarimax": Sarimax}
    return kinds[config["kind"]](**spec)


class Forecaster(mlflow.pyfunc.PythonModel):
    """The logged model: float32 windows (windows, lookback, 1) in, forecasts (windows, horizon) out."""

    def load_context(self, context):
        self.model = rebuild(context.model_config)

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:
        x = np.asarray(model_input, dtype=np.float64)
        return self.model.predict(x.reshape(len(x), -1, 1))


mlflow.models.set_model(Forecaster())
