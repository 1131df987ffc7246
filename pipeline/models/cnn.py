"""A small convolutional network: Conv2D blocks (with batch normalisation), pooling, a dense head.

`padding` is the lecture's knob:
  "same"        keep the spatial size (Keras pads the extra row/column at the bottom/right)
  "valid"       no padding: each k x k convolution shrinks the map by k - 1
  "full"        pad k - 1 on every side: the map grows by k - 1 (PyTorch-style padding=k-1)
  p or [ph, pw] explicit symmetric zero padding, as PyTorch's `padding=` argument

`kernel_size` and `strides` take one number for both directions or [rows, cols]: Keras orders
them (height, width), so [3, 2] is 3 rows high and 2 columns wide. `pooling` is max, min (a
layer of this package, pipeline.models.layers), avg or none. An optional `augment:` block changes
the training images at random (pipeline/models/augment.py).
"""

from __future__ import annotations

import keras
from keras import layers

from pipeline.errors import UserError, first_line
from pipeline.models import Family
from pipeline.models.augment import augmented
from pipeline.models.layers import MinPooling2D
from pipeline.models.schemas import CnnParams as Params
from pipeline.models.schemas import Pair
from pipeline.specs import ClassifierSpec

POOLING = {"max": layers.MaxPooling2D, "min": MinPooling2D, "avg": layers.AveragePooling2D}


def pair(value: Pair) -> tuple[int, int]:
    """(rows, cols) of an int-or-pair knob."""
    return (value, value) if isinstance(value, int) else tuple(value)


def check(params: Params, spec: ClassifierSpec) -> None:
    for key in ("kernel_size", "strides"):
        if min(pair(getattr(params, key))) < 1:
            raise UserError(f"model.{key} {getattr(params, key)!r} must be positive (rows, cols)")
    if params.pool_size < 1:
        raise UserError(f"model.pool_size must be positive (got {params.pool_size})")


def conv(x, filters: int, params: Params, index: int):
    """Conv2D (+ BatchNorm) + activation; explicit/full padding is a ZeroPadding2D + 'valid'."""
    padding = params.padding
    if padding == "full":
        padding = tuple(k - 1 for k in pair(params.kernel_size))
    if not isinstance(padding, str):
        if min(padding if isinstance(padding, tuple) else (padding,)) < 0:
            raise UserError(f"padding {params.padding!r} must not be negative")
        x = layers.ZeroPadding2D(padding, name=f"pad{index}")(x)
        padding = "valid"
    x = layers.Conv2D(
        filters,
        params.kernel_size,
        strides=params.strides,
        padding=padding,
        use_bias=not params.batch_norm,  # BatchNormalization's beta is the bias
        name=f"conv{index}",
    )(x)
    if params.batch_norm:
        x = layers.BatchNormalization(name=f"bn{index}")(x)
    return layers.Activation(params.activation, name=f"{params.activation}{index}")(x)


def pool(x, params: Params, index: int):
    return POOLING[params.pooling](params.pool_size, name=f"pool{index}")(x)


def features(inputs, params: Params):
    """The convolutional blocks, flattened, then the dense layer: what a classification head reads."""
    x = inputs
    try:
        for i, filters in enumerate(params.filters, start=1):
            x = conv(x, filters, params, i)
            last = i == len(params.filters)
            every = params.pool_every
            if params.pooling != "none" and ((every and i % every == 0) or (not every and last)):
                x = pool(x, params, i)
    except ValueError as exc:  # e.g. 'valid' shrank the map below the kernel
        raise UserError(
            f"cnn: the feature map {tuple(x.shape[1:])} is too small for layer {i} "
            f"(padding {params.padding!r}, kernel {params.kernel_size}, strides {params.strides}): "
            f"{first_line(exc)}"
        ) from None
    x = layers.Flatten()(x)
    x = layers.Dropout(params.dropout)(x)
    x = layers.Dense(params.dense_units, activation=params.activation, name="dense")(x)
    return layers.Dropout(params.dropout)(x)


def image_input(spec: ClassifierSpec, family: str = "cnn"):
    if len(spec.input_shape) != 3:
        raise UserError(
            f"{family} needs images (height, width, channels); dataset has shape {spec.input_shape}"
        )
    return keras.Input(shape=spec.input_shape, name="image")


def build(params: Params, spec: ClassifierSpec) -> keras.Model:
    check(params, spec)
    inputs = image_input(spec)
    x = augmented(inputs, params.augment, spec.seed)  # random changes while training only
    x = features(x, params)
    outputs = layers.Dense(spec.num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn")


FAMILY = Family(name="cnn", build=build, check=check)
