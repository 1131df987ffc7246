"""Tracking helpers: dataset logging survives sibling runs racing to insert the same dataset row."""

import mlflow
import numpy as np
import pytest

from pipeline import data
from pipeline.training import tracking


def test_log_dataset_retries_once_when_a_sibling_inserted_the_row(project, monkeypatch):
    dataset = data.load("digits")
    x, y = dataset.xy("train")
    real_log_input, calls = mlflow.log_input, []

    def racing_log_input(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:  # what the loser of the race sees
            raise mlflow.exceptions.MlflowException("UNIQUE constraint failed: datasets.digest")
        return real_log_input(*args, **kwargs)

    monkeypatch.setattr(mlflow, "log_input", racing_log_input)
    with tracking.start_run("tracking-test", "race", {}) as run:
        tracking.log_dataset(dataset, x[:10], y[:10])
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
