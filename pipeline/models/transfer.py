"""Transfer learning from a pretrained network: frozen feature extractor, fine-tuning, or from scratch.

The network is a TF Hub module (`model.hub_handle`: a folder or URL, e.g. the module `pretrain`
publishes) or a keras.applications ImageNet backbone (`model.backbone`, `model.weights`:
pipeline/models/backbones.py). Below, "the module" is either.

  feature   the module frozen (called with training=False), a new classification head trained on
            its features, computed once per split and cached in .build/features/ (keyed by the
            module's files or the backbone's weights, and the images); with `augment:` the images
            change every epoch, so the module stays in the loop
  finetune  the same, then the module's weights trained too at `train.fine_tune_learning_rate`
            (recompiled after unfreezing; batch norm stays in inference mode, as in the keras-io
            transfer-learning guide, so a few examples cannot wreck its statistics)
  scratch   the module's architecture with random weights, trained end to end (the baseline);
            a hub module needs the Keras architecture a `pretrain` module carries

Inputs are resized to `image_size` and converted to `channels` (1 → 3 repeats the grey channel,
3 → 1 averages) before the module; a hub module gets values in [0, 1] (the TF Hub image
convention), a backbone what its weights expect (backbones.preprocessed). An optional `augment:`
block changes the training images at random first (pipeline/models/augment.py).
"""

from __future__ import annotations

import dataclasses
import os

import keras
from keras import layers

from pipeline.errors import UserError
from pipeline.models import Family, FitLoop, backbones, hub, in_folder, pretrain
from pipeline.models.augment import augmented
from pipeline.models.schemas import TransferParams as Params
from pipeline.models.schemas import TransferTrainParams as TrainParams
from pipeline.specs import ClassifierSpec

HUB_LAYER = "hub_module"


def tags(params: Params) -> dict[str, str]:
    if params.backbone:
        return {"backbone": params.backbone, "transfer_mode": params.mode}
    return {"hub_handle": params.hub_handle, "transfer_mode": params.mode}


def module_shape(params: Params) -> tuple[int, int, int]:
    return (*params.image_size, params.channels)


def check(params: Params, spec: ClassifierSpec) -> None:
    """Before the run starts: the handle resolves, loads, accepts the inputs, returns features; a
    backbone builds with its weights (downloaded, or read from its file)."""
    if len(spec.input_shape) != 3:
        raise UserError(
            f"transfer needs images (height, width, channels); dataset has shape {spec.input_shape}"
        )
    if min(params.image_size) < 1 or params.channels < 1:
        raise UserError(f"model.image_size {list(params.image_size)} and model.channels must be positive")
    source = spec.input_shape[-1]
    if source != params.channels and 1 not in (source, params.channels):
        raise UserError(
            f"model.channels: cannot convert {source}-channel images to {params.channels} channels"
        )
    if params.backbone:  # builds it once: a failed download or a wrong file answers before the run
        backbones.network(params.backbone, module_shape(params), params.weights)
    elif params.mode == "scratch":
        architecture(params)
    else:
        module = hub.load(params.hub_handle)
        hub.probe(module, params.hub_handle, module_shape(params))


def architecture(params: Params) -> keras.Model:
    """A fresh, randomly initialised copy of a `pretrain` module's trunk."""
    path = os.path.join(hub.resolve(params.hub_handle), pretrain.ARCHITECTURE)
    if not os.path.exists(path):
        raise UserError(
            f"hub_handle '{params.hub_handle}': mode scratch needs the module's Keras architecture "
            f"({pretrain.ARCHITECTURE}, written by `pretrain`); this module has none"
        )
    with open(path) as handle:
        trunk = keras.models.model_from_json(handle.read())
    expected = tuple(trunk.input.shape[1:])
    if expected != module_shape(params):
        raise UserError(
            f"hub_handle '{params.hub_handle}': the module takes images of shape {expected}, "
            f"not model.image_size + model.channels {module_shape(params)}"
        )
    return trunk


@keras.saving.register_keras_serializable(package="pipeline")
class ToChannels(keras.layers.Layer):
    """Grey → RGB by repeating the channel, or any → grey by averaging them."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels

    def call(self, images):
        if images.shape[-1] == 1:
            return keras.ops.repeat(images, self.channels, axis=-1)
        return keras.ops.mean(images, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def adapt(images, params: Params):
    """Resize and convert the dataset's images to what the module expects."""
    height, width, channels = images.shape[1:]
    if (height, width) != tuple(params.image_size):
        images = layers.Resizing(*params.image_size, name="resize")(images)
    if channels == 1 and params.channels == 3:  # a built-in layer: the model serves with Keras alone
        images = layers.Concatenate(name="to_channels")([images] * 3)
    elif channels != params.channels:
        images = ToChannels(params.channels, name="to_channels")(images)
    return images


def build(params: Params, spec: ClassifierSpec) -> keras.Model:
    inputs = keras.Input(shape=spec.input_shape, name="image")
    x = augmented(inputs, params.augment, spec.seed)  # random changes while training only
    x = adapt(x, params)
    if params.backbone:
        network = backbones.network(params.backbone, module_shape(params), params.weights)
        network.trainable = params.mode == "scratch"  # frozen: batch norm in inference mode too
        features = network(backbones.preprocessed(x, params.backbone))
    elif params.mode == "scratch":
        features = architecture(params)(x)  # trained end to end, batch norm in training mode
    else:
        # inference mode even when unfrozen (keras-io recipe): few examples would wreck batch norm
        module = hub.HubLayer(
            params.hub_handle, module_shape(params), trainable=False, inference_only=True, name=HUB_LAYER
        )
        features = module(x)
    x = layers.Dropout(params.head_dropout, name="head_dropout")(features)
    outputs = layers.Dense(spec.num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"transfer_{params.mode}")


def features_once(params: Params) -> bool:
    """Whether the head trains on features computed once: the module frozen, the images unchanged
    between epochs (no `augment:`)."""
    return params.mode == "feature" and not getattr(params, "augment", None)


def head(model: keras.Model) -> keras.Model:
    """The model's head alone (its own layers, shared): frozen features in, class probabilities out."""
    features = keras.Input(shape=model.get_layer("head_dropout").input.shape[1:], name="features")
    outputs = model.get_layer("probabilities")(model.get_layer("head_dropout")(features))
    return keras.Model(features, outputs, name="transfer_head")


def frozen_features(model: keras.Model, params: Params):
    """images → the frozen module's features as the model computes them (resized, converted),
    computed once per split and cached on disk (hub.cached_features), keyed by the module's
    files or the backbone's weights."""
    extractor = keras.Model(model.inputs, model.get_layer("head_dropout").input, name="transfer_features")
    if params.backbone:
        module = f"{params.backbone}|{backbones.digest(model.get_layer(backbones.BACKBONE))}"
    else:
        module = hub.module_digest(model.get_layer(HUB_LAYER).module_path)
    scope = f"{module}|{list(params.image_size)}|{params.channels}"
    return lambda images: hub.cached_features(extractor, images, scope)


def unfreeze(model: keras.Model, params: Params) -> None:
    """The module's weights trainable, its batch norm still in inference mode."""
    if params.backbone:
        backbones.unfreeze(model.get_layer(backbones.BACKBONE))
    else:
        model.get_layer(HUB_LAYER).trainable = True  # HubLayer(inference_only=True)


def fit(model: keras.Model, params: Params, train: TrainParams, loop: FitLoop) -> dict[str, list[float]]:
    """Head first; for fine-tuning, then unfreeze the module and go on at a lower learning rate.
    `mode: feature` without augmentation trains the head on features computed once (the module
    frozen in inference mode gives the same ones every epoch); the model keeps the module."""
    if features_once(params):
        return loop(head(model), inputs=frozen_features(model, params))
    history = loop(model)
    if params.mode != "finetune" or train.fine_tune_epochs < 1:
        return history
    unfreeze(model, params)  # the loop recompiles, so the change takes effect
    more = loop(
        model,
        learning_rate=train.fine_tune_learning_rate,
        epochs=train.fine_tune_epochs,
        initial_epoch=len(history["loss"]),
    )
    return {key: history[key] + more.get(key, []) for key in history}


def sandboxed(params: Params, folder) -> Params:
    """A sandboxed run reads the module a sandboxed `pretrain` published under `folder` (the same
    notebook's), else the handle's own."""
    if params.hub_handle is None or hub.is_url(params.hub_handle):  # a backbone, or a module online
        return params
    published = in_folder(params.hub_handle, folder)
    if not published.exists():
        return params
    return dataclasses.replace(params, hub_handle=str(published))


FAMILY = Family(
    name="transfer",
    build=build,
    check=check,
    tags=tags,
    fit=fit,
    sandboxed=sandboxed,
)
