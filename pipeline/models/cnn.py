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

Every knob has a default, so `family: cnn` alone is a network for a folder of photos. Four are
`auto` unless written, chosen from the data by `resolve` when the run starts and logged with the
value used: `bn_momentum` (from the steps an epoch), `extra_blocks` (stride-2 blocks that bring a
large map down to 8x8), `head` (flatten a small final map, average a large one) and `augment`
(flips and turns for images of 32 px or more). On digits they leave the network as written.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import layers

from pipeline.errors import UserError, first_line
from pipeline.models import Family
from pipeline.models.augment import augmented
from pipeline.models.layers import MinPooling2D
from pipeline.models.schemas import Augment, Pair
from pipeline.models.schemas import CnnParams as Params
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


def conv_layers(filters: int, params: Params, index: int, strides: Pair | None = None) -> list:
    """Conv2D (+ BatchNorm) + activation; explicit/full padding is a ZeroPadding2D + 'valid'."""
    padding, found = params.padding, []
    if padding == "full":
        padding = tuple(k - 1 for k in pair(params.kernel_size))
    if not isinstance(padding, str):
        if min(padding if isinstance(padding, tuple) else (padding,)) < 0:
            raise UserError(f"padding {params.padding!r} must not be negative")
        found.append(layers.ZeroPadding2D(padding, name=f"pad{index}"))
        padding = "valid"
    found.append(
        layers.Conv2D(
            filters,
            params.kernel_size,
            strides=params.strides if strides is None else strides,
            padding=padding,
            use_bias=not params.batch_norm,  # BatchNormalization's beta is the bias
            name=f"conv{index}",
        )
    )
    if params.batch_norm:
        momentum = 0.99 if params.bn_momentum == "auto" else params.bn_momentum
        found.append(layers.BatchNormalization(momentum=momentum, name=f"bn{index}"))
    return [*found, layers.Activation(params.activation, name=f"{params.activation}{index}")]


def conv(x, filters: int, params: Params, index: int):
    """`x` through one convolutional block (the lecture's worked examples call it)."""
    for layer in conv_layers(filters, params, index):
        x = layer(x)
    return x


def pool_layer(params: Params, index: int):
    return POOLING[params.pooling](params.pool_size, name=f"pool{index}")


def pool(x, params: Params, index: int):
    return pool_layer(params, index)(x)


def trunk_layers(params: Params, extra_blocks: int) -> list[tuple[int, list]]:
    """(block number, its layers) of every convolutional block: `filters`, pooled every
    `pool_every`-th, then `extra_blocks` stride-2 blocks that halve the map."""
    found, every = [], params.pool_every
    for i, filters in enumerate(params.filters, start=1):
        block = conv_layers(filters, params, i)
        last = i == len(params.filters)
        if params.pooling != "none" and ((every and i % every == 0) or (not every and last)):
            block.append(pool_layer(params, i))
        found.append((i, block))
    filters = params.filters[-1] if params.filters else 16
    for i in range(len(params.filters) + 1, len(params.filters) + 1 + extra_blocks):
        filters = min(2 * filters, MAX_EXTRA_FILTERS)
        found.append((i, conv_layers(filters, dataclasses.replace(params, padding="same"), i, 2)))
    return found


def map_shape(params: Params, input_shape: tuple, extra_blocks: int = 0) -> tuple:
    """The feature map's shape after the convolutional blocks (no layer is built)."""
    shape = (None, *input_shape)
    for i, block in trunk_layers(params, extra_blocks):
        try:
            for layer in block:
                shape = layer.compute_output_shape(shape)
        except ValueError as exc:  # e.g. 'valid' shrank the map below the kernel
            raise too_small(shape, params, i, exc) from None
        if min(shape[1:3]) < 1:
            raise too_small(shape, params, i, ValueError("the map has no rows or columns left"))
    return tuple(shape[1:])


def too_small(shape, params: Params, index: int, exc: Exception) -> UserError:
    return UserError(
        f"cnn: the feature map {tuple(shape[1:])} is too small for layer {index} "
        f"(padding {params.padding!r}, kernel {params.kernel_size}, strides {params.strides}): "
        f"{first_line(exc)}"
    )


# ---------------------------------------------------------------------------- the data's choices
# `auto` knobs, chosen from the data when a run starts (each logged as the run's param)
SMALL_MAP = 8  # extra blocks halve a larger map until its sides are at most this
FLATTEN_MAX = 16  # positions (4x4) of a final map the head flattens; a larger one is averaged
MAX_EXTRA_FILTERS = 256
PHOTO_SIDE = 32  # images this large or larger are augmented by default (digits and MNIST are not)
PHOTO_AUGMENT = Augment(flip="horizontal", rotation=0.1)  # keras-io's image classification recipe


def bn_momentum(steps_per_epoch: int | None) -> float:
    """Batch norm's moving statistics (what inference uses) average over about a quarter of an
    epoch: 1 - 4/steps, between 0.5 and Keras' 0.99 (from 400 steps an epoch). A longer average
    still describes earlier weights (or the initial statistics) when early stopping compares the
    first epochs, and keeps one of them: at Keras' 0.99, 2,000 photos (41 steps) ended near chance."""
    if not steps_per_epoch:
        return 0.99
    return round(min(0.99, max(0.5, 1 - 4 / steps_per_epoch)), 3)


def extra_blocks(shape: tuple) -> int:
    """Stride-2 blocks that bring a map of `shape` (height, width, channels) down to at most 8x8."""
    count, side = 0, max(shape[:2])
    while side > SMALL_MAP:
        side, count = -(-side // 2), count + 1
    return count


def head(shape: tuple) -> str:
    """flatten a small final map (few weights in the dense layer), average a large one."""
    return "flatten" if shape[0] * shape[1] <= FLATTEN_MAX else "average"


def augment_for(input_shape: tuple) -> Augment | None:
    return PHOTO_AUGMENT if min(input_shape[:2]) >= PHOTO_SIDE else None


def resolve(params: Params, spec: ClassifierSpec) -> Params:
    """`params` with every `auto` knob chosen from the data (the image size, the steps an epoch)."""
    if len(spec.input_shape) != 3:
        return params  # build refuses it, with its message
    extra = params.extra_blocks
    if extra == "auto":
        extra = extra_blocks(map_shape(params, spec.input_shape))
    chosen = params.head
    if chosen == "auto":
        chosen = head(map_shape(params, spec.input_shape, extra))
    return dataclasses.replace(
        params,
        extra_blocks=extra,
        head=chosen,
        bn_momentum=bn_momentum(spec.steps_per_epoch) if params.bn_momentum == "auto" else params.bn_momentum,
        augment=augment_for(spec.input_shape) if params.augment == "auto" else params.augment,
    )


def features(inputs, params: Params):
    """The convolutional blocks, flattened or averaged, then the dense layer: what a classification
    head reads. `params` are resolved (no `auto` left)."""
    x = inputs
    for i, block in trunk_layers(params, params.extra_blocks):
        try:
            for layer in block:
                x = layer(x)
        except ValueError as exc:  # e.g. 'valid' shrank the map below the kernel
            raise too_small(x.shape, params, i, exc) from None
    x = layers.Flatten()(x) if params.head == "flatten" else layers.GlobalAveragePooling2D(name="average")(x)
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
    params = resolve(params, spec)
    x = augmented(inputs, params.augment, spec.seed)  # random changes while training only
    x = features(x, params)
    outputs = layers.Dense(spec.num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="cnn")


FAMILY = Family(name="cnn", build=build, check=check, resolve=resolve)
