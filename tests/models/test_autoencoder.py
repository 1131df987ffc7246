import keras
import numpy as np
import pytest

from pipeline import config
from pipeline.errors import UserError
from pipeline.models import autoencoder
from pipeline.specs import AnomalySpec as Spec
from pipeline.training import keras_loop

SPEC = Spec(input_shape=(8, 8, 1), latent_dim=3, seed=0)


def params(**change):
    base = dict(architecture="conv", hidden_units=(16, 8), filters=(8, 16), activation="relu", noise=0.0)
    return autoencoder.Params(**{**base, **change})


@pytest.mark.parametrize("architecture", ["dense", "conv"])
def test_shapes_and_the_code_size(architecture):
    model = autoencoder.build(params(architecture=architecture), SPEC)
    x = np.random.default_rng(0).random((5, 8, 8, 1)).astype("float32")
    out = np.asarray(model.predict(x, verbose=0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1  # sigmoid pixels
    assert model.get_layer("encoder").output.shape[1:] == (3,)
    assert model.get_layer("decoder").input.shape[1:] == (3,)


def test_dense_encoder_layers_follow_hidden_units():
    encoder = autoencoder.build(params(architecture="dense"), SPEC).get_layer("encoder")
    dense = [layer for layer in encoder.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [16, 8, 3]


def test_noise_layer_only_when_denoising():
    names = [layer.name for layer in autoencoder.build(params(noise=0.2), SPEC).layers]
    assert "noise" in names
    assert "noise" not in [layer.name for layer in autoencoder.build(params(), SPEC).layers]


@pytest.mark.integration  # 15 epochs
def test_reconstruction_improves_with_training():
    rng = np.random.default_rng(0)
    x = (rng.random((64, 8, 8, 1)) < 0.3).astype("float32")
    keras_loop.seed_everything(0)
    model = autoencoder.build(params(), SPEC)
    settings = config.TrainParams(
        epochs=15,
        batch_size=16,
        learning_rate=0.01,
        optimizer="adam",
        patience=15,
        seed=0,
        limit=None,
        strategy="default",
    )
    before = float(np.mean((model.predict(x, verbose=0) - x) ** 2))
    history = keras_loop.fit(model, (x, x, None), settings, "mse", [])
    after = float(np.mean((model.predict(x, verbose=0) - x) ** 2))
    assert history["loss"][-1] < history["loss"][0] and after < 0.9 * before


@pytest.mark.parametrize(
    "change, spec, message",
    [
        ({"filters": (8, 8, 8, 8)}, SPEC, "divisible by 16"),
        ({"filters": ()}, SPEC, "non-empty"),
        ({"architecture": "dense"}, Spec((8, 8, 1), 0, 0), "latent size must be at least 1"),
        ({"architecture": "dense", "hidden_units": (16, 0)}, SPEC, "must be positive"),
    ],
)
def test_bad_architecture_is_a_user_error(change, spec, message):
    with pytest.raises(UserError, match=message):
        autoencoder.build(params(**change), spec)
