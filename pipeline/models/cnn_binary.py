"""The CNN for a binary task: the `cnn` family's convolutional blocks and dense layer, then one
sigmoid unit, P(positive), trained with binary cross-entropy (the binary objective)."""

from __future__ import annotations

import keras
from keras import layers

from pipeline import inference
from pipeline.models import Family, Logged, cnn
from pipeline.models.augment import augmented
from pipeline.specs import ClassifierSpec


def build(params: cnn.Params, spec: ClassifierSpec) -> keras.Model:
    cnn.check(params, spec)
    inputs = cnn.image_input(spec, "cnn-binary")
    params = cnn.resolve(params, spec)
    x = augmented(inputs, params.augment, spec.seed)  # random changes while training only
    x = cnn.features(x, params)
    outputs = layers.Dense(1, activation="sigmoid", name="probability")(x)
    return keras.Model(inputs, outputs, name="cnn_binary")


def probability(model, x):
    """What the logged model returns: P(positive), shaped (n, 1)."""
    return inference.predict(model, x)


FAMILY = Family(
    name="cnn-binary",
    build=build,
    check=cnn.check,
    resolve=cnn.resolve,
    logged=Logged("keras", output=probability),
)
