"""The MLP for regression: the `mlp` family's hidden layers, then one linear output unit.

Why go deep: `function-approximation` fits a 1-D function with one wide hidden layer
(`mlp-wide`) and with several narrow ones (`mlp-deep`) at about the same parameter count. A ReLU
network is piecewise linear; each layer can fold the pieces of the one before, so depth
multiplies the number of linear pieces while width only adds to it.
"""

from __future__ import annotations

import keras
from keras import layers

from pipeline.errors import UserError
from pipeline.models import Family, mlp
from pipeline.specs import RegressionSpec


def check(params: mlp.Params, spec: RegressionSpec) -> None:
    if min(params.hidden_units, default=1) < 1 or not 0 <= params.dropout < 1:
        raise UserError(
            f"model.hidden_units {list(params.hidden_units)} must be positive and model.dropout in [0, 1)"
        )


def build(params: mlp.Params, spec: RegressionSpec) -> keras.Model:
    check(params, spec)
    inputs, x = mlp.hidden(spec, params)
    value = layers.Dense(1, name="value")(x)  # linear: any real number
    return keras.Model(inputs, value, name="mlp_regressor")


FAMILY = Family(name="mlp-regressor", build=build, check=check)
