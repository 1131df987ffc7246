import keras
import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.models import lstm
from pipeline.specs import ForecastSpec as Spec


def build(units=(8,), lookback=12, horizon=3):
    return lstm.build(lstm.Params(units=units, dropout=0.1), Spec(lookback, horizon, 4, 0.5, 2.0, 0))


def test_stacked_lstm_maps_a_window_of_levels_to_horizon_levels():
    model = build(units=(8, 4))
    assert [type(layer).__name__ for layer in model.layers].count("LSTM") == 2
    assert model.output.shape[1:] == (3,)


def test_inputs_are_scaled_differences_and_outputs_start_at_the_last_level():
    model = build()
    window = (100 + np.arange(12.0) ** 1.5).reshape(1, 12, 1).astype(np.float32)
    scaled = keras.Model(model.input, model.get_layer("scaled").output)(window)
    expected = (np.diff(window[0, :, 0]) - 0.5) / 2.0  # the spec's training statistics
    assert np.allclose(np.asarray(scaled)[0, :, 0], expected, atol=1e-4)
    head = model.get_layer("scaled_change")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])  # no change predicted
    assert np.allclose(model.predict(window, verbose=0), window[0, -1, 0])
    assert not model.get_layer("differences").trainable_weights


def test_lstm_checks_its_params():
    spec = Spec(12, 3, 4, 0.0, 1.0, 0)
    with pytest.raises(UserError, match="model.units"):
        lstm.check(lstm.Params(units=(), dropout=0.0), spec)
    with pytest.raises(UserError, match="model.dropout"):
        lstm.check(lstm.Params(units=(4,), dropout=1.0), spec)
