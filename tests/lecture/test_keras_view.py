"""lecture/keras_view.py: a family's Keras code as the pipeline runs it, and the lecture's formulas
beside Keras' own counts."""

from pipeline import config, data
from pipeline.lecture import keras_view
from pipeline.training.plan import make_plan


def built(experiment: str):
    plan = make_plan(config.load_params(), experiment)
    _, spec = plan.objective.prepare(data.load(plan.exp.dataset), plan.train, plan.objective_params)
    return plan.family.build(plan.model, spec)


def test_the_formulas_give_keras_counts_and_say_why_a_convolution_has_no_bias(project):
    table = keras_view.layer_counts(built("cnn-same"))
    conv = table.loc["conv2"]
    assert conv["formula"] == "(3·3·32 + 0)·64" and conv["by formula"] == conv["params (Keras)"] == 18432
    assert "no bias" in conv["note"] and "batch norm" in conv["note"]
    bn = table.loc["bn2"]
    assert (bn["by formula"], bn["trained"], bn["not trained"]) == (256, 128, 128)
    assert table.loc["dense", "formula"] == "(1024 + 1)·128"
    assert (
        table.loc["pool2", "output size (n + 2p − k)/s + 1"] == "(8 + 2·0 − 2)/2 + 1 = 4 (rows and columns)"
    )
    assert table.loc["total", "params (Keras)"] == 151_594 == table.loc["total", "by formula"]


def test_valid_padding_shrinks_the_map_by_the_formula(project):
    table = keras_view.layer_counts(built("cnn-valid"))
    assert (
        table.loc["conv1", "output size (n + 2p − k)/s + 1"] == "(8 + 2·0 − 3)/1 + 1 = 6 (rows and columns)"
    )
    assert table.loc["conv1", "output shape"] == (6, 6, 32)


def test_recurrent_formulas_and_a_frozen_layer(project):
    table = keras_view.layer_counts(built("lstm"))
    assert (
        table.loc["lstm_1", "formula"] == "4·((1 + 64)·64 + 64)"
        and table.loc["lstm_1", "by formula"] == 16_896
    )
    assert table.loc["differences", "note"].startswith("frozen")  # the fixed [-1, 1] difference filter
    assert "output size (n + 2p − k)/s + 1" not in table  # no convolution over images: no empty column


def test_code_shows_a_familys_build_and_what_it_calls_never_its_checks():
    code = keras_view.code("dense-window")
    assert code.source.startswith("# pipeline.models.dense_window.build\ndef build(")
    assert "def scaled_differences(" in code.source and "def forecast_levels(" in code.source
    assert "def check" not in code.source and code.source.count("def build(") == 1
