import pytest

from pipeline import config
from pipeline.config import TrainParams, parse_section, resolve_experiment
from pipeline.errors import UserError
from pipeline.models import cnn


def test_defaults_merge_and_overrides(project):
    params = config.load_params()
    exp = resolve_experiment(params, "cnn-valid", ["train.epochs=3", "model.filters=[8, 16]"])
    assert exp.train["epochs"] == 3
    assert exp.train["batch_size"] == params["defaults"]["train"]["batch_size"]
    assert exp.model["filters"] == [8, 16]
    assert exp.model["padding"] == "valid"  # from the YAML merge key, overriding the anchor
    assert exp.task == "digits-classification"


def test_unknown_experiment_suggests_the_closest(project):
    with pytest.raises(UserError, match=r"unknown experiment 'cnn-sam'.*did you mean 'cnn-same'"):
        resolve_experiment(config.load_params(), "cnn-sam")


def test_misspelt_key_is_named_with_its_place(project):
    exp = resolve_experiment(config.load_params(), "cnn-same", ["model.dropuot=0.1"])
    with pytest.raises(UserError, match=r"unknown key 'experiments.cnn-same.model.dropuot'.*'dropout'"):
        parse_section(cnn.Params, exp.model, "experiments.cnn-same.model")


def test_missing_and_mistyped_keys(project):
    train = dict(resolve_experiment(config.load_params(), "mlp").train)
    del train["epochs"]
    with pytest.raises(UserError, match=r"missing key 'x.epochs'"):
        parse_section(TrainParams, train, "x")
    with pytest.raises(UserError, match=r"x.batch_size = 'big' is not an integer"):
        parse_section(TrainParams, {**train, "epochs": 1, "batch_size": "big"}, "x")
    with pytest.raises(UserError, match=r"x.optimizer = 'adamm' is not one of"):
        parse_section(TrainParams, {**train, "epochs": 1, "optimizer": "adamm"}, "x")


def test_exponent_floats_without_a_dot_are_numbers(project):
    exp = resolve_experiment(config.load_params(), "mlp", ["train.learning_rate=1e-4"])
    train = parse_section(TrainParams, exp.train, "t")
    assert train.learning_rate == 1e-4


def test_padding_accepts_the_documented_forms_only():
    for value, expected in [("same", "same"), ("full", "full"), (1, 1), ([1, 2], (1, 2))]:
        assert config.check_type(value, cnn.Padding, "p") == expected
    for bad in ("sane", [1, 2, 3], 1.5, None):
        with pytest.raises(UserError, match="p = "):
            config.check_type(bad, cnn.Padding, "p")


def test_bad_override_syntax(project):
    with pytest.raises(UserError, match="expected key=value"):
        resolve_experiment(config.load_params(), "mlp", ["train.epochs"])


def test_flatten_gives_dotted_mlflow_param_names():
    assert config.flatten({"model": {"filters": [1]}, "seed": 3}) == {"model.filters": [1], "seed": 3}


def test_unreadable_params_file(project):
    (project / "params.yaml").write_text("experiments: [unclosed\n")
    with pytest.raises(UserError, match=r"params.yaml line \d+"):
        config.load_params()
