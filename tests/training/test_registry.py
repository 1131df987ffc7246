"""registry.scored_on: when a champion's recorded score stands for a re-evaluation in the gate."""

import dataclasses

import mlflow
import numpy as np
import pytest

from pipeline import config
from pipeline.objectives.classification import Splits
from pipeline.training import registry
from pipeline.training.plan import make_plan
from tests.helpers import train


def splits(x_test, y_test):
    empty = np.zeros((0, 8, 8, 1), np.float32)
    return Splits(empty, np.zeros(0, int), empty, np.zeros(0, int), x_test, y_test, ["a", "b"])


def test_the_key_changes_with_the_data_and_the_objective_params(project):
    params = config.load_params()
    plan = make_plan(params, "cnn-same", [])
    x, y = np.zeros((4, 8, 8, 1), np.float32), np.array([0, 1, 0, 1])
    key = registry.scored_on(plan, splits(x, y))
    assert key == registry.scored_on(plan, splits(x.copy(), y.copy()))  # content, not identity
    assert key != registry.scored_on(plan, splits(x, y[::-1].copy()))  # one label differs
    moved = x.copy()
    moved[0, 0, 0, 0] = 1e-7
    assert key != registry.scored_on(plan, splits(moved, y))  # one pixel differs
    binary = make_plan(params, "mlp-binary", [])
    other = make_plan(params, "mlp-binary", ["objective.positive=[3]"])
    assert registry.scored_on(binary, splits(x, y)) != registry.scored_on(other, splits(x, y))
    assert dataclasses.asdict(binary.objective_params) != dataclasses.asdict(other.objective_params)


@pytest.mark.slow
def test_a_champion_whose_run_was_scored_on_other_data_is_re_evaluated(retrain_project):
    client = mlflow.MlflowClient()  # v1: cnn-same, 1 epoch on 200 examples, promoted (gate open)
    first = client.get_run(client.get_model_version_by_alias("digits-classifier", "champion").run_id)
    client.set_tag(first.info.run_id, registry.SCORED_ON_TAG, "other data")
    second = train("cnn-same", ["train.seed=7"])
    assert second.decision["gate.champion_score"] == "re-evaluated"
    assert second.decision["gate_champion"] == first.data.metrics["test_accuracy"]
    assert mlflow.MlflowClient().get_run(second.run_id).data.tags[registry.SCORED_ON_TAG] == (
        registry.scored_on(second.plan, second.splits)
    )
