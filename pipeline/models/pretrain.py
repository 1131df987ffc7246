"""Pretrain a CNN on the source task and publish its trunk as a TF Hub module (reusable SavedModel).

The model is the `cnn` family's network; the trunk is its convolutional part, up to the
`flatten` (or `average`) layer, whose output is the feature vector. `publish()` writes the trunk to
`model.publish_dir` in the TF Hub "reusable SavedModel" format (`__call__(images,
training=False)`, `variables`, `trainable_variables`, `regularization_losses`), with a README
stating its input contract and the trunk's Keras architecture (so `transfer-scratch` can
rebuild it with random weights).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import keras
import tensorflow as tf

from pipeline.config import project_root
from pipeline.models import Family, Published, cnn, in_folder
from pipeline.models.schemas import PretrainParams as Params
from pipeline.specs import ClassifierSpec

ARCHITECTURE = os.path.join("assets", "keras_architecture.json")


def build(params: Params, spec: ClassifierSpec) -> keras.Model:
    return cnn.build(params, spec)


def tags(params: Params) -> dict[str, str]:
    return {"hub_module": params.publish_dir}


def trunk(model: keras.Model) -> keras.Model:
    """The feature extractor: the convolutional blocks, flattened or averaged (weights shared).

    Measured on digits 5-9, these features transfer far better than the dense layer after them,
    which specialises in the source classes.
    """
    heads = (keras.layers.Flatten, keras.layers.GlobalAveragePooling2D)  # cnn's `head`
    (pooled,) = [layer for layer in model.layers if isinstance(layer, heads)]
    return keras.Model(model.input, pooled.output, name="trunk")


def export_module(trunk: keras.Model, path) -> None:
    """Save `trunk` as a reusable SavedModel: callable with training=True/False, variables listed."""
    root = tf.train.Checkpoint()  # any trackable object; its attributes become the module's API
    root.trunk = trunk
    spec = tf.TensorSpec((None, *trunk.input.shape[1:]), tf.float32, name="images")

    @tf.function
    def call(images, training=False):
        return trunk(images, training=training)

    for training in (False, True):  # both variants are traced into the SavedModel
        call.get_concrete_function(spec, training=training)
    root.__call__ = call
    root.variables = [v.value for v in trunk.variables]  # the tf.Variables behind Keras' variables
    root.trainable_variables = [v.value for v in trunk.trainable_variables]
    root.regularization_losses = []  # the trunk has no weight regularisers
    tf.saved_model.save(root, str(path))


def readme(trunk: keras.Model, params: Params) -> str:
    h, w, c = trunk.input.shape[1:]
    dim = trunk.output.shape[-1]
    return f"""# Digits feature-vector module (TF Hub reusable SavedModel)

Published by the pipeline's `pretrain` experiment: the convolutional trunk of a CNN trained on
the source task (see the MLflow run that logged this folder as its `hub_module` artifact).

## Input contract
- `images`: float32 tensor of shape (batch, {h}, {w}, {c}), values in [0, 1]
  (scikit-learn digits scaled by 1/16: ink is bright, background 0).
- Other sizes are rejected; `pipeline.models.transfer` resizes and converts channels first.

## Output
- float32 feature vector of shape (batch, {dim}): the convolutional blocks' output, flattened or averaged.

## Use
    import tensorflow_hub as hub
    module = hub.load("{params.publish_dir}")
    features = module(images, training=False)   # training=True: dropout and batch-norm train
    module.variables, module.trainable_variables, module.regularization_losses

In Keras 3: `pipeline.hub.HubLayer("{params.publish_dir}", input_shape=({h}, {w}, {c}))`.
`{ARCHITECTURE}` holds the trunk's Keras architecture (for training it from scratch).
"""


def publish(model: keras.Model, params: Params) -> Published:
    """Write the hub module next to its target, then swap it in (never half-written); the
    training core logs it as the run's `hub_module` artifact."""
    target = project_root() / params.publish_dir
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    features = trunk(model)
    try:
        export_module(features, staging)
        (staging / "README.md").write_text(readme(features, params))
        (staging / ARCHITECTURE).write_text(json.dumps(json.loads(features.to_json()), indent=1))
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        if target.exists():
            target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    shown = target.relative_to(project_root()) if target.is_relative_to(project_root()) else target
    print(f"pretrain: hub module published to {shown}")
    return Published(target, "hub_module")


def sandboxed(params: Params, folder) -> Params:
    """A sandboxed run publishes its module under `folder`, never where the transfer experiments
    read theirs."""
    return dataclasses.replace(params, publish_dir=str(in_folder(params.publish_dir, folder)))


FAMILY = Family(
    name="pretrain",
    build=build,
    check=cnn.check,
    resolve=cnn.resolve,
    tags=tags,
    publish=publish,
    sandboxed=sandboxed,
)
