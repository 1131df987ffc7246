"""pipeline/inference.py: an eager forward pass gives Keras' `predict` numbers (a small CNN: bit for
bit); a recurrent model, traced, too."""

import keras
import numpy as np
import pytest

from pipeline import inference


def small_cnn():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.GaussianNoise(0.5, seed=1)(inputs)  # on in training only: must stay off here
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    x = keras.layers.Dropout(0.5, seed=2)(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))


@pytest.mark.parametrize("rows, chunk", [(37, 1024), (37, 10), (1, 1024)])
def test_eager_chunks_equal_keras_predict(rows, chunk):
    model = small_cnn()
    x = np.random.default_rng(0).random((rows, 8, 8, 1), dtype=np.float32)
    ours = inference.predict(model, x, chunk=chunk)
    assert ours.shape == (rows, 3)
    np.testing.assert_array_equal(ours, model.predict(x, verbose=0))


def test_no_rows_give_no_predictions():
    assert inference.predict(small_cnn(), np.zeros((0, 8, 8, 1), np.float32)).shape == (0, 3)


def small_rnn():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 2))
    inner = keras.Sequential([keras.Input((6, 2)), keras.layers.LSTM(4)])  # a recurrent layer inside a model
    return keras.Model(inputs, keras.layers.Dense(3)(inner(inputs)))


@pytest.mark.parametrize("rows, chunk", [(37, 1024), (37, 10), (1, 1024)])
def test_a_recurrent_model_is_traced_and_answers_as_keras_predict(rows, chunk):
    model = small_rnn()
    assert inference.recurrent(model) and not inference.recurrent(small_cnn())
    x = np.random.default_rng(0).random((rows, 6, 2), dtype=np.float32)
    ours = inference.predict(model, x, chunk=chunk)
    assert ours.shape == (rows, 3)
    np.testing.assert_allclose(ours, model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
