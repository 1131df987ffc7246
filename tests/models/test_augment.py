"""`model.augment:` (pipeline/models/augment.py): random layers that change training images only."""

import keras
import numpy as np
import pytest

from pipeline import config
from pipeline.errors import UserError
from pipeline.models import augment, cnn
from pipeline.models.schemas import Augment, CnnParams
from pipeline.specs import ClassifierSpec
from tests.models.test_cnn import params

SPEC = ClassifierSpec(input_shape=(8, 8, 1), num_classes=10, seed=0)
EVERY = Augment(flip="horizontal", rotation=0.1, zoom=0.1, translation=0.1, contrast=0.2)


def test_augmentation_changes_training_images_and_passes_inference_images_through():
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, augment.augmented(inputs, EVERY, seed=0))
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    assert np.array_equal(keras.ops.convert_to_numpy(model(x, training=False)), x)
    assert not np.allclose(keras.ops.convert_to_numpy(model(x, training=True)), x)
    assert [layer.name for layer in model.layers[1:]] == [
        "random_flip",
        "random_rotation",
        "random_zoom",
        "random_translation",
        "random_contrast",
    ]


def test_a_cnn_with_augmentation_answers_as_without_at_inference():
    plain = cnn.build(params(), SPEC)
    augmented = cnn.build(params(augment=Augment(flip="horizontal", rotation=0.1)), SPEC)
    augmented.set_weights(plain.get_weights())
    x = np.random.default_rng(1).random((5, 8, 8, 1)).astype("float32")
    assert np.allclose(plain(x, training=False), augmented(x, training=False))


def test_active_says_whether_params_augment():
    assert not augment.active(params()) and not augment.active(params(augment=Augment()))
    assert augment.active(params(augment=Augment(zoom=0.1)))


def test_the_augment_block_is_validated_like_any_section():
    section = {**vars(params()), "filters": [4], "augment": {"flip": "sideways"}}
    with pytest.raises(UserError, match="model.augment.flip"):
        config.parse_section(CnnParams, section, "model")
    section["augment"] = {"zoom": 0.2}
    assert config.parse_section(CnnParams, section, "model").augment == Augment(zoom=0.2)
