"""The binary objective: 0/1 labels from the chosen classes, sigmoid networks, and the digits-binary runs."""

import dataclasses

import mlflow
import numpy as np
import pytest

from pipeline import cli, config, data
from pipeline.errors import UserError
from pipeline.objectives import binary
from pipeline.training import tracking
from tests.helpers import assert_one_line_error, assert_plots_draw, cli_in_process

QUICK = ["--quiet", "--set", "train.limit=300", "--set", "train.epochs=2"]
ONE_VS_REST = binary.Params(positive=(8,), negative=None)
NAMES = [str(c) for c in range(10)]


def test_one_digit_against_the_rest_and_a_pair(project):
    dataset = data.load("digits")
    train = config.TrainParams(1, 32, 0.001, "adam", 1, 0, None, "default")
    splits, spec = binary.prepare(dataset, train, ONE_VS_REST)
    x_test, y_test = dataset.examples("test")
    assert splits.class_names == ["not 8", "8"] and spec.num_classes == 2
    assert len(splits.x_test) == len(x_test) and np.array_equal(splits.y_test, (y_test == 8).astype(int))
    pair, _ = binary.prepare(dataset, dataclasses.replace(train, limit=50), binary.Params((8,), (1,)))
    assert pair.class_names == ["1", "8"] and len(pair.x_train) == 50
    assert len(pair.x_test) == np.isin(y_test, [1, 8]).sum() and set(pair.y_test) == {0, 1}


@pytest.mark.parametrize(
    "params, message",
    [
        (binary.Params((11,), None), "positive: class '11' does not exist"),
        (binary.Params((), None), "positive is empty"),
        (binary.Params((8,), (8, 1)), "must not share a class"),
        (binary.Params(tuple(range(10)), None), "must be non-empty"),
    ],
)
def test_bad_sections_are_user_errors(params, message):
    with pytest.raises(UserError, match=message):
        binary.check_params(params, NAMES)


class Scores:
    """An estimator that returns given probabilities."""

    def __init__(self, p):
        self.p = np.asarray(p, dtype=float)

    def predict_proba(self, x):
        return np.stack([1 - self.p, self.p], axis=1)


def test_metrics_come_from_the_probability_of_the_positive_class(tmp_path):
    y = np.array([0, 0, 0, 1, 1])
    splits = binary.Splits(None, None, None, None, np.zeros((5, 1)), y, ["not 8", "8"])
    metrics, artifacts = binary.evaluate(Scores([0.1, 0.2, 0.7, 0.6, 0.9]), splits)
    assert metrics["test_accuracy"] == pytest.approx(0.8)  # 0.7 is a false positive at 0.5
    assert metrics["test_roc_auc"] == pytest.approx(5 / 6)  # 0.7 outranks one positive (0.6)
    expected_loss = -np.mean(np.log([0.9, 0.8, 0.3, 0.6, 0.9]))
    assert metrics["test_loss"] == pytest.approx(expected_loss)
    assert {"roc_curve.png", "confusion_matrix.png", "classification_report.txt"} <= set(artifacts)
    assert_plots_draw(artifacts, tmp_path)
    assert binary.OBJECTIVE.direction("test_roc_auc") == "max" and binary.OBJECTIVE.headline == "test_roc_auc"


def binary_runs():
    tracking.configure()
    client = mlflow.MlflowClient()
    return client.search_runs([client.get_experiment_by_name("digits-binary").experiment_id])


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment, family",
    [("mlp-binary", "mlp-binary"), ("cnn-binary", "cnn-binary"), ("logreg-binary", "logreg")],
)
def test_digits_binary_end_to_end(project, experiment, family):
    assert cli.main(["train", experiment, *QUICK]) == 0
    (run,) = binary_runs()
    metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
    assert tags["model_family"] == family and tags["objective"] == "binary"
    assert tags["problem"] == "digits: 8 vs not 8" and params["objective.positive"] == "[8]"
    assert 0.5 <= metrics["test_roc_auc"] <= 1 and 0 <= metrics["test_accuracy"] <= 1
    assert metrics["test_loss"] > 0 and metrics["model_params"] >= 65
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"roc_curve.png", "confusion_matrix.png", "layer_params.csv"} <= names
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    out = np.asarray(model.predict(data.load("digits").examples("test")[0].read(slice(4))))
    # networks: P(8) from one sigmoid unit; the scikit-learn baseline: predict_proba's two columns
    assert out.shape == ((4, 2) if family == "logreg" else (4, 1)) and ((0 <= out) & (out <= 1)).all()
    if family != "logreg":
        assert {"roc_auc", "val_roc_auc", "accuracy"} <= set(metrics)  # per-epoch, from Keras


def test_a_class_that_does_not_exist_stops_before_any_run(project, capsys):
    # in this process: the check needs the family, and so TensorFlow (tests/test_cli.py runs one
    # such error in a real process)
    result = cli_in_process(project, capsys, "train", "logreg-binary", "--set", "objective.positive=[42]")
    assert_one_line_error(result, "objective.positive: class '42' does not exist")
