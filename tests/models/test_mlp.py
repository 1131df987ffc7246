import keras

from pipeline.models import mlp
from pipeline.specs import ClassifierSpec as Spec


def test_mlp_layers_and_output():
    model = mlp.build(
        mlp.Params(hidden_units=(16, 8), activation="relu", dropout=0.1),
        Spec(input_shape=(8, 8, 1), num_classes=10, seed=0),
    )
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in dense] == [16, 8, 10]
    assert dense[0].count_params() == (64 + 1) * 16
    assert model.output.shape[1:] == (10,)


def test_single_layer_perceptron_on_a_table():
    model = mlp.build(
        mlp.Params(hidden_units=(), activation="relu", dropout=0.0),
        Spec(input_shape=(5,), num_classes=3, seed=0),
    )
    assert model.count_params() == (5 + 1) * 3
