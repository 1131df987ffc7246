"""An LSTM forecaster: a window of levels in, the next `horizon` levels out (multi-step output).

The network never has to extrapolate the level (a trending series leaves the training range):
a fixed Conv1D turns the window into one-step differences, scaled with the training split's
statistics; the LSTM stack reads them and a Dense layer predicts the change from the last
observed level for each step ahead, which is added back. All layers are built-in Keras layers,
so the saved model loads anywhere Keras does, without this package.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import layers

from pipeline.errors import UserError
from pipeline.models import Family
from pipeline.specs import ForecastSpec


@dataclasses.dataclass(frozen=True)
class Params:
    units: tuple[int, ...]  # one LSTM layer per entry (stacked)
    dropout: float  # on each LSTM layer's inputs


def check(params: Params, spec: ForecastSpec) -> None:
    if not params.units or min(params.units) < 1:
        raise UserError(f"model.units must list at least one positive layer size (got {list(params.units)})")
    if not 0 <= params.dropout < 1:
        raise UserError(f"model.dropout must be in [0, 1) (got {params.dropout})")
    if spec.lookback < 2:
        raise UserError(f"objective.lookback must be at least 2 for the lstm (got {spec.lookback})")


def build(params: Params, spec: ForecastSpec) -> keras.Model:
    levels = keras.Input(shape=(spec.lookback, 1), name="levels")
    # y[t] - y[t-1] as a frozen 2-tap convolution: (lookback, 1) levels → (lookback - 1, 1) changes
    difference = layers.Conv1D(1, 2, use_bias=False, trainable=False, name="differences")
    x = difference(levels)
    difference.set_weights([np.array([-1.0, 1.0]).reshape(2, 1, 1)])
    x = layers.Normalization(mean=spec.diff_mean, variance=spec.diff_std**2, name="scaled")(x)
    for i, units in enumerate(params.units):
        last_layer = i == len(params.units) - 1
        x = layers.LSTM(units, dropout=params.dropout, return_sequences=not last_layer, name=f"lstm_{i + 1}")(
            x
        )
    change = layers.Dense(spec.horizon, name="scaled_change")(x)  # change from the last level, per step
    change = layers.Rescaling(spec.diff_std, name="change")(change)
    last = layers.Flatten(name="last_level")(layers.Cropping1D((spec.lookback - 1, 0))(levels))
    forecast = layers.Add(name="forecast")([last, change])  # (batch, 1) + (batch, horizon)
    return keras.Model(levels, forecast, name="lstm")


FAMILY = Family(name="lstm", objective="forecasting", params=Params, build=build, check=check)
