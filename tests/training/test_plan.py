"""Plans: a gate's optional `drift:` sub-section parsed into a typed DriftLimit, checked key by key;
what `train` checks before importing a family."""

import subprocess
import sys

import mlflow
import pytest
import yaml

from pipeline import config, data
from pipeline.errors import UserError
from pipeline.training.plan import DriftLimit, check_unimported, make_plan
from tests.helpers import edit_params


def gate_with(project, drift):
    edit_params(project, lambda p: p["retrain"]["gates"]["digits-classifier"].update(drift=drift))
    return make_plan(config.load_params(), "cnn-same").gate


def test_a_gate_without_drift_has_no_limit(project):
    assert make_plan(config.load_params(), "cnn-same").gate.drift is None


def test_drift_limit_is_parsed_typed(project):
    gate = gate_with(project, {"max": 0.3, "action": "quarantine"})
    assert gate.drift == DriftLimit(max=0.3, action="quarantine")
    assert gate_with(project, {"max": 1, "action": "warn"}).drift.max == 1.0


@pytest.mark.parametrize(
    "drift, message",
    [
        ({"mx": 0.3, "action": "warn"}, r"unknown key 'retrain.gates.digits-classifier.drift.mx'.*'max'"),
        ({"max": 0.3}, r"missing key 'retrain.gates.digits-classifier.drift.action'"),
        ({"max": 0.3, "action": "quarantaine"}, r"drift.action = 'quarantaine' is not one of.*'quarantine'"),
        ({"max": 1.5, "action": "warn"}, r"drift.max = 1.5 must be in \(0, 1\]"),
        ({"max": 0, "action": "warn"}, r"drift.max = 0.0 must be in \(0, 1\]"),
        ("high", r"drift = 'high' is not a mapping or null"),
    ],
)
def test_a_bad_drift_limit_is_named(project, drift, message):
    with pytest.raises(UserError, match=message):
        gate_with(project, drift)


def test_typos_are_found_without_importing_a_family(project):
    """check_unimported (what `train` runs before importing TensorFlow) reads the family's schemas
    from models.FAMILIES: a child process proves nothing heavy was imported."""
    code = (
        "import sys; from pipeline import config; from pipeline.training import plan\n"
        "params = config.load_params()\n"
        "plan.check_unimported(params, 'naive', ['train.epochs=3'])  # a baseline ignores Keras keys\n"
        "for name, change in [('mlp', 'train.epochz=3'), ('cnn-same', 'model.paddin=same'),\n"
        "                     ('cnn-same', 'family=cnnn'), ('cnn-same', 'modle.padding=same')]:\n"
        "    try:\n"
        "        plan.check_unimported(params, name, [change])\n"
        "    except Exception as e:\n"
        "        print(e)\n"
        "heavy = ('tensorflow', 'keras', 'mlflow', 'pipeline.models.mlp', 'pipeline.models.cnn')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=project, check=True
    )
    train, model, family, section, imported = out.stdout.strip().splitlines()
    assert "unknown key 'experiments.mlp.train.epochz'" in train and "'epochs'" in train
    assert "unknown key 'experiments.cnn-same.model.paddin'" in model and "'padding'" in model
    assert "family 'cnnn' is unknown" in family and "'cnn'" in family
    assert "unknown key 'experiments.cnn-same.modle'" in section and "'model'" in section
    assert imported == "[]"


@pytest.mark.parametrize("name", ["mlp", "naive", "transfer-feature"])
def test_what_passes_unimported_is_what_make_plan_accepts(project, name):
    params = config.load_params()
    check_unimported(params, name, [])
    assert make_plan(params, name).train is not None
    with pytest.raises(UserError, match=rf"unknown key 'experiments.{name}.train.pace'"):
        make_plan(params, name, ["train.pace=1"])
    with pytest.raises(UserError, match=rf"unknown key 'experiments.{name}.train.pace'"):
        check_unimported(params, name, ["train.pace=1"])


def pasted(message: str) -> dict:
    """The YAML between the last pair of backticks of a message, parsed."""
    return yaml.safe_load(message.rsplit("`", 2)[1])


def missing_gate(project, name: str, register_as: str) -> str:
    edit_params(project, lambda p: p["experiments"][name].update(register_as=register_as))
    with pytest.raises(UserError) as error:
        make_plan(config.load_params(), name)
    return str(error.value)


def test_a_missing_gate_shows_one_to_paste_with_a_threshold_that_fits(project):
    message = missing_gate(project, "cnn-valid", "my-model")
    assert message.startswith("params.yaml: retrain.gates.my-model is missing (the promotion rule); under ")
    assert "not prepared yet" in message  # digits is not prepared: its chance level is unknown
    data.load("digits")  # prepared: 10 classes, chance 0.1
    message = missing_gate(project, "cnn-valid", "my-model")
    assert pasted(message) == {"my-model": {"metric": "test_accuracy", "threshold": 0.15, "margin": 0.005}}
    assert message.endswith("(1.5 x chance 0.1)")
    mlflow.set_experiment("digits-classification")
    with mlflow.start_run(run_name="cnn-valid"):  # a run: just under what it scored, never digits' 0.95
        mlflow.log_metric("test_accuracy", 0.6)
    assert pasted(missing_gate(project, "cnn-valid", "my-model"))["my-model"]["threshold"] == 0.55
    mlflow.set_experiment("co2-forecast")
    with mlflow.start_run(run_name="naive"):  # an error metric: 10 % over the task's best run
        mlflow.log_metric("test_rmse", 2.0)
    message = missing_gate(project, "lstm", "co2-mine")
    assert pasted(message)["co2-mine"] == {"metric": "test_rmse", "threshold": 2.2, "margin": 0.005}
    assert message.endswith("(test_rmse 2 of the best run of co2-forecast, plus 10 %)")


def test_without_a_retrain_section_the_whole_section_is_shown(project):
    edit_params(project, lambda p: p.pop("retrain"))
    message = missing_gate(project, "mlp", "digits-mlp")
    snippet = pasted(message)
    assert (
        list(snippet) == ["retrain"]
        and snippet["retrain"]["gates"]["digits-mlp"]["metric"] == "test_accuracy"
    )
    assert (
        "params.yaml: retrain.gates.digits-mlp is missing (the promotion rule); add `retrain: {gates:"
        in message
    )
