"""A registered model's run carries the drift profile of its training data (drift/profile.json),
which predict, the scoring server and retrain read back; other runs carry none."""

import mlflow
import pytest

from pipeline import monitoring
from pipeline.errors import UserError
from pipeline.monitoring import reference
from tests.conftest import edit_params, train

QUICK = ["train.limit=300", "train.epochs=2"]


def profile_size(run_id: str) -> int:
    (info,) = mlflow.MlflowClient().list_artifacts(run_id, "drift")
    assert info.path == reference.ARTIFACT
    return info.file_size


@pytest.mark.slow
def test_registered_models_carry_a_small_profile_and_other_runs_none(project):
    def gates(p):
        p["retrain"]["gates"]["digits-classifier"].update(threshold=0.0)
        p["retrain"]["gates"]["co2-forecaster"].update(threshold=1e6)

    edit_params(project, gates)
    images, series = train("cnn-same", QUICK), train("lstm", QUICK)
    assert profile_size(images.run_id) < 64_000 and profile_size(series.run_id) < 8_000
    profile = reference.of_run(images.run_id)
    assert isinstance(profile, monitoring.ImageProfile) and profile.shape == (8, 8, 1)
    assert profile.confidence is not None  # the model's confidence on the validation split
    assert profile.brightness.examples == 1167  # the whole training split, not train.limit's 300
    assert isinstance(reference.of_run(series.run_id), monitoring.SeriesProfile)
    assert reference.of_run(train("mlp", QUICK).run_id) is None  # not registered


def test_a_malformed_profile_is_refused_in_one_line(project):
    from pipeline.training import tracking

    with mlflow.start_run(experiment_id=tracking.get_or_create_experiment("elsewhere")) as run:
        mlflow.log_text('{"format": 1, "kind": "images"}', reference.ARTIFACT)
    with pytest.raises(UserError, match="not a drift profile") as error:
        reference.of_run(run.info.run_id)
    assert len(str(error.value).splitlines()) == 1
