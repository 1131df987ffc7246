"""Running a Keras model on arrays, as evaluation, the gate and the drift profile do.

Keras' `Model.predict` traces a tf.function the first time it runs on a model, which costs more
than the prediction itself on a test split of a few hundred rows, and every run predicts on fresh
models (its own, then the champion in the gate). Calling the model eagerly, a chunk of rows at a
time, gives the same numbers (the SimpleRNN's and the sigmoid heads' outputs may differ from
`predict`'s in float32's last digits). What matters for the gate is that one path scores both the
run and, later, the champion it re-evaluates. The scoring server, which predicts many times on
one model, keeps `predict_on_batch` (traced once).
"""

from __future__ import annotations

import numpy as np

CHUNK = 1024  # rows per eager call at most: bounds the activations held at once on a large input
CHUNK_BYTES = 16 * 2**20  # and at most about this many bytes of float32 input (large images)


def predict(model, x: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """`model.predict(x)` without the trace: a Keras model in inference mode (dropout and noise
    off); anything else with a Keras-like `predict(x, verbose=0)` (a loaded model) as it predicts.
    `x` may be any sliceable rows (data.streams.Rows: read a chunk at a time)."""
    import keras

    if not isinstance(model, keras.Model):
        return np.asarray(model.predict(x, verbose=0))
    chunk = chunk_rows(x, chunk)
    starts = range(0, len(x), chunk) or [0]  # no rows: one call all the same, for the output's shape
    return np.concatenate(
        [keras.ops.convert_to_numpy(model(x[i : i + chunk], training=False)) for i in starts]
    )


def chunk_rows(x, chunk: int = CHUNK) -> int:
    """Rows of `x` per call: at most `chunk`, and at most about CHUNK_BYTES of float32 input."""
    return max(1, min(chunk, CHUNK_BYTES // (4 * max(1, int(np.prod(x.shape[1:]))))))


def for_many_calls(model):
    """`predict` for many small calls of one shape (text completed a character at a time): a Keras
    model's `predict_on_batch`, traced once (an eager call of a recurrent layer costs ~40 times
    more); anything else's `predict`."""
    import keras

    if isinstance(model, keras.Model):
        return lambda x: np.asarray(model.predict_on_batch(x))
    return lambda x: np.asarray(model.predict(x, verbose=0))
