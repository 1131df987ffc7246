"""Tracking helpers: dataset logging survives sibling runs racing to insert the same dataset row;
every run records MLflow's system metrics quietly, and no epoch's metrics are lost."""

import mlflow
import numpy as np
import pytest

from pipeline import data
from pipeline.training import tracking
from tests.helpers import run_cli, train


def test_log_dataset_retries_once_when_a_sibling_inserted_the_row(project, monkeypatch):
    dataset = data.load("digits")
    x, y = dataset.examples("train")
    real_log_input, calls = mlflow.log_input, []

    def racing_log_input(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:  # what the loser of the race sees
            raise mlflow.exceptions.MlflowException("UNIQUE constraint failed: datasets.digest")
        return real_log_input(*args, **kwargs)

    monkeypatch.setattr(mlflow, "log_input", racing_log_input)
    with tracking.start_run("tracking-test", "race", {}) as run:
        tracking.log_dataset(dataset, x.select(range(10)), y[:10])
    assert len(calls) == 2
    (logged,) = mlflow.get_run(run.info.run_id).inputs.dataset_inputs
    assert logged.dataset.digest == dataset.sha256[: tracking.DIGEST_CHARS]


def test_log_dataset_raises_a_persistent_error(project, monkeypatch):
    dataset = data.load("digits")

    def broken(*args, **kwargs):
        raise mlflow.exceptions.MlflowException("store is read-only")

    monkeypatch.setattr(mlflow, "log_input", broken)
    with pytest.raises(mlflow.exceptions.MlflowException, match="read-only"):
        with tracking.start_run("tracking-test", "broken", {}):
            tracking.log_dataset(dataset, np.zeros((2, 8, 8, 1)))


@pytest.mark.slow
def test_a_short_training_run_records_system_metrics_quietly(project):
    result = run_cli(
        project, "train", "mlp", "--quiet", "--set", "train.epochs=3", "--set", "train.limit=200"
    )
    assert result.returncode == 0, result.stderr
    assert "system metrics" not in result.stdout + result.stderr  # MLflow's INFO lines stay off
    (run,) = mlflow.search_runs(experiment_names=["digits-classification"], output_format="list")
    names = {k for k in run.data.metrics if k.startswith("system/")}
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= names
    assert {"system/disk_usage_percentage", "system/network_receive_megabytes"} <= names
    seconds = (run.info.end_time - run.info.start_time) / 1000
    samples = mlflow.MlflowClient().get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert len(samples) >= 1 and seconds < 60  # one a second: even a few-second run has them


def test_a_runs_mlflow_settings_and_sigterm_handler_hold_for_the_run_only(project, monkeypatch):
    import os
    import signal

    for name in tracking.RUN_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "2")  # a user's value wins
    handler = signal.getsignal(signal.SIGTERM)
    with tracking.start_run("tracking-test", "settings", {}):
        assert os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] == "1"
        assert os.environ["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] == "2"
        assert signal.getsignal(signal.SIGTERM) is not handler  # ends the run as KILLED
    assert "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL" not in os.environ
    assert os.environ["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] == "2"
    assert signal.getsignal(signal.SIGTERM) is handler


def test_system_metrics_can_be_turned_off(project, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
    with tracking.start_run("tracking-test", "quiet", {}) as run:
        mlflow.log_metric("x", 1.0)
    assert not any(k.startswith("system/") for k in mlflow.get_run(run.info.run_id).data.metrics)


@pytest.mark.integration  # trains mlp for 4 epochs
def test_every_epoch_is_logged_before_the_run_ends(project):
    outcome = train("mlp", ["train.epochs=4", "train.patience=5", "train.limit=200"], log_outputs=False)
    history = mlflow.MlflowClient().get_metric_history(outcome.run_id, "val_loss")
    assert sorted(m.step for m in history) == [0, 1, 2, 3]  # the last epoch too
    assert mlflow.get_run(outcome.run_id).data.metrics["epochs_trained"] == 4


def test_a_dataset_input_of_streamed_images_records_their_shape_and_the_skipped_files(project):
    dataset = data.load("digits")
    skipped = [
        {"file": "cats/broken.jpg", "reason": "not an image"},
        {"file": "dogs/x.png", "reason": "truncated"},
    ]
    manifest = dataset.manifest.model_copy(update={"unreadable": skipped})
    folder = data.Dataset(dataset.name, manifest, dataset.arrays)
    x, y = folder.examples("train")
    with tracking.start_run("tracking-test", "streamed", {}) as run:
        tracking.log_dataset(folder, x, y)
    logged = mlflow.get_run(run.info.run_id)
    profile = logged.inputs.dataset_inputs[0].dataset.profile
    assert f'"features_shape": [{len(x)}, 8, 8, 1]' in profile
    assert logged.data.tags["data_unreadable"] == "2"
    table = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{tracking.UNREADABLE_ARTIFACT}")
    assert table.splitlines() == ["file,reason", "cats/broken.jpg,not an image", "dogs/x.png,truncated"]
    with tracking.start_run("tracking-test", "bundled", {}) as run:
        tracking.log_dataset(dataset, x, y)  # not a folder: nothing about unreadable files
    assert "data_unreadable" not in mlflow.get_run(run.info.run_id).data.tags


def test_the_latest_run_of_an_experiment_is_never_a_sandboxed_one(project):
    """What production reads as an experiment's latest run (make predict MODEL=cnn-same, the gate's
    suggested threshold) skips the Python API's sandboxed runs, however many came after."""
    import mlflow

    from pipeline.training import tracking

    tracking.configure()
    experiment = tracking.get_or_create_experiment("digits-classification")
    with mlflow.start_run(experiment_id=experiment, run_name="cnn-same") as production:
        pass
    for _ in range(3):
        with mlflow.start_run(
            experiment_id=experiment, run_name="cnn-same", tags={tracking.SANDBOX_TAG: "true"}
        ):
            pass
    assert tracking.latest_run("digits-classification", "cnn-same").info.run_id == production.info.run_id
