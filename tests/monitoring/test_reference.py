"""A registered model's run carries the drift profile of its training data (drift/profile.json),
which predict, the scoring server and retrain read back; other runs carry none."""

import mlflow
import pytest

from pipeline import monitoring
from pipeline.errors import UserError
from pipeline.monitoring import reference
from tests.helpers import point_at, train

QUICK = ["train.limit=300", "train.epochs=2"]


def profile_size(run_id: str) -> int:
    (info,) = mlflow.MlflowClient().list_artifacts(run_id, "drift")
    assert info.path == reference.ARTIFACT
    return info.file_size


@pytest.mark.slow
def test_registered_models_carry_a_small_profile_and_other_runs_none(project, champions, monkeypatch):
    point_at(monkeypatch, champions)  # cnn-same and lstm, trained and registered once per process
    client = mlflow.MlflowClient()
    images, series = (
        client.get_model_version_by_alias(name, "champion").run_id
        for name in ("digits-classifier", "co2-forecaster")
    )
    assert profile_size(images) < 64_000 and profile_size(series) < 8_000
    profile = reference.of_run(images)
    assert isinstance(profile, monitoring.ImageProfile) and profile.shape == (8, 8, 1)
    assert profile.confidence is not None  # the model's confidence on the validation split
    assert profile.brightness.examples == 1167  # the whole training split, not train.limit's 300
    assert isinstance(reference.of_run(series), monitoring.SeriesProfile)
    point_at(monkeypatch, project)
    assert reference.of_run(train("mlp", QUICK).run_id) is None  # not registered


def test_a_malformed_profile_is_refused_in_one_line(project):
    from pipeline.training import tracking

    with mlflow.start_run(experiment_id=tracking.get_or_create_experiment("elsewhere")) as run:
        mlflow.log_text('{"format": 1, "kind": "images"}', reference.ARTIFACT)
    with pytest.raises(UserError, match="not a drift profile") as error:
        reference.of_run(run.info.run_id)
    assert len(str(error.value).splitlines()) == 1
