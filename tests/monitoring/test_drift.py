"""Drift on real data: held-out digits and the real CO2 continuation are not flagged; inverted or
shifted digits and a CO2 series with a level shift are. Profiles round-trip through JSON."""

import json
import os
import shutil

import mlflow
import numpy as np
import pytest

from pipeline import data, monitoring
from pipeline.errors import UserError
from pipeline.training.plan import DriftLimit
from tests.helpers import REPO, loaded

LIMIT = DriftLimit(max=0.3, action="warn")  # the digits-classifier's limit in docs/drift.md
SERIES_LIMIT = DriftLimit(max=0.5, action="warn")  # the co2-forecaster's


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits splits and a classifier fitted on the training split (a stand-in for the served
    model: the profile needs only its class probabilities). Fitted once per module in a project of
    its own: the tests only read the profile, the test images and the classifier."""
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("drift")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIPELINE_ROOT", str(root))
        patch.delenv("PIPELINE_PARAMS", raising=False)
        dataset = data.load("digits")
    (x_train, y_train), (x_val, _), (x_test, _) = (loaded(dataset, s) for s in ("train", "val", "test"))
    flat = lambda x: np.asarray(x).reshape(len(x), -1)  # noqa: E731
    model = LogisticRegression(max_iter=2000).fit(flat(x_train), y_train)
    proba = lambda x: model.predict_proba(flat(x))  # noqa: E731
    profile = monitoring.fit(dataset, probabilities=proba(x_val))
    return profile, x_test, proba


def check(profile, images, proba):
    return profile.compare(profile.stats(images, proba(images)))


def shifted(images, pixels):
    """Digits moved `pixels` to the right, the emptied columns blank."""
    moved = np.roll(images, pixels, axis=2)
    moved[:, :, :pixels] = 0.0
    return moved


@pytest.mark.slow
@pytest.mark.parametrize("size", [360, 100, 30])
def test_held_out_digits_are_not_flagged(digits, size):
    profile, x_test, proba = digits
    drift = check(profile, x_test[:size], proba)
    assert not drift.exceeds(LIMIT), drift.metrics
    assert drift.examples == size and drift.metrics["drift_examples"] == size
    assert drift.metrics["drift_intensity_psi"] < 0.1


def test_inverted_digits_are_flagged_on_every_statistic(digits):
    profile, x_test, proba = digits
    drift = check(profile, 1.0 - x_test[:100], proba)
    assert drift.exceeds(LIMIT)
    assert drift.score > 0.9 and drift.worst in ("brightness", "mean_image")
    for name in ("brightness", "mean_image", "confidence"):
        assert drift.metrics[f"drift_{name}_pvalue"] < 0.01, name
    assert drift.metrics["drift_intensity_psi"] > 0.25
    assert "drift_score 1.00" in drift.line() or "drift_score 0.9" in drift.line()


def test_shifted_digits_are_flagged_though_their_brightness_is_unchanged(digits):
    profile, x_test, proba = digits
    drift = check(profile, shifted(x_test[:100], 2), proba)
    assert drift.exceeds(LIMIT)
    assert drift.worst == "mean_image"
    assert drift.metrics["drift_confidence_pvalue"] < 0.01  # the model is unsure of them too
    assert drift.metrics["drift_brightness_ks"] < drift.metrics["drift_mean_image_ks"]


def test_a_profile_without_the_model_has_no_confidence_test(project):
    dataset = data.load("digits")
    profile = monitoring.fit(dataset)
    drift = profile.compare(profile.stats(1.0 - dataset.examples("test")[0].read(slice(50))))
    assert drift.exceeds(LIMIT)
    assert "drift_confidence_ks" not in drift.metrics


@pytest.fixture
def co2(project):
    dataset = data.load("co2")
    arrays = dataset.arrays
    dates = np.concatenate([arrays[f"dates_{s}"] for s in ("train", "val", "test")])
    values = np.concatenate([arrays[f"values_{s}"] for s in ("train", "val", "test")])
    return monitoring.fit(dataset, season=52), dates, values, len(arrays["values_train"])


@pytest.mark.parametrize("start", ["val", "test"])
@pytest.mark.parametrize("weeks", [13, 26])
def test_the_real_co2_continuation_is_not_flagged(co2, start, weeks, project):
    profile, dates, values, train_weeks = co2
    first = train_weeks if start == "val" else train_weeks + len(data.load("co2").arrays["values_val"])
    drift = profile.compare(profile.stats(dates[: first + weeks], values[: first + weeks], new=weeks))
    assert not drift.exceeds(SERIES_LIMIT), drift.metrics
    assert abs(drift.metrics["drift_level_shift"]) < 2


@pytest.mark.parametrize("jump", [2.0, -2.0])
def test_a_co2_level_shift_is_flagged(co2, jump):
    profile, dates, values, train_weeks = co2
    end = train_weeks + 13
    moved = values[:end].copy()
    moved[train_weeks:] += jump  # ppm, about 3.5 standard deviations of the weekly residuals
    drift = profile.compare(profile.stats(dates[:end], moved, new=13))
    assert drift.exceeds(SERIES_LIMIT) and drift.worst == "residuals"
    assert np.sign(drift.metrics["drift_level_shift"]) == np.sign(jump)
    assert abs(drift.metrics["drift_level_shift"]) > 2


def test_series_input_errors_are_one_line(co2):
    profile, dates, values, _ = co2
    with pytest.raises(UserError, match="history of 52"):
        profile.stats(dates[:60], values[:60], new=13)
    broken = values[:200].copy()
    broken[-1] = np.nan
    with pytest.raises(UserError, match="non-finite"):
        profile.stats(dates[:200], broken, new=5)
    with pytest.raises(UserError, match="three seasons"):
        monitoring.SeriesProfile.fit(dates[:100], values[:100], season=52)


@pytest.mark.slow
def test_profiles_round_trip_through_small_json(digits, co2, tmp_path):
    image_profile, x_test, proba = digits
    series_profile, dates, values, train_weeks = co2
    for profile, args in (
        (image_profile, (1.0 - x_test[:40], proba(1.0 - x_test[:40]))),
        (series_profile, (dates[: train_weeks + 13], values[: train_weeks + 13] + 1.5, 13)),
    ):
        path = monitoring.save(profile, tmp_path / f"{profile.KIND}.json")
        assert path.stat().st_size < 100_000
        assert json.loads(path.read_text())["kind"] == profile.KIND  # plain JSON, nothing pickled
        loaded = monitoring.load(path)
        assert loaded.compare(loaded.stats(*args)).metrics == profile.compare(profile.stats(*args)).metrics


def test_a_bad_profile_file_is_refused_in_one_line(digits, tmp_path):
    profile = digits[0]
    good = monitoring.save(profile, tmp_path / "profile.json")
    link = tmp_path / "link.json"
    os.symlink(good, link)
    with pytest.raises(UserError, match="cannot read the drift profile"):
        monitoring.load(link)  # never followed through a symlink
    with pytest.raises(UserError, match="not a file"):
        monitoring.load(tmp_path)
    broken = tmp_path / "broken.json"
    for text in ("not json", '{"format": 1, "kind": "audio"}', '{"format": 9, "kind": "images"}'):
        broken.write_text(text)
        with pytest.raises(UserError, match="not a drift profile") as error:
            monitoring.load(broken)
        assert "\n" not in str(error.value)
    data = json.loads(good.read_text())
    data["brightness"]["quantiles"][0] = float("nan")
    broken.write_text(json.dumps(data))
    with pytest.raises(UserError, match="non-finite"):
        monitoring.load(broken)


def test_images_of_another_shape_are_refused(digits):
    profile, x_test, proba = digits
    with pytest.raises(UserError, match=r"shape \(4, 4, 1\).*\(8, 8, 1\)"):
        profile.stats(x_test[:5, :4, :4])
    with pytest.raises(UserError, match="class probabilities"):
        profile.stats(x_test[:5], proba(x_test[:4]))


def test_drift_logs_its_metrics_and_plot_to_the_run(digits, project):
    profile, x_test, proba = digits
    drift = check(profile, shifted(x_test[:50], 1), proba)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    from pipeline.training import tracking

    # an experiment of the project's store: the default one's artifacts would land in ./mlruns (the cwd)
    with mlflow.start_run(experiment_id=tracking.get_or_create_experiment("drift")) as run:
        drift.log("drift/batch.png")
    logged = mlflow.get_run(run.info.run_id).data.metrics
    assert logged == pytest.approx(drift.metrics)
    assert set(logged) >= {"drift_score", "drift_examples", "drift_mean_image_ks", "drift_intensity_psi"}
    artifacts = mlflow.MlflowClient().list_artifacts(run.info.run_id, "drift")
    assert [a.path for a in artifacts] == ["drift/batch.png"]
