"""A plain recurrent forecaster (SimpleRNN): the LSTM's sibling without gates.

Same windows, same front and back end as the LSTM (pipeline.models.windows): scaled weekly
differences in, the change from the last level for each step ahead out. A SimpleRNN's state is
h_t = tanh(W x_t + U h_{t-1} + b): the gradient reaching early steps is multiplied by U (and
tanh's slope) once per step, so over a 104-week window it tends to vanish. The per-epoch
`recurrent_grad_norm_<depth>` metric (the norm of the loss's gradient with respect to U) shows
it beside the LSTM's.
"""

from __future__ import annotations

import keras
from keras import layers

from pipeline.models import Family
from pipeline.models.schemas import RecurrentParams as Params
from pipeline.models.windows import check_window, forecast_levels, recurrent_callbacks, scaled_differences
from pipeline.specs import ForecastSpec


def check(params: Params, spec: ForecastSpec) -> None:
    check_window(params, spec, "rnn")


def build(params: Params, spec: ForecastSpec) -> keras.Model:
    levels = keras.Input(shape=(spec.lookback, 1), name="levels")
    x = scaled_differences(levels, spec)
    for i, units in enumerate(params.units):
        last_layer = i == len(params.units) - 1
        x = layers.SimpleRNN(
            units, dropout=params.dropout, return_sequences=not last_layer, name=f"rnn_{i + 1}"
        )(x)
    return keras.Model(levels, forecast_levels(x, levels, spec), name="rnn")


FAMILY = Family(
    name="rnn",
    build=build,
    check=check,
    callbacks=recurrent_callbacks,
)
