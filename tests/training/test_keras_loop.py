"""The Keras loop: `train.strategy: mirrored` (one Keras model over several devices in one process,
logged once), and fit tracing its train step once.

The CPU is split into 2 logical devices (PIPELINE_LOGICAL_CPUS), which TensorFlow only accepts
before it starts: so the training runs in a fresh process, as a user's would.
"""

import keras
import mlflow
import numpy as np
import pytest
import tensorflow as tf

from pipeline import config
from pipeline.errors import UserError
from pipeline.training import keras_loop
from pipeline.training.plan import make_plan
from pipeline.training.run import strategy_of
from tests.helpers import run_cli

MIRRORED = ["--quiet", "--set", "train.strategy=mirrored", "--set", "train.limit=200"]
EPOCHS = ["--set", "train.epochs=2", "--set", "train.patience=5"]


@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_logs_once_per_epoch(project):
    # two models in one process (as train-all, retrain and Ray workers do): one strategy serves both
    env = {"PIPELINE_LOGICAL_CPUS": "2"}
    done = run_cli(
        project, "train-all", "--executor", "sequential", "mlp", "cnn-same", *MIRRORED, *EPOCHS, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("digits-classification")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["cnn-same", "mlp"]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert (
            run.data.params["train.strategy"] == "mirrored" and run.data.params["train.num_replicas"] == "2"
        )
        # Keras callbacks run in this one driver process: one value per epoch, not one per replica
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0, 1], key
        assert run.data.metrics["epochs_trained"] == 2 and 0 <= run.data.metrics["test_accuracy"] <= 1


def test_strategy_is_checked_with_a_suggestion(project):
    exp = config.resolve_experiment(config.load_params(), "mlp", ["train.strategy=mirorred"])
    with pytest.raises(UserError, match=r"strategy = 'mirorred' is not one of .*did you mean 'mirrored'"):
        config.parse_section(config.TrainParams, exp.train, "experiments.mlp.train")


def test_scikit_learn_baselines_ignore_the_strategy(project):
    plan = make_plan(config.load_params(), "svc", ["train.strategy=mirrored"])
    assert not hasattr(plan.train, "strategy")
    assert not isinstance(strategy_of(plan), tf.distribute.MirroredStrategy)


def test_default_strategy_is_one_replica(project):
    plan = make_plan(config.load_params(), "mlp")
    assert plan.train.strategy == "default" and strategy_of(plan).num_replicas_in_sync == 1


def test_epochs_to_converge_is_the_first_epoch_within_ten_percent_of_the_best():
    assert keras_loop.epochs_to_converge({"loss": [9, 5, 3], "val_loss": [1.0, 0.5, 0.3, 0.29, 0.31]}) == 3
    assert keras_loop.epochs_to_converge({"loss": [4.0, 2.0, 1.0, 1.05]}) == 3  # no validation split
    assert keras_loop.epochs_to_converge({"loss": [1.0], "val_loss": [float("nan")]}) == 1


class Counted(keras.Sequential):
    """Counts how often fit traces its train step (Python runs only while TensorFlow traces)."""

    traces = 0

    def train_step(self, data):
        type(self).traces += 1
        return super().train_step(data)


def test_fit_traces_the_train_step_once(project):
    # variables made inside the first trace (optimizer slots, metrics) make TensorFlow trace twice
    train = make_plan(config.load_params(), "mlp", ["train.epochs=2", "train.batch_size=16"]).train
    Counted.traces = 0
    model = Counted([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    x, y = np.random.default_rng(0).random((40, 4), np.float32), np.arange(40) % 3
    keras_loop.fit(model, (x, y, (x, y)), train, "sparse_categorical_crossentropy", ["accuracy"])
    assert Counted.traces == 1 and model.optimizer.iterations.numpy() == 6
