"""Data augmentation inside the model: Keras' random preprocessing layers right after the input.

They change each training image at random (flip, rotation, zoom, translation, contrast) and pass
images through unchanged at inference, so a trained model answers as one without them: the served
model's input contract stays the same. An image family (cnn, cnn-binary, pretrain, transfer) takes
an optional `model.augment:` block (pipeline/models/schemas.py: Augment):

    model:
      augment: {flip: horizontal, rotation: 0.05, zoom: 0.1}
"""

from __future__ import annotations

from keras import layers

from pipeline.models.schemas import Augment


def active(params) -> bool:
    """Whether a family's params augment the training images (precomputed features of frozen
    layers would then not be what the model sees, so nothing may cache them)."""
    augment = getattr(params, "augment", None)
    if not isinstance(augment, Augment):  # none, or `auto` not yet chosen
        return False
    return augment.flip != "none" or any(
        (augment.rotation, augment.zoom, augment.translation, augment.contrast)
    )


def augmentation(augment: Augment | None, seed: int) -> list[layers.Layer]:
    """The augmentation layers, in order; [] for none. Images are floats in [0, 1]."""
    if augment is None:
        return []
    chosen = []
    if augment.flip != "none":
        chosen.append(layers.RandomFlip(augment.flip, seed=seed, name="random_flip"))
    if augment.rotation:
        chosen.append(layers.RandomRotation(augment.rotation, seed=seed, name="random_rotation"))
    if augment.zoom:
        chosen.append(layers.RandomZoom(augment.zoom, seed=seed, name="random_zoom"))
    if augment.translation:
        t = augment.translation
        chosen.append(layers.RandomTranslation(t, t, seed=seed, name="random_translation"))
    if augment.contrast:
        chosen.append(
            layers.RandomContrast(augment.contrast, value_range=(0, 1), seed=seed, name="random_contrast")
        )
    return chosen


def augmented(inputs, augment: Augment | None, seed: int):
    """`inputs` through the augmentation layers (itself when there are none)."""
    x = inputs
    for layer in augmentation(augment, seed):
        x = layer(x)
    return x
