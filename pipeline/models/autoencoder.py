"""An autoencoder: encoder -> low-dimensional code -> decoder, trained to reconstruct its input (y = x).

  architecture "dense"  Flatten, Dense layers (`hidden_units`), a Dense code; the decoder mirrors it
               "conv"   stride-2 Conv2D layers (`filters`: 8x8 -> 4x4 -> 2x2), a Dense code; the
                        decoder mirrors them with Conv2DTranspose
  noise > 0             a denoising autoencoder: Gaussian noise on the input while training only

The code size is the objective's `latent_dim` (shared with the PCA baseline). The sub-model
named "encoder" gives the codes used for retrieval and the 2-D scatter plot.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers

from pipeline import inference
from pipeline.errors import UserError
from pipeline.models import Family, Logged
from pipeline.models.schemas import AutoencoderParams as Params
from pipeline.specs import AnomalySpec


def dense_encoder(x, params: Params):
    x = layers.Flatten()(x)
    for i, units in enumerate(params.hidden_units, start=1):
        x = layers.Dense(units, activation=params.activation, name=f"enc_dense{i}")(x)
    return x


def dense_decoder(x, params: Params, input_shape):
    for i, units in enumerate(reversed(params.hidden_units), start=1):
        x = layers.Dense(units, activation=params.activation, name=f"dec_dense{i}")(x)
    x = layers.Dense(math.prod(input_shape), activation="sigmoid", name="pixels")(x)  # pixels in [0, 1]
    return layers.Reshape(input_shape)(x)


def conv_encoder(x, params: Params):
    for i, filters in enumerate(params.filters, start=1):
        x = layers.Conv2D(
            filters, 3, strides=2, padding="same", activation=params.activation, name=f"enc_conv{i}"
        )(x)
    return layers.Flatten()(x)


def conv_decoder(x, params: Params, input_shape):
    height, width, channels = input_shape
    shrink = 2 ** len(params.filters)
    x = layers.Dense(
        (height // shrink) * (width // shrink) * params.filters[-1], activation=params.activation
    )(x)
    x = layers.Reshape((height // shrink, width // shrink, params.filters[-1]))(x)
    for i, filters in enumerate(reversed(params.filters[:-1]), start=1):
        x = layers.Conv2DTranspose(
            filters, 3, strides=2, padding="same", activation=params.activation, name=f"dec_conv{i}"
        )(x)
    return layers.Conv2DTranspose(
        channels, 3, strides=2, padding="same", activation="sigmoid", name="pixels"
    )(x)


def check(params: Params, spec: AnomalySpec) -> None:
    if spec.latent_dim < 1:
        raise UserError(f"autoencoder: latent size must be at least 1 (got {spec.latent_dim})")
    if params.architecture == "conv":
        if len(spec.input_shape) != 3:
            raise UserError(
                f"a conv autoencoder needs images (height, width, channels); got {spec.input_shape}"
            )
        shrink = 2 ** len(params.filters)
        if not params.filters or any(side % shrink for side in spec.input_shape[:2]):
            raise UserError(
                f"autoencoder: model.filters {list(params.filters)} must be non-empty and halve the "
                f"image {spec.input_shape[:2]} into whole pixels (height and width divisible by {shrink})"
            )
    if min((*params.hidden_units, *params.filters), default=1) < 1:
        raise UserError("autoencoder: model.hidden_units and model.filters must be positive")


def build(params: Params, spec: AnomalySpec) -> keras.Model:
    check(params, spec)
    conv = params.architecture == "conv"
    inputs = keras.Input(shape=spec.input_shape, name="image")
    hidden = conv_encoder(inputs, params) if conv else dense_encoder(inputs, params)
    code = layers.Dense(spec.latent_dim, name="code")(hidden)  # linear: the code is not squashed
    encoder = keras.Model(inputs, code, name="encoder")

    code_in = keras.Input(shape=(spec.latent_dim,), name="code")
    decode = conv_decoder if conv else dense_decoder
    decoder = keras.Model(code_in, decode(code_in, params, spec.input_shape), name="decoder")

    noisy = (
        layers.GaussianNoise(params.noise, seed=spec.seed, name="noise")(inputs) if params.noise else inputs
    )
    return keras.Model(inputs, decoder(encoder(noisy)), name="autoencoder")


def reconstructions(model, x: np.ndarray) -> np.ndarray:
    """What the logged model's signature shows: images to their reconstructions (not anomaly scores)."""
    return inference.predict(model, x)


FAMILY = Family(
    name="autoencoder",
    build=build,
    check=check,
    logged=Logged("keras", output=reconstructions),
)
