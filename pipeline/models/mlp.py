"""A multilayer perceptron: the baseline every other network has to beat.

Flatten the input, then Dense + Dropout blocks, then a softmax over the classes.
With `hidden_units: []` it is a single-layer perceptron (multinomial logistic regression).
"""

from __future__ import annotations

import keras
from keras import layers

from pipeline.models import Family
from pipeline.models.schemas import MlpParams as Params
from pipeline.specs import ClassifierSpec


def hidden(spec, params: Params):
    """(the input, the last hidden layer's output): everything but the output layer. `spec`: any
    spec with an `input_shape` (the binary and regression heads reuse this)."""
    inputs = keras.Input(shape=spec.input_shape, name="image" if len(spec.input_shape) == 3 else "features")
    x = layers.Flatten()(inputs)
    for units in params.hidden_units:
        x = layers.Dense(units, activation=params.activation)(x)
        if params.dropout > 0:
            x = layers.Dropout(params.dropout)(x)
    return inputs, x


def build(params: Params, spec: ClassifierSpec) -> keras.Model:
    inputs, x = hidden(spec, params)
    outputs = layers.Dense(spec.num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="mlp")


FAMILY = Family(name="mlp", build=build)
