import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.models import cnn, cnn_binary, logreg, mlp, mlp_binary
from pipeline.specs import ClassifierSpec as Spec
from tests.models.test_cnn import params as cnn_params

SPEC = Spec(input_shape=(8, 8, 1), num_classes=2, seed=0)


def test_mlp_binary_is_the_mlp_with_one_sigmoid_unit():
    params = mlp.Params(hidden_units=(16,), activation="relu", dropout=0.0)
    model = mlp_binary.build(params, SPEC)
    assert model.output.shape[1:] == (1,) and model.get_layer("probability").activation.__name__ == "sigmoid"
    # one output unit instead of the softmax's two: 16 + 1 weights fewer
    assert mlp.build(params, SPEC).count_params() - model.count_params() == 16 + 1
    p = np.asarray(model.predict(np.random.default_rng(0).random((3, 8, 8, 1)), verbose=0))
    assert p.shape == (3, 1) and ((0 < p) & (p < 1)).all()


def test_cnn_binary_shares_the_cnn_trunk_and_its_checks():
    model = cnn_binary.build(cnn_params(pooling="min", pool_every=1), SPEC)
    assert model.output.shape[1:] == (1,)
    trunk = [type(layer).__name__ for layer in model.layers][:-1]
    assert (
        trunk
        == [
            type(layer).__name__ for layer in cnn.build(cnn_params(pooling="min", pool_every=1), SPEC).layers
        ][:-1]
    )
    with pytest.raises(UserError, match="cnn-binary needs images"):
        cnn_binary.build(cnn_params(), Spec((5,), 2, 0))
    with pytest.raises(UserError, match="model.kernel_size"):
        cnn_binary.FAMILY.check(cnn_params(kernel_size=(0, 2)), SPEC)


def test_logreg_is_a_sigmoid_on_the_pixels_with_one_weight_per_pixel():
    rng = np.random.default_rng(0)
    x = rng.random((80, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(int)
    model = logreg.build(logreg.Params(C=10.0, max_iter=500), SPEC).fit(x, y)
    assert logreg.count_params(model) == 64 + 1
    proba = model.predict_proba(x)
    regression = model[-1]
    z = x.reshape(80, -1) @ regression.coef_[0] + regression.intercept_[0]
    assert np.allclose(proba[:, 1], 1 / (1 + np.exp(-z)))  # the perceptron's sigmoid, fitted by sklearn
    assert (proba.argmax(axis=1) == y).mean() > 0.9
