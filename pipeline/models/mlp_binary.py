"""The MLP for a binary task: the `mlp` family's hidden layers, then one sigmoid unit.

sigmoid(z) = 1 / (1 + e^-z) is P(positive); the binary objective trains it with binary
cross-entropy. Two softmax outputs would say the same with twice the output weights.
"""

from __future__ import annotations

import keras
from keras import layers

from pipeline import inference
from pipeline.models import Family, Logged, mlp
from pipeline.specs import ClassifierSpec


def build(params: mlp.Params, spec: ClassifierSpec) -> keras.Model:
    inputs, x = mlp.hidden(spec, params)
    probability = layers.Dense(1, activation="sigmoid", name="probability")(x)
    return keras.Model(inputs, probability, name="mlp_binary")


def probability(model, x):
    """What the logged model returns: P(positive), shaped (n, 1)."""
    return inference.predict(model, x)


FAMILY = Family(
    name="mlp-binary",
    build=build,
    logged=Logged("keras", output=probability),
)
