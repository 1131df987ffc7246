"""A feed-forward forecaster on the same windows: an MLP that ignores their order.

The same front and back end as the recurrent forecasters (pipeline.models.windows): scaled weekly
differences in, the change from the last level for each step ahead out. In between, the window
is flattened and fed to Dense layers: every week is just another input column, so the network
has no notion of "earlier" or "later" (shuffle the weeks the same way in every window and it
learns just as well). What the RNN and LSTM add is exactly that order, and a state carried
through it.
"""

from __future__ import annotations

import keras
from keras import layers

from pipeline.models import Family
from pipeline.models.schemas import DenseWindowParams as Params
from pipeline.models.windows import check_window, forecast_levels, scaled_differences
from pipeline.specs import ForecastSpec


def check(params: Params, spec: ForecastSpec) -> None:
    check_window(params, spec, "dense-window")


def build(params: Params, spec: ForecastSpec) -> keras.Model:
    levels = keras.Input(shape=(spec.lookback, 1), name="levels")
    x = layers.Flatten(name="weeks")(scaled_differences(levels, spec))  # order forgotten here
    for i, units in enumerate(params.units, start=1):
        x = layers.Dense(units, activation=params.activation, name=f"dense_{i}")(x)
        if params.dropout > 0:
            x = layers.Dropout(params.dropout, name=f"dropout_{i}")(x)
    return keras.Model(levels, forecast_levels(x, levels, spec), name="dense_window")


FAMILY = Family(name="dense-window", build=build, check=check)
