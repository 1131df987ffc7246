import keras
import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.models import dense_window, lstm, rnn, windows
from pipeline.specs import ForecastSpec as Spec

SPEC = Spec(12, 3, 4, 0.5, 2.0, 0)


def test_stacked_simple_rnn_maps_a_window_of_levels_to_horizon_levels():
    model = rnn.build(rnn.Params(units=(8, 4), dropout=0.0), SPEC)
    assert [type(layer).__name__ for layer in model.layers].count("SimpleRNN") == 2
    assert model.output.shape[1:] == (3,)
    assert model.get_layer("rnn_1").output.shape[1:] == (11, 8)  # 11 differences of 12 levels, in order


def test_dense_window_flattens_the_window_and_keeps_the_shared_front_and_back_end():
    model = dense_window.build(dense_window.Params(units=(16, 8), activation="relu", dropout=0.1), SPEC)
    assert model.get_layer("weeks").output.shape[1:] == (11,)  # the order is gone: 11 input columns
    assert [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)] == [16, 8, 3]
    window = (100 + np.arange(12.0)).reshape(1, 12, 1).astype(np.float32)
    head = model.get_layer("scaled_change")
    head.set_weights([np.zeros_like(w) for w in head.get_weights()])  # no change predicted
    assert np.allclose(model.predict(window, verbose=0), window[0, -1, 0])  # the last level, every step


@pytest.mark.parametrize("family", [rnn, dense_window])
def test_checks(family):
    extra = {"activation": "relu"} if family is dense_window else {}
    with pytest.raises(UserError, match="model.units"):
        family.check(family.Params(units=(), dropout=0.0, **extra), SPEC)
    with pytest.raises(UserError, match="model.dropout"):
        family.check(family.Params(units=(4,), dropout=1.5, **extra), SPEC)
    with pytest.raises(UserError, match=f"at least 2 for the {family.FAMILY.name}"):
        family.check(family.Params(units=(4,), dropout=0.0, **extra), Spec(1, 3, 4, 0.0, 1.0, 0))


@pytest.mark.slow
@pytest.mark.parametrize("family", [lstm, rnn])
def test_recurrent_families_log_their_recurrent_kernels_gradient_norm_each_epoch(family):
    model = family.build(family.Params(units=(6, 4), dropout=0.0), SPEC)
    rng = np.random.default_rng(0)
    x = (100 + rng.normal(size=(40, 12, 1)).cumsum(axis=1)).astype(np.float32)
    y = x[:, -1:, 0] + rng.normal(size=(40, 3)).astype(np.float32)
    (callback,) = family.FAMILY.callbacks(None, x, y)
    assert isinstance(callback, windows.RecurrentGradientNorm)
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[callback]).history
    for depth in (1, 2):  # one per recurrent layer, every epoch, positive
        norms = history[f"recurrent_grad_norm_{depth}"]
        assert len(norms) == 2 and all(n > 0 and np.isfinite(n) for n in norms)
    assert dense_window.FAMILY.callbacks(None, x, y) == ()  # nothing recurrent to watch
