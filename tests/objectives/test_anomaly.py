"""The anomaly objective: threshold rule, retrieval metric, data preparation, and the digits-anomaly runs."""

import mlflow
import numpy as np
import pytest

from pipeline import cli, config, data
from pipeline.errors import UserError
from pipeline.objectives import anomaly
from pipeline.training import tracking
from tests.helpers import assert_one_line_error, cli_in_process

QUICK = ["--quiet", "--set", "train.limit=200", "--set", "train.epochs=2"]
PARAMS = anomaly.Params(
    anomaly_classes=(5, 6, 7, 8, 9), latent_dim=8, score="mse", threshold_quantile=0.95, retrieval_k=10
)


def test_threshold_is_the_quantile_of_normal_validation_scores():
    rng = np.random.default_rng(0)
    normal_val = rng.uniform(0, 1, 20_000)
    cut = anomaly.threshold(normal_val, 0.95)
    assert cut == pytest.approx(0.95, abs=0.01)
    fresh_normal = rng.uniform(0, 1, 20_000)  # about 5 % of unseen normal scores lie above it
    assert (fresh_normal > cut).mean() == pytest.approx(0.05, abs=0.01)
    assert anomaly.threshold(normal_val, 0.5) == pytest.approx(0.5, abs=0.02)


def test_precision_at_k_counts_same_class_neighbours_without_the_query():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 30)
    separated = rng.normal(size=(60, 3)) * 0.1 + labels[:, None] * 10
    assert anomaly.precision_at_k(separated, labels, 10) == 1.0
    mixed = rng.normal(size=(60, 3))  # codes that ignore the class: about 29/59 same-class neighbours
    assert 0.3 < anomaly.precision_at_k(mixed, labels, 10) < 0.7
    pairs = np.array([[0.0], [0.1], [5.0], [5.1]])  # each point's nearest other point has the other label
    assert anomaly.precision_at_k(pairs, np.array([0, 1, 0, 1]), 1) == 0.0


@pytest.mark.parametrize(
    "change, message",
    [
        ({"anomaly_classes": (5, 11)}, "class '11' does not exist"),
        ({"anomaly_classes": tuple(range(10))}, "none is left as normal"),
        ({"anomaly_classes": ()}, "is empty"),
        ({"latent_dim": 0}, "latent_dim must be at least 1"),
        ({"latent_dim": -3}, "latent_dim must be at least 1"),
        ({"threshold_quantile": 1.0}, "threshold_quantile must be between 0 and 1"),
    ],
)
def test_check_params_rejects_bad_sections(change, message):
    import dataclasses

    with pytest.raises(UserError, match=message):
        anomaly.check_params(dataclasses.replace(PARAMS, **change), [str(c) for c in range(10)])


def test_prepare_trains_on_normal_classes_only(project):
    dataset = data.load("digits")
    train_params = config.TrainParams(1, 32, 0.001, "adam", 1, 0, None, "default")
    splits, spec = anomaly.prepare(dataset, train_params, PARAMS)
    _, y_train = dataset.examples("train")
    _, y_val = dataset.examples("val")
    assert len(splits.x_train) == np.isin(y_train, range(5)).sum()
    assert len(splits.x_val) == np.isin(y_val, range(5)).sum() and splits.validation[0] is splits.x_val
    # no targets of their own: the reconstruction target is the input (Rows.dataset's targets=None)
    assert splits.y_train is None and splits.validation[1] is None
    assert np.array_equal(splits.test_is_anomaly, splits.test_labels >= 5)
    assert 0.4 < splits.test_is_anomaly.mean() < 0.6  # the stratified test split mixes both
    assert spec.input_shape == (8, 8, 1) and spec.latent_dim == 8


def runs_of(task: str):
    client = mlflow.MlflowClient(tracking.tracking_uri())  # this test's store, not the last one set
    experiment = client.get_experiment_by_name(task)
    return client.search_runs([experiment.experiment_id]) if experiment else []


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment, extra",
    [
        ("autoencoder", ["--set", "objective.latent_dim=2"]),
        ("pca", ["--set", "objective.latent_dim=2"]),
        ("isolation-forest", []),
    ],
)
def test_anomaly_experiment_end_to_end(project, experiment, extra):
    assert cli.main(["train", experiment, *QUICK, *extra]) == 0
    (run,) = runs_of("digits-anomaly")
    info, run_data = run.info, run.data
    assert info.status == "FINISHED" and info.run_name == experiment
    assert run_data.tags["model_family"] == experiment and run_data.tags["objective"] == "anomaly"
    assert run_data.params["objective.anomaly_classes"] == "[5, 6, 7, 8, 9]"
    assert run_data.params["objective.threshold_quantile"] == "0.95"
    assert run_data.params["data.train_examples"] == "200"
    metrics = run_data.metrics
    for name in ("test_roc_auc", "test_precision", "test_recall", "test_precision_at_10", "val_roc_auc"):
        assert 0.0 <= metrics[name] <= 1.0, name
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(info.run_id)}
    assert {"anomaly_scores.png", "anomaly_report.txt", "model_summary.txt"} <= names
    report = mlflow.artifacts.load_text(f"runs:/{info.run_id}/anomaly_report.txt").splitlines()
    assert len(report) == 11 and report[6].startswith("5,anomaly,") and report[1].startswith("0,normal,")

    if experiment == "isolation-forest":
        assert "test_reconstruction_mse" not in metrics and "latent_space.png" not in names
        model = mlflow.pyfunc.load_model(f"runs:/{info.run_id}/model")
        labels = np.asarray(model.predict(data.load("digits").examples("test")[0].read(slice(6))))
        assert set(labels) <= {-1, 1}
        return
    assert metrics["test_reconstruction_mse"] > 0
    assert {"latent_space.png", "reconstructions.png"} <= names  # latent_dim=2: the scatter plot
    if experiment == "autoencoder":
        history = mlflow.MlflowClient().get_metric_history(info.run_id, "val_loss")
        assert int(metrics["epochs_trained"]) == 2 and [m.step for m in history] == [0, 1]
        assert run_data.params["model.architecture"] == "conv"
        model = mlflow.pyfunc.load_model(f"runs:/{info.run_id}/model")
        x_test = data.load("digits").examples("test")[0].read(slice(3))
        assert np.asarray(model.predict(x_test)).shape == (3, 8, 8, 1)


@pytest.mark.parametrize(
    "setting, fragments",
    [
        ("objective.anomaly_classes=[5,42]", ["objective.anomaly_classes", "class '42' does not exist"]),
        ("objective.latent_dim=0", ["objective.latent_dim must be at least 1", "got 0"]),
        ("objective.latent_dim=-2", ["objective.latent_dim must be at least 1"]),
    ],
)
def test_bad_anomaly_input_is_one_line_and_starts_no_run(project, capsys, setting, fragments):
    # in this process: the check needs the family, and so TensorFlow (tests/test_cli.py runs one
    # such error in a real process)
    result = cli_in_process(project, capsys, "train", "autoencoder", "--set", setting)
    assert_one_line_error(result, *fragments)
    assert runs_of("digits-anomaly") == []
