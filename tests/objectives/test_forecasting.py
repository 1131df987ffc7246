"""Windowing, scaling statistics, metrics and bad input of the forecasting objective; co2 end to end."""

import re

import mlflow
import numpy as np
import pytest

from pipeline import cli, config, data
from pipeline.config import SeedParams
from pipeline.objectives import forecasting
from pipeline.training import loading, tracking
from tests.helpers import REPO, assert_plots_draw, cli_in_process, edit_params

QUICK = ["--quiet", "--set", "train.epochs=1", "--set", "train.limit=64"]


def co2_runs():
    tracking.configure()  # this test's store (an earlier test may have pointed MLflow elsewhere)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("co2-forecast")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def series_dataset(values, val=20, test=30, name="toy"):
    """A Dataset like data.load gives for a series, split chronologically."""
    values = np.asarray(values, dtype=np.float64)
    dates = np.arange("2000-01-01", len(values) * 7, 7, dtype="datetime64[D]")[: len(values)]
    n_train = len(values) - val - test
    bounds = {"train": (0, n_train), "val": (n_train, n_train + val), "test": (n_train + val, len(values))}
    arrays = {}
    for split, (a, b) in bounds.items():
        arrays[f"values_{split}"], arrays[f"dates_{split}"] = values[a:b], dates[a:b]
    manifest = data.Manifest.model_construct(
        kind="series", source="test", source_detail=f"{name}.csv", sha256="0" * 64, batches=[], fill=None
    )
    return data.Dataset(name, manifest, arrays)


def test_recent_weeks_after_the_holdout_train_without_ever_targeting_it():
    ds = series_dataset(np.arange(150.0), val=20, test=30)
    recent = np.arange(150.0, 160.0)
    dates = ds.arrays["dates_test"][-1] + 7 * np.arange(1, 11)
    ds.arrays.update(data.merge_batches(ds.arrays, [(dates, recent)]))
    params = forecasting.Params(lookback=10, horizon=4, season=5)
    splits, _ = forecasting.prepare(ds, SeedParams(seed=0, limit=None), params)
    train_targets = set(splits.y_train.ravel())
    assert set(range(150, 160)) <= train_targets  # the new weeks are training targets
    assert not train_targets & set(range(100, 150))  # val and the holdout never are
    assert set(splits.y_test.ravel()) == set(range(120, 150))  # the holdout is unchanged
    assert len(splits.x_train) == (100 - 10 - 4 + 1) + (10 - 4 + 1)
    assert splits.x_train[-1, :, 0].tolist() == list(range(146, 156))  # inputs may reach into test


def test_windows_have_the_right_shapes_and_follow_each_other():
    x, y = forecasting.make_windows(np.arange(20.0), lookback=5, horizon=3)
    assert x.shape == (13, 5, 1) and y.shape == (13, 3)
    assert x[0, :, 0].tolist() == [0, 1, 2, 3, 4] and y[0].tolist() == [5, 6, 7]
    assert x[-1, -1, 0] == 16 and y[-1].tolist() == [17, 18, 19]


def test_split_windows_share_no_target_and_take_context_from_the_split_before():
    ds = series_dataset(np.arange(150.0), val=20, test=30)
    params = forecasting.Params(lookback=10, horizon=4, season=5)
    splits, _ = forecasting.prepare(ds, SeedParams(seed=0, limit=None), params)
    targets = {s: set(getattr(splits, f"y_{s}").ravel()) for s in ("train", "val", "test")}
    assert targets["train"] == set(range(0, 100)) - set(range(10))
    assert targets["val"] == set(range(100, 120)) and targets["test"] == set(range(120, 150))
    # every target of a split is forecast at each step ahead once: len(split) - horizon + 1 windows
    assert len(splits.x_val) == 20 - 4 + 1 and len(splits.x_test) == 30 - 4 + 1
    assert splits.x_val[0, :, 0].tolist() == list(range(90, 100))  # inputs: the end of train
    assert splits.dates_test.shape == splits.y_test.shape
    assert splits.dates_test[0, 0] == ds.arrays["dates_test"][0]


def test_scaling_statistics_come_from_the_training_split_only():
    values = np.r_[np.arange(100.0), 1000.0 + 50 * np.arange(50.0)]  # val/test grow 50x faster
    ds = series_dataset(values, val=20, test=30)
    params = forecasting.Params(lookback=10, horizon=2, season=5)
    splits, spec = forecasting.prepare(ds, SeedParams(seed=0, limit=None), params)
    assert spec.diff_mean == pytest.approx(1.0) and spec.diff_std == pytest.approx(1.0)
    assert splits.mase_scale == pytest.approx(5.0)  # y_t - y_{t-5} on 0..99


def test_limit_keeps_the_newest_training_windows():
    ds = series_dataset(np.arange(150.0))
    params = forecasting.Params(lookback=10, horizon=4, season=5)
    splits, _ = forecasting.prepare(ds, SeedParams(seed=0, limit=7), params)
    assert len(splits.x_train) == 7 and splits.y_train[-1, -1] == 99


def test_metrics_and_per_horizon_table_in_the_series_unit(tmp_path):
    class OffByHorizon:  # forecast = truth + k at step k
        def predict(self, x):
            return x[:, -1, :1] + 1 + 2 * np.arange(3)  # a series rising by 1: truth + k

    ds = series_dataset(np.arange(150.0))
    splits, _ = forecasting.prepare(ds, SeedParams(seed=0, limit=None), forecasting.Params(10, 3, 5))
    metrics, artifacts = forecasting.evaluate(OffByHorizon(), splits)
    assert metrics["test_mae"] == pytest.approx(1.0) and metrics["test_rmse"] == pytest.approx(np.sqrt(5 / 3))
    assert metrics["test_mase"] == pytest.approx(1.0 / 5.0)
    rows = artifacts["errors_by_horizon.csv"].splitlines()
    assert rows[0] == "horizon,rmse,mae,mase" and rows[1].startswith("1,0.0000,0.0000")
    assert rows[3] == "3,2.0000,2.0000,0.4000" and rows[-1].startswith("all,")
    assert "forecast.png" in artifacts
    assert_plots_draw(artifacts, tmp_path)


@pytest.mark.parametrize(
    "lookback, horizon, message",
    [
        (0, 4, "objective.lookback must be at least 1"),
        (10, -1, "objective.horizon must be at least 1"),
        (95, 10, "toy.csv.*train split has 100 points, too few for lookback 95 \\+ horizon 10"),
        (10, 25, "the val split has 20 points, too few"),
    ],
)
def test_prepare_rejects_bad_lookback_and_horizon(lookback, horizon, message):
    from pipeline.errors import UserError

    ds = series_dataset(np.arange(150.0))
    with pytest.raises(UserError, match=message):
        forecasting.prepare(ds, SeedParams(seed=0, limit=None), forecasting.Params(lookback, horizon, 5))


@pytest.mark.slow
def test_lstm_end_to_end_read_back_from_mlflow(project):
    assert cli.main(["train", "lstm", *QUICK, "--set", "objective.lookback=60"]) == 0
    (run,) = co2_runs()
    assert run.info.status == "FINISHED" and run.info.run_name == "lstm"
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert tags["model_family"] == "lstm" and tags["data_hash"] == data.read_manifest("co2").sha256
    assert params["objective.lookback"] == "60" and params["objective.horizon"] == "4"
    assert params["model.units"] == "[64]" and params["data.train_examples"] == "64"
    assert {"test_rmse", "test_mae", "test_mase", "validation_rmse", "val_rmse"} <= set(metrics)
    assert 0 < metrics["test_rmse"] < 20 and metrics["epochs_trained"] == 1
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"forecast.png", "errors_by_horizon.csv", "training_curves.png"} <= names
    model = loading.load(f"runs:/{run.info.run_id}/model")  # registered: served; its Keras model here
    window = data.load("co2").arrays["values_test"][:60].reshape(1, 60, 1).astype(np.float32)
    forecast = np.asarray(model.predict(window))
    assert forecast.shape == (1, 4) and np.all(
        np.abs(forecast - window[0, -1, 0]) < 10
    )  # ppm, near the level


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["rnn", "dense-window"])
def test_rnn_and_dense_window_end_to_end_beside_the_lstm(project, experiment):
    assert cli.main(["train", experiment, *QUICK, "--set", "train.epochs=2"]) == 0
    (run,) = co2_runs()
    metrics, params = run.data.metrics, run.data.params
    assert run.data.tags["model_family"] == experiment and params["objective.lookback"] == "104"
    assert params["model.units"] in ("[64]", "[64, 64]") and 0 < metrics["test_rmse"] < 20
    assert metrics["model_params"] > 1000 and 1 <= metrics["epochs_to_converge"] <= 2
    norms = mlflow.MlflowClient().get_metric_history(run.info.run_id, "recurrent_grad_norm_1")
    assert [m.step for m in norms] == ([0, 1] if experiment == "rnn" else [])
    lstm_only = {"model.activation"} if experiment == "rnn" else set()
    assert all(params[name] == "n/a" for name in lstm_only)  # siblings' params line up


@pytest.mark.parametrize("experiment", ["naive", "seasonal-naive"])
@pytest.mark.integration  # a training run and its logged model, per baseline
def test_baselines_end_to_end_loadable_from_mlflow(project, experiment):
    assert cli.main(["train", experiment, "--quiet"]) == 0
    (run,) = co2_runs()
    assert run.info.status == "FINISHED" and run.data.tags["model_family"] == experiment
    assert run.data.params["objective.lookback"] == "104" and run.data.params["train.seed"] == "42"
    values = data.load("co2").arrays["values_test"]
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    forecast = np.asarray(model.predict(values[:104].reshape(1, 104, 1).astype(np.float32)))
    expected = values[103] if experiment == "naive" else values[104 - 52 : 108 - 52]
    assert forecast.shape == (1, 4) and np.allclose(forecast[0], expected)


def write_series_csv(root, lines):
    (root / "series.csv").write_text("date,value\n" + "\n".join(lines) + "\n")

    def add(params):
        params["data"]["my-series"] = {
            "source": "csv-series",
            "path": "series.csv",
            "date_column": "date",
            "value_column": "value",
            "val_fraction": 0.1,
            "test_fraction": 0.2,
            "fill": "time",
        }

    edit_params(root, add)


def weekly(n, start="2020-01-05"):
    dates = np.arange(np.datetime64(start), np.datetime64(start) + 7 * n, 7)
    return [f"{d},{400 + 0.1 * i:.2f}" for i, d in enumerate(dates)]


@pytest.mark.parametrize(
    "lines, args, message",
    [
        (weekly(40), [], "series.csv.*train split has 28 points, too few for lookback 104"),
        (weekly(200)[:5] + weekly(200)[4:], [], "duplicate date 2020-02-02"),
        (weekly(200)[:3] + ["2020-01-26,1,250"] + weekly(200)[4:], [], "line 5 has 3 fields but the header"),
        (
            weekly(200)[:10] + ["2020-03-15,abc"] + weekly(200)[11:],
            [],
            "column 'value' line 12 has non-numeric",
        ),
        (weekly(200), ["--set", "objective.horizon=0"], "objective.horizon must be at least 1"),
        (weekly(200), ["--set", "objective.lookback=-3"], "objective.lookback must be at least 1"),
    ],
)
def test_bad_series_input_exits_2_with_one_line_and_no_run(project, capsys, lines, args, message):
    write_series_csv(project, lines)
    assert cli.main(["train", "seasonal-naive", "--set", "dataset=my-series", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and re.search(message, err[0]), err
    assert not co2_runs()  # validated before a run starts


def test_bad_series_input_from_the_command_line(project, capsys):
    # a Keras family's run, as the command line starts it, in this process: the check needs the
    # family, and so TensorFlow (tests/test_cli.py runs one such error in a real process)
    write_series_csv(project, weekly(40))
    result = cli_in_process(project, capsys, "train", "lstm", "--set", "dataset=my-series")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert re.search(r"^error: .*series.csv.*train split has 28 points", result.stderr.splitlines()[-1])
    assert not co2_runs()


def test_model_checks_run_before_any_run(project):
    # seasonal-naive needs a whole season of history; the lstm a positive layer size
    assert cli.main(["train", "seasonal-naive", "--set", "objective.lookback=20"]) == 2
    assert cli.main(["train", "lstm", "--set", "model.units=[]"]) == 2
    assert cli.main(["train", "sarimax", "--set", "objective.lookback=40"]) == 2
    assert not co2_runs()


def test_co2_experiments_share_the_objective_block():
    params = config.load_params(REPO / "params.yaml")
    objectives = [e.get("objective") for e in params["experiments"].values() if e["task"] == "co2-forecast"]
    assert len(objectives) == 6 and all(o == objectives[0] for o in objectives)
