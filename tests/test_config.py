import pytest

from pipeline import config
from pipeline.config import TrainParams, parse_section, resolve_experiment
from pipeline.errors import UserError
from pipeline.models import cnn, schemas


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
    """YAML 1.2's float rule, as editors read params.yaml: `1e-4` is a number, in the file and in --set."""
    exp = resolve_experiment(config.load_params(), "mlp", ["train.learning_rate=1e-4"])
    assert exp.train["learning_rate"] == 1e-4
    assert parse_section(TrainParams, exp.train, "t").learning_rate == 1e-4
    assert config.yaml.load("[1e-4, 1.0e4, 3, .5, 1e]", Loader=config.YamlLoader) == [1e-4, 1e4, 3, 0.5, "1e"]


def test_validation_is_strict_as_the_schema(project):
    """A quoted number is a string, a float is not an integer, and true is not a number."""
    train = resolve_experiment(config.load_params(), "mlp").train
    for key, value, message in [
        ("learning_rate", "1e-4", "t.learning_rate = '1e-4' is not a number"),
        ("epochs", 2.0, "t.epochs = 2.0 is not an integer"),
        ("learning_rate", True, "t.learning_rate = True is not a number"),
    ]:
        with pytest.raises(UserError, match=f"^params.yaml: {message}$"):
            parse_section(TrainParams, {**train, key: value}, "t")


def test_padding_accepts_the_documented_forms_only():
    for value, expected in [("same", "same"), ("full", "full"), (1, 1), ([1, 2], (1, 2))]:
        assert config.check_type(value, schemas.Padding, "p") == expected
    for bad in ("sane", [1, 2, 3], 1.5, None):
        with pytest.raises(UserError, match="p = "):
            config.check_type(bad, schemas.Padding, "p")


def test_bad_override_syntax(project):
    with pytest.raises(UserError, match="expected key=value"):
        resolve_experiment(config.load_params(), "mlp", ["train.epochs"])


def test_flatten_gives_dotted_mlflow_param_names():
    assert config.flatten({"model": {"filters": [1]}, "seed": 3}) == {"model.filters": [1], "seed": 3}


def test_unreadable_params_file(project):
    (project / "params.yaml").write_text("experiments: [unclosed\n")
    with pytest.raises(UserError, match=r"params.yaml line \d+"):
        config.load_params()


@pytest.mark.parametrize("name", ["it's", "a b", "-x", "x" * 101, "ümlaut"])
@pytest.mark.integration  # `python -m pipeline` in a real process, per name
def test_names_follow_the_documented_pattern(bare_project, name):
    from tests.helpers import assert_one_line_error, edit_params, run_cli

    project = bare_project

    edit_params(project, lambda p: p["experiments"].__setitem__(name, dict(p["experiments"]["mlp"])))
    result = run_cli(project, "train", "mlp", "--set", "train.epochs=1")
    assert_one_line_error(result, "is not a valid name (letters, digits")
    assert not (project / "mlruns" / "mlflow.db").exists()  # refused before any run or store


def test_the_retrain_section_is_checked(project):
    from tests.helpers import edit_params

    edit_params(project, lambda p: p["retrain"].__setitem__("settle_second", 5))
    with pytest.raises(
        UserError, match=r"unknown key 'retrain.settle_second'.*did you mean 'settle_seconds'"
    ):
        config.load_params()
    edit_params(
        project, lambda p: (p["retrain"].pop("settle_second"), p["retrain"].update(settle_seconds=-1))
    )
    with pytest.raises(UserError, match=r"retrain.settle_seconds must be >= 0"):
        config.load_params()
