"""Running a Keras model on arrays, as evaluation, the gate and the drift profile do.

Keras' `Model.predict` traces a tf.function the first time it runs on a model, which costs more
than the prediction itself on a test split of a few hundred rows, and every run predicts on fresh
models (its own, then the champion in the gate). Calling the model eagerly, a chunk of rows at a
time, gives the same numbers (the sigmoid heads' outputs may differ from `predict`'s in float32's
last digits). A recurrent layer called eagerly runs its time loop in Python, one step of ops at a
time, so a model with one is traced once instead (`predict_on_batch`). What matters for the gate is
that one path scores both the run and, later, the champion it re-evaluates. The scoring server,
which predicts many times on one model, keeps `predict_on_batch` (traced once).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

CHUNK = 1024  # rows per eager call at most: bounds the activations held at once on a large input
CHUNK_BYTES = 16 * 2**20  # and at most about this many bytes of float32 input (large images)


def predict(model, x, chunk: int = CHUNK) -> np.ndarray:
    """`model.predict(x)`: a Keras model in inference mode (dropout and noise off), `x` a piece at
    a time (`pieces`), called eagerly, or traced once if it is recurrent; anything else with a
    Keras-like `predict(x, verbose=0)` (a loaded model) as it predicts."""
    import keras

    if not isinstance(model, keras.Model):
        return np.asarray(model.predict(x, verbose=0))
    if recurrent(model):
        return np.concatenate([model.predict_on_batch(part) for part in pieces(x, chunk)])
    # no rows: one call all the same (an empty piece), for the output's shape
    return np.concatenate(
        [keras.ops.convert_to_numpy(model(part, training=False)) for part in pieces(x, chunk)]
    )


def recurrent(model) -> bool:
    """Whether the model (or a model inside it) has a recurrent layer (LSTM, GRU, SimpleRNN, ...)."""
    import keras

    return any(
        isinstance(layer, keras.layers.RNN) or (isinstance(layer, keras.Model) and recurrent(layer))
        for layer in model.layers
    )


def pieces(x, rows: int = CHUNK, nbytes: int | None = CHUNK_BYTES) -> Iterator[np.ndarray]:
    """The rows of `x` as float arrays of at most `rows` rows and about `nbytes` bytes of float32
    each (at least one piece, empty when `x` has no rows): an array's (or text windows') slices, or
    images read on use (data.streams.Rows, read a piece at a time from their split file)."""
    stored = hasattr(x, "image_shape")  # images read on use; else sliceable rows (arrays, text windows)
    row = int(np.prod(x.image_shape if stored else x.shape[1:]))
    size = max(1, rows if nbytes is None else min(rows, nbytes // (4 * max(1, row))))
    if stored:
        return x.chunks(size)
    return (x[start : start + size] for start in range(0, len(x), size) or [0])


def for_many_calls(model):
    """`predict` for many small calls of one shape (text completed a character at a time): a Keras
    model's `predict_on_batch`, traced once (an eager call of a recurrent layer costs ~40 times
    more); anything else's `predict`."""
    import keras

    if isinstance(model, keras.Model):
        return lambda x: np.asarray(model.predict_on_batch(x))
    return lambda x: np.asarray(model.predict(x, verbose=0))
