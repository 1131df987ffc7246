"""End to end: each experiment trains on a small subset for 1-2 epochs; the run is read back from MLflow."""

import mlflow
import numpy as np
import pytest

from pipeline import cli, data
from pipeline.errors import PipelineError
from pipeline.training import keras_loop, loading
from tests.helpers import point_at, train

QUICK = ["--quiet", "--set", "train.limit=200", "--set", "train.epochs=2"]


def runs_of(task: str):
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(task)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def artifact_names(run_id: str) -> set[str]:
    return {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment, family", [("mlp", "mlp"), ("cnn-same", "cnn"), ("cnn-valid", "cnn"), ("svc", "svc")]
)
def test_experiment_end_to_end(project, experiment, family):
    assert cli.main(["train", experiment, *QUICK]) == 0
    (run,) = runs_of("digits-classification")
    info, run_data = run.info, run.data
    assert info.status == "FINISHED" and info.run_name == experiment
    sha = data.read_manifest("digits").sha256
    assert run_data.tags["model_family"] == family
    assert run_data.tags["dataset"] == "digits" and run_data.tags["data_hash"] == sha
    assert run_data.tags["git_commit"]
    assert run_data.tags["mlflow.note.content"]  # the description shown in the UI
    assert run_data.params["train.limit"] == "200" and run_data.params["data.train_examples"] == "200"
    assert run_data.params["train.seed"] == "42" and run_data.params["data.source"] == "sklearn-digits"
    assert 0.0 <= run_data.metrics["test_accuracy"] <= 1.0 and run_data.metrics["test_loss"] > 0
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == sha[:36] and dataset_input.dataset.name == "digits"

    names = artifact_names(info.run_id)
    assert {"model_summary.txt", "confusion_matrix.png", "classification_report.txt"} <= names
    # every run's size: the layer table's total row is the model_params metric
    table = mlflow.artifacts.load_text(f"runs:/{info.run_id}/layer_params.csv").splitlines()
    assert table[-1].startswith("total,") and int(table[-1].split(",")[3]) == run_data.metrics["model_params"]
    assert run_data.metrics["model_params"] > 64  # more than one weight per pixel, in every family
    model = loading.load(f"runs:/{info.run_id}/model")  # cnn-same's: its Keras model, unwrapped
    assert model.form == {"svc": "sklearn", "cnn-same": "served"}.get(experiment, "keras")
    x_test = data.load("digits").examples("test")[0].read(slice(7))
    proba = np.asarray(model.predict(x_test))
    assert proba.shape == (7, 10) and np.allclose(proba.sum(axis=1), 1, atol=1e-3)

    if family != "svc":
        assert {"layer_params.csv", "training_curves.png"} <= names
        assert run_data.params["model.padding" if family == "cnn" else "model.dropout"]
        epochs = int(run_data.metrics["epochs_trained"])
        history = mlflow.MlflowClient().get_metric_history(info.run_id, "val_loss")
        assert epochs == 2 and [m.step for m in history] == [0, 1]
        assert 1 <= run_data.metrics["epochs_to_converge"] <= 2
        assert {"loss", "accuracy", "val_accuracy"} <= set(run_data.metrics)


@pytest.mark.slow
def test_same_seed_gives_same_metrics(project):
    for _ in range(2):
        assert cli.main(["train", "mlp", *QUICK]) == 0
    first, second = (r.data.metrics for r in runs_of("digits-classification"))
    assert first["test_loss"] == second["test_loss"] and first["val_loss"] == second["val_loss"]
    assert cli.main(["train", "mlp", *QUICK, "--set", "train.seed=7"]) == 0
    third = runs_of("digits-classification")[0].data.metrics
    assert third["test_loss"] != first["test_loss"]


def test_a_run_that_raises_ends_failed(project, monkeypatch):
    def broken_fit(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(keras_loop, "fit", broken_fit)
    with pytest.raises(RuntimeError, match="injected"):
        train("cnn-same", ["train.limit=50"])
    (run,) = runs_of("digits-classification")
    assert run.info.status == "FAILED"


@pytest.mark.integration  # trains mlp until it diverges
def test_divergence_fails_the_run_with_a_reason(project):
    with pytest.raises(PipelineError, match="training diverged"):
        train("mlp", ["train.limit=200", "train.epochs=3", "train.optimizer=sgd", "train.learning_rate=1e12"])
    (run,) = runs_of("digits-classification")
    assert run.info.status == "FAILED"


def test_user_errors_start_no_run(project):
    assert cli.main(["train", "cnn-same", "--set", "model.padding=sane"]) == 2
    assert cli.main(["train", "cnn-same", "--set", "model.dropuot=0.1"]) == 2
    assert cli.main(["train", "cnn-valid", "--set", "model.filters=[8,8,8,8]"]) == 2
    assert all(r.info.status != "RUNNING" for r in runs_of("digits-classification"))
    assert len(runs_of("digits-classification")) <= 1  # only the shrink error gets as far as a run


@pytest.mark.integration
def test_a_registered_model_records_what_it_was_trained_on(champions, monkeypatch):
    point_at(monkeypatch, champions)
    classifier = loading.load("models:/digits-classifier/1")
    assert classifier.metadata["trained_on"] == {
        "dataset": "digits",
        "source": "sklearn-digits",
        "input_shape": [8, 8, 1],
        "classes": 10,
        "image_size": [8, 8],
        "color_mode": "grayscale",
        "native_size": {"median": [8, 8], "min": [8, 8], "max": [8, 8], "color_share": 0.0},
    }
    forecaster = loading.load("models:/co2-forecaster/1").metadata["trained_on"]
    assert forecaster["dataset"] == "co2" and "image_size" not in forecaster


@pytest.mark.integration
def test_a_run_near_chance_gets_the_quality_warning_tag_and_one_line(project, capsys):
    from tests.helpers import edit_params

    rng = np.random.default_rng(0)
    arrays = {
        f"x_{s}": rng.integers(0, 256, (n, 8, 8), dtype=np.uint8) for s, n in (("train", 200), ("test", 100))
    }
    arrays |= {f"y_{s}": rng.integers(0, 10, n) for s, n in (("train", 200), ("test", 100))}  # random labels
    (project / "data" / "raw").mkdir(parents=True)
    np.savez(project / "data" / "raw" / "noise.npz", **arrays)

    def add(params):
        params["data"]["noise"] = {
            "source": "npz",
            "path": "data/raw/noise.npz",
            "val_fraction": 0.2,
            "seed": 0,
        }
        params["experiments"]["noise"] = {
            "task": "noise", "family": "mlp", "dataset": "noise", "train": {"epochs": 2},
            "model": {"hidden_units": [16], "activation": "relu", "dropout": 0.0},
        }  # fmt: skip

    edit_params(project, add)
    outcome = train("noise")
    assert outcome.metrics["test_accuracy"] < 0.15 and "near chance" in outcome.quality_warning
    tag = mlflow.MlflowClient().get_run(outcome.run_id).data.tags["quality_warning"]
    assert tag == outcome.quality_warning
    lines = [line for line in capsys.readouterr().err.splitlines() if "warning:" in line]
    assert lines == [f"noise: warning: {tag}"]
