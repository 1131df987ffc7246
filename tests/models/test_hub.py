"""HubLayer on a tiny hub module written in raw TensorFlow (a tf.Module, no Keras), built here."""

import hashlib
import shutil

import keras
import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.models import hub
from tests.helpers import save_raw_module


@pytest.fixture
def raw_module(project):
    return save_raw_module(project / "raw-module")


def model_on(layer, input_shape=(8, 8, 1), classes=3):
    inputs = keras.Input(input_shape)
    outputs = keras.layers.Dense(classes, activation="softmax")(layer(inputs))
    return keras.Model(inputs, outputs)


def data(n=16, shape=(8, 8, 1)):
    rng = np.random.default_rng(0)
    return rng.random((n, *shape), dtype=np.float32), rng.integers(0, 3, n)


def snapshot(layer):
    return [w.numpy().copy() for w in layer.weights]


def test_frozen_module_weights_do_not_change(raw_module):
    layer = hub.HubLayer(str(raw_module), input_shape=(8, 8, 1))
    model = model_on(layer)
    assert layer.output_dim == 4 and len(layer.weights) == 3 and not layer.trainable_weights
    before = snapshot(layer)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(*data(), epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, snapshot(layer), strict=True))


def test_fine_tuning_with_a_momentum_optimizer_updates_the_module(raw_module):
    layer = hub.HubLayer(str(raw_module), input_shape=(8, 8, 1), trainable=True)
    model = model_on(layer)
    names = {w.name for w in layer.trainable_weights}
    assert names == {"dense_kernel", "dense_bias"}  # sanitised; the offset stays non-trainable
    before = snapshot(layer)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy")
    model.fit(*data(), epochs=2, verbose=0)
    changed = [not np.array_equal(a, b) for a, b in zip(before, snapshot(layer), strict=True)]
    assert changed == [True, True, False]  # kernel, bias trained; the non-trainable offset kept
    # the layer shares the module's variables: the module itself was updated
    assert np.array_equal(layer._module.variables[0].numpy(), layer.weights[0].numpy())


def test_training_flag_reaches_the_module_only_when_trainable(raw_module):
    x, _ = data(2)
    frozen = hub.HubLayer(str(raw_module), input_shape=(8, 8, 1))
    tuned = hub.HubLayer(str(raw_module), input_shape=(8, 8, 1), trainable=True)
    inference = tuned(x, training=False).numpy()
    assert np.allclose(tuned(x, training=True).numpy(), inference + 100.0)
    assert np.allclose(frozen(x, training=True).numpy(), inference)  # frozen: always inference mode
    recipe = hub.HubLayer(str(raw_module), input_shape=(8, 8, 1), trainable=True, inference_only=True)
    assert np.allclose(recipe(x, training=True).numpy(), inference) and recipe.trainable_weights


def test_regularization_losses_count_when_trainable(raw_module):
    x, _ = data(2)
    tuned = hub.HubLayer(str(raw_module), input_shape=(8, 8, 1), trainable=True)
    tuned(x, training=True)
    kernel = tuned.weights[0].numpy()
    assert len(tuned.losses) == 1 and np.isclose(float(tuned.losses[0]), 0.5 * (kernel**2).sum(), rtol=1e-5)
    frozen = hub.HubLayer(str(raw_module), input_shape=(8, 8, 1))
    frozen(x)
    assert frozen.losses == []


@pytest.mark.parametrize("handle_now", ["gone", "another module"])
@pytest.mark.integration  # fits, saves and reloads a model
def test_saved_model_reloads_without_the_hub_directory(raw_module, tmp_path, handle_now):
    layer = hub.HubLayer(str(raw_module), input_shape=(8, 8, 1), trainable=True)
    model = model_on(layer)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(*data(), epochs=1, verbose=0)
    x, _ = data(5)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "model.keras")
    shutil.rmtree(raw_module)  # the original module is gone...
    if handle_now == "another module":  # ...or replaced by a different one (pretrain rerun)
        save_raw_module(raw_module, features=6)
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    assert np.allclose(reloaded.predict(x, verbose=0), expected, atol=1e-6)
    reloaded.save(tmp_path / "again.keras")  # and it saves again, module included
    shutil.rmtree(raw_module, ignore_errors=True)
    again = keras.saving.load_model(tmp_path / "again.keras")
    assert np.allclose(again.predict(x, verbose=0), expected, atol=1e-6)


def test_url_handles_resolve_through_the_tfhub_cache(project, monkeypatch):
    """No network here: the module is put where tensorflow_hub caches that URL (TFHUB_CACHE_DIR)."""
    url = "https://example.com/models/digits-features.tar.gz"
    cache = project / "hub-cache"
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(cache))
    save_raw_module(cache / hashlib.sha1(url.encode()).hexdigest())
    layer = hub.HubLayer(url, input_shape=(8, 8, 1))
    assert layer.output_dim == 4 and hub.resolve(url).startswith(str(cache))


def test_unreachable_url_is_a_user_error(project, monkeypatch):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(project / "empty-cache"))
    monkeypatch.setattr(hub.hub, "resolve", lambda handle: (_ for _ in ()).throw(OSError("no network")))
    with pytest.raises(
        UserError, match="hub_handle 'https://example.com/m.tar.gz': cannot fetch.*no network"
    ):
        hub.resolve("https://example.com/m.tar.gz")


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda root: root / "nowhere", "no such directory"),
        (lambda root: (root / "empty").mkdir() or root / "empty", "not a SavedModel"),
        (lambda root: save_raw_module(root / "maps", rank=4), "not a feature vector"),
        (lambda root: save_raw_module(root / "big", input_shape=(16, 16, 3)), "rejects images of shape"),
    ],
)
def test_bad_modules_name_the_handle_and_the_problem(project, make, problem):
    handle = str(make(project))
    with pytest.raises(UserError, match=problem) as error:
        hub.HubLayer(handle, input_shape=(8, 8, 1))
    assert f"hub_handle '{handle}'" in str(error.value) and "\n" not in str(error.value)
