"""The regression objective and function-approximation: mlp-wide against mlp-deep."""

import mlflow
import numpy as np
import pytest

from pipeline import cli
from pipeline.models import mlp, mlp_regressor
from pipeline.objectives import regression
from pipeline.specs import RegressionSpec
from pipeline.training import tracking
from tests.helpers import assert_plots_draw

QUICK = ["--quiet", "--set", "train.limit=200", "--set", "train.epochs=2"]


class Line:
    def predict(self, x):
        return 2 * x[:, 0]


def test_errors_are_against_the_noisy_targets_and_the_curve_is_drawn_on_the_grid(tmp_path):
    x = np.array([[0.0], [0.5], [1.0]])
    grid = np.linspace(-1, 1, 5)
    splits = regression.Splits(x, 2 * x[:, 0], x[:0], x[:0, 0], x, np.array([0.0, 1.0, 3.0]), grid, grid**2)
    metrics, artifacts = regression.evaluate(Line(), splits)
    assert metrics["test_rmse"] == pytest.approx(np.sqrt(1 / 3)) and metrics["test_mae"] == pytest.approx(
        1 / 3
    )
    rows = artifacts["fitted_curve.csv"].splitlines()
    assert rows[0] == "x,true,predicted" and rows[1] == "-1,1,-2" and len(rows) == 6
    assert "fitted_curve.png" in artifacts and "validation_rmse" not in metrics  # no validation split
    assert_plots_draw(artifacts, tmp_path)
    assert regression.OBJECTIVE.direction("test_rmse") == "min"


def test_mlp_regressor_ends_in_one_linear_unit():
    spec = RegressionSpec(input_shape=(1,), seed=0)
    wide = mlp_regressor.build(mlp.Params(hidden_units=(256,), activation="relu", dropout=0.0), spec)
    deep = mlp_regressor.build(mlp.Params(hidden_units=(16,) * 4, activation="relu", dropout=0.0), spec)
    assert wide.output.shape[1:] == (1,) and wide.get_layer("value").activation.__name__ == "linear"
    assert (wide.count_params(), deep.count_params()) == (769, 865)  # the defaults: about the same size
    with pytest.raises(Exception, match="must be positive"):
        mlp_regressor.check(mlp.Params(hidden_units=(16, 0), activation="relu", dropout=0.0), spec)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["mlp-wide", "mlp-deep"])
def test_function_approximation_end_to_end(project, experiment):
    assert cli.main(["train", experiment, *QUICK]) == 0
    tracking.configure()
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("function-approximation").experiment_id])
    metrics = run.data.metrics
    assert run.data.tags["objective"] == "regression" and run.data.tags["dataset"] == "wave"
    assert metrics["model_params"] == (769 if experiment == "mlp-wide" else 865)
    assert 0 < metrics["test_rmse"] < 3 and 1 <= metrics["epochs_to_converge"] <= 2
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"fitted_curve.png", "fitted_curve.csv", "layer_params.csv"} <= names
