"""training/given.py: a caller's own Keras model as a plan of an experiment (pipeline.fit; the
runs themselves are tested in tests/test_api.py)."""

import keras
import pytest
from keras import layers

from pipeline import config
from pipeline.errors import UserError
from pipeline.specs import AnomalySpec, ClassifierSpec
from pipeline.training import given
from pipeline.training.plan import make_plan


def test_a_given_model_keeps_the_experiments_data_objective_and_training_and_registers_nothing(project):
    plan = make_plan(config.load_params(), "cnn-same", ["train.epochs=3"])
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(10, "softmax")], name="mine"
    )
    own = given.plan_for(plan, model)
    assert (own.objective, own.exp.dataset, own.exp.task, own.train.epochs) == (
        plan.objective,
        plan.exp.dataset,
        plan.exp.task,
        3,
    )
    assert own.register_as is None and own.gate is None and own.model == given.GivenParams("mine", False)
    assert (
        own.exp.raw["family"] == "own"
        and own.exp.raw["experiment"] == "cnn-same"
        and "model" not in own.exp.raw
    )
    assert own.family.build(own.model, None) is model and own.family.tags(own.model) == {
        "model_family": "own"
    }


def test_a_sequential_without_an_input_is_built_for_the_data_and_its_shapes_checked(project):
    plan = make_plan(config.load_params(), "cnn-same")
    spec = ClassifierSpec((8, 8, 1), 10, 0)
    model = keras.Sequential([layers.Conv2D(2, 3), layers.Flatten(), layers.Dense(10, "softmax")])
    given.check(model, spec, plan)
    assert model.built and model.input_shape == (None, 8, 8, 1)
    wrong = keras.Sequential([layers.Dense(10, "softmax")])  # runs, but gives (8, 8, 10)
    with pytest.raises(
        UserError, match=r"gives \(8, 8, 10\) per example, digits-classification needs \(10,\)"
    ):
        given.check(wrong, spec, plan)


def test_an_autoencoder_names_the_encoder_the_task_reads(project):
    plan = make_plan(config.load_params(), "autoencoder")
    spec = AnomalySpec((8, 8, 1), 8, 0)
    flat = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Flatten(),
            layers.Dense(8),
            layers.Dense(64),
            layers.Reshape((8, 8, 1)),
        ]
    )
    with pytest.raises(UserError, match="sub-model named 'encoder'.*name='encoder'"):
        given.check(flat, spec, plan)


def test_a_compiled_model_logs_its_own_optimizer(project):
    plan = make_plan(config.load_params(), "cnn-same")
    model = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(10, "softmax")])
    model.compile(optimizer=keras.optimizers.RMSprop(0.01), loss="sparse_categorical_crossentropy")
    own = given.plan_for(plan, model)
    assert own.model.compiled and own.train.optimizer == "RMSprop"
    assert own.train.learning_rate == pytest.approx(0.01)
