"""Crash safety: kill -9 mid-fit resumes, and parallel make writes every run exactly once."""

import os
import signal
import subprocess
import sys
import time

import mlflow
import pytest

from tests.helpers import REPO, train

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
# 8 epochs in batches of 8 (every example: the kill after epoch 2 needs the 5 left to land in)
SETTINGS = ["train.epochs=8", "train.patience=100", "train.batch_size=8"]
SLOW = ["--quiet", *(arg for setting in SETTINGS for arg in ("--set", setting))]


def start_training(project, *args):
    env = {
        **os.environ,
        "PIPELINE_ROOT": str(project),
        "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"],
        "PIPELINE_BACKUP_SECONDS": "0",  # a backup after every epoch, so the kill lands after one
    }
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "train", "cnn-same", *args],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def last_epoch(client) -> int:
    """The last epoch any run of the task has logged so far (-1 before the first)."""
    experiment = client.get_experiment_by_name("digits-classification")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    steps = [m.step for r in runs for m in client.get_metric_history(r.info.run_id, "val_loss")]
    return max(steps, default=-1)


@pytest.mark.slow
def test_sigkill_mid_fit_resumes_from_the_last_epoch(project, monkeypatch):
    monkeypatch.setenv("PIPELINE_BACKUP_SECONDS", "0")
    client = mlflow.MlflowClient()
    process = start_training(project, *SLOW)
    deadline = time.time() + 240
    while last_epoch(client) < 2:
        assert process.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline, "no epoch completed within 240 s"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    (killed,) = mlflow.search_runs(experiment_names=["digits-classification"], output_format="list")
    assert killed.info.status == "RUNNING"  # nobody could end it ...
    assert any((project / ".build" / "backup").iterdir())

    # ... until the next start (its figures, model and gate are not what is tested here)
    outcome = train("cnn-same", SETTINGS, log_outputs=False)
    assert mlflow.get_run(killed.info.run_id).info.status == "KILLED"
    resumed = client.get_metric_history(outcome.run_id, "val_loss")
    steps = [m.step for m in resumed]
    assert steps[0] >= 2 and steps[-1] == 7  # picked up after the last completed epoch, ended at 8
    assert mlflow.get_run(outcome.run_id).info.status == "FINISHED"
    assert not any((project / ".build" / "backup").glob("*/*"))  # the backup is gone once finished


@pytest.mark.slow
def test_parallel_make_records_each_experiment_once(bare_project):
    import shutil

    from tests.helpers import edit_params

    project = bare_project

    def digits_classification_only(params):  # four runs are enough to race
        kept = ("mlp", "cnn-same", "cnn-valid", "svc")
        params["experiments"] = {k: v for k, v in params["experiments"].items() if k in kept}
        params["retrain"]["gates"].pop("co2-forecaster")

    edit_params(project, digits_classification_only)

    shutil.copytree(REPO / "pipeline", project / "pipeline")
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy(REPO / name, project / name)
    (project / ".venv-ready").touch()
    python = project / "python-real"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    (project / "mlruns").rmdir()  # an empty store: make creates it once, before the parallel runs
    out = subprocess.run(
        [
            "make",
            "-f",
            str(REPO / "Makefile"),
            "-j2",
            f"PY={python}",
            "VENV_STAMP=.venv-ready",
            "train-all",
            "TRAIN_FLAGS=--quiet --set train.epochs=1 --set train.limit=100",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PIPELINE_ROOT": str(project)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    runs = mlflow.search_runs(experiment_names=["digits-classification"])
    assert sorted(runs["tags.mlflow.runName"]) == ["cnn-same", "cnn-valid", "mlp", "svc"]
    assert (runs["status"] == "FINISHED").all()


@pytest.mark.integration  # trains mlp for 2 epochs
def test_a_torn_backup_falls_back_or_starts_over(project):
    """kill -9 while the backup was being written: the next run still trains to the end."""
    from pipeline import config, data
    from pipeline.training.plan import make_plan
    from pipeline.training.run import backup_dir

    plan = make_plan(config.load_params(), "mlp", ["train.epochs=2", "train.limit=100"])
    backup = backup_dir(plan, data.load("digits"))
    backup.mkdir(parents=True)
    (backup / "latest.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n torn")  # no earlier checkpoint
    (backup / "training_metadata.json").write_text('{"epoch": 1}')
    outcome = train("mlp", ["train.epochs=2", "train.limit=100"])
    assert mlflow.get_run(outcome.run_id).info.status == "FINISHED"
    assert [m.step for m in mlflow.MlflowClient().get_metric_history(outcome.run_id, "loss")] == [0, 1]


@pytest.mark.parametrize("every, written", [(0.0, True), (3600.0, False)])
def test_backups_are_written_at_most_every_so_many_seconds(tmp_path, every, written):
    import keras

    from pipeline.training.keras_loop import ThrottledBackup

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    backup = ThrottledBackup(str(tmp_path / "backup"), every)
    backup.set_model(model)
    backup.on_epoch_end(0)
    assert (tmp_path / "backup").exists() == written


@pytest.mark.parametrize("previous", [True, False], ids=["previous-checkpoint", "none"])
def test_a_torn_epoch_file_falls_back_or_starts_over(tmp_path, previous):
    """kill -9 after the weights were written, while the epoch file was: it is empty (seen in a run
    of the suite, where Keras failed the next start with a JSONDecodeError). The previous whole
    checkpoint is resumed (its epoch), else training starts over."""
    import keras
    import numpy as np

    from pipeline.training.keras_loop import ThrottledBackup

    def model():
        built = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        built.compile(optimizer="sgd", loss="mse")
        return built

    x, y = np.zeros((8, 2), np.float32), np.zeros((8, 1), np.float32)
    folder = tmp_path / "backup"
    if previous:  # a backup of epoch 1, then a torn one of epoch 2 beside it
        model().fit(
            x, y, epochs=1, verbose=0, callbacks=[ThrottledBackup(str(folder), 0.0, delete_checkpoint=False)]
        )
        (folder / "latest.weights.h5.bkp").write_bytes((folder / "latest.weights.h5").read_bytes())
        (folder / "training_metadata.json.bkp").write_text((folder / "training_metadata.json").read_text())
    folder.mkdir(exist_ok=True)
    (folder / "training_metadata.json").write_text("")  # torn
    history = model().fit(
        x, y, epochs=3, verbose=0, callbacks=[ThrottledBackup(str(folder), 0.0, double_checkpoint=True)]
    )
    assert len(history.history["loss"]) == (2 if previous else 3)  # resumed after epoch 1, or all 3
    assert not folder.exists()  # finished: the backup is gone
