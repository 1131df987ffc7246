"""What every network forecaster shares: a window of levels in, scaled differences to the network,
its predicted changes back to levels; and the recurrent networks' per-epoch gradient norm.

The network never has to extrapolate the level (a trending series leaves the training range):
a fixed Conv1D turns the window into one-step differences, scaled with the training split's
statistics; the network reads them and a Dense layer predicts the change from the last observed
level for each step ahead, which is added back. All layers are built-in Keras layers, so a saved
model loads anywhere Keras does, without this package.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from pipeline.errors import UserError
from pipeline.specs import ForecastSpec


def check_window(params, spec: ForecastSpec, family: str) -> None:
    """The shared knobs: one positive layer size per entry, dropout in [0, 1), two levels at least."""
    if not params.units or min(params.units) < 1:
        raise UserError(f"model.units must list at least one positive layer size (got {list(params.units)})")
    if not 0 <= params.dropout < 1:
        raise UserError(f"model.dropout must be in [0, 1) (got {params.dropout})")
    if spec.lookback < 2:
        raise UserError(f"objective.lookback must be at least 2 for the {family} (got {spec.lookback})")


def scaled_differences(levels, spec: ForecastSpec):
    """(lookback, 1) levels → (lookback - 1, 1) one-step changes, scaled by the training statistics."""
    # y[t] - y[t-1] as a frozen 2-tap convolution
    difference = layers.Conv1D(1, 2, use_bias=False, trainable=False, name="differences")
    x = difference(levels)
    difference.set_weights([np.array([-1.0, 1.0]).reshape(2, 1, 1)])
    return layers.Normalization(mean=spec.diff_mean, variance=spec.diff_std**2, name="scaled")(x)


def forecast_levels(x, levels, spec: ForecastSpec):
    """Features → the change from the last level for each step ahead → forecast levels."""
    change = layers.Dense(spec.horizon, name="scaled_change")(x)  # change from the last level, per step
    change = layers.Rescaling(spec.diff_std, name="change")(change)
    last = layers.Flatten(name="last_level")(layers.Cropping1D((spec.lookback - 1, 0))(levels))
    return layers.Add(name="forecast")([last, change])  # (batch, 1) + (batch, horizon)


class RecurrentGradientNorm(keras.callbacks.Callback):
    """After each epoch: the L2 norm of the loss's gradient with respect to each recurrent layer's
    recurrent kernel (the weights that carry the state from one step to the next), on a fixed
    sample of training windows, added to the epoch's logs as `recurrent_grad_norm_<depth>`.

    A norm that stays near zero while the loss is still high is the vanishing gradient the
    lecture warns about for plain RNNs; LSTM's gates keep it alive.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, sample: int = 1024):
        super().__init__()
        self.x, self.y = x[:sample], y[:sample]

    def kernels(self) -> list:
        return [layer.cell.recurrent_kernel for layer in self.model.layers if isinstance(layer, layers.RNN)]

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        import tensorflow as tf

        kernels = self.kernels()
        if logs is None or not kernels or not len(self.x):
            return
        with tf.GradientTape() as tape:
            predicted = self.model(self.x, training=False)
            loss = self.model.compute_loss(x=self.x, y=self.y, y_pred=predicted, training=False)
        gradients = tape.gradient(loss, [kernel.value for kernel in kernels])
        for depth, gradient in enumerate(gradients, start=1):
            logs[f"recurrent_grad_norm_{depth}"] = float(tf.norm(gradient))


def recurrent_callbacks(params, x_train, y_train) -> tuple[keras.callbacks.Callback, ...]:
    """The recurrent families' `callbacks` hook: log the recurrent kernels' gradient norm."""
    return (RecurrentGradientNorm(np.asarray(x_train), np.asarray(y_train)),)
