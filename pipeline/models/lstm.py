"""An LSTM forecaster: a window of levels in, the next `horizon` levels out (multi-step output).

The network reads scaled weekly differences and predicts the change from the last observed
level for each step ahead (pipeline.models.windows: the front and back end every network
forecaster shares). Its recurrent kernels' gradient norm is logged every epoch
(`recurrent_grad_norm_<depth>`), beside the plain RNN's.
"""

from __future__ import annotations

import keras
from keras import layers

from pipeline.models import Family
from pipeline.models.schemas import RecurrentParams as Params
from pipeline.models.windows import check_window, forecast_levels, recurrent_callbacks, scaled_differences
from pipeline.specs import ForecastSpec


def check(params: Params, spec: ForecastSpec) -> None:
    check_window(params, spec, "lstm")


def build(params: Params, spec: ForecastSpec) -> keras.Model:
    levels = keras.Input(shape=(spec.lookback, 1), name="levels")
    x = scaled_differences(levels, spec)
    for i, units in enumerate(params.units):
        last_layer = i == len(params.units) - 1
        x = layers.LSTM(units, dropout=params.dropout, return_sequences=not last_layer, name=f"lstm_{i + 1}")(
            x
        )
    return keras.Model(levels, forecast_levels(x, levels, spec), name="lstm")


FAMILY = Family(
    name="lstm",
    build=build,
    check=check,
    callbacks=recurrent_callbacks,
)
