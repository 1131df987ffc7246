"""A model the caller built (`pipeline.fit`), trained as the experiment's own family would be.

The experiment gives the data, the objective and the `train:` settings; the caller's model takes
the place of its family's `build`. The rest is the training core's (run.run_plan): the same
splits, callbacks, per-epoch metrics, evaluation, figures and logged model, in the experiment's
MLflow task under the caller's run name, tagged `model_family: own`. An uncompiled model gets the
experiment's optimizer and loss, a compiled one keeps its own; both get the objective's metrics.
Before any run starts, its input and output shapes are checked against the model the experiment's
family builds for the same data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import keras

from pipeline.errors import UserError, first_line
from pipeline.models import Family
from pipeline.training.plan import Plan

OWN_FAMILY = "own"  # the runs' `model_family` tag and `family` param
# sub-models an objective reads by name (anomaly: the codes of `encoder`, for retrieval)
READ_BY_NAME = ("encoder",)

# a Keras model, or a function of the data's spec (pipeline.specs) that builds one: for what
# depends on the data, such as the forecasters' scaling (pipeline.models.windows)
Given = keras.Model | Callable[[Any], keras.Model]


@dataclasses.dataclass(frozen=True)
class GivenParams:
    """What a given model's run logs as its `model.*` params."""

    name: str  # the Keras model's name
    compiled: bool  # compiled by the caller: keeps its optimizer and loss


def plan_for(plan: Plan, given: Given) -> Plan:
    """`plan` (an experiment of params.yaml) with `given` in place of its family's model; nothing
    registered. UserError when the experiment's models are not Keras networks."""
    experiment = plan.exp.name
    if plan.family.kind != "keras":
        raise UserError(
            f"pipeline.fit: '{experiment}' trains a {plan.family.name} estimator, not a Keras network; "
            f"fit your model on an experiment of a Keras family (pipeline.train's names: e.g. cnn-same, lstm)"
        )
    if not (isinstance(given, keras.Model) or callable(given)):
        raise UserError(
            f"pipeline.fit: expected a keras.Model (or a function of the spec that builds one), "
            f"got {type(given).__name__}"
        )
    model = given if isinstance(given, keras.Model) else None
    params = GivenParams(
        name=model.name if model is not None else getattr(given, "__name__", "model"),
        compiled=bool(model is not None and model.compiled),
    )
    family = Family(
        name=plan.family.name,  # the experiment's: its kind and objective
        build=lambda _, spec: made(given, spec),
        check=lambda _, spec: check(given, spec, plan),
        tags=lambda _: {"model_family": OWN_FAMILY},
        fit=lambda model, params, train, loop: loop(model, keep_compiled=params.compiled),
    )
    raw = {k: v for k, v in plan.exp.raw.items() if k not in ("model", "register_as", "needs")}
    exp = dataclasses.replace(
        plan.exp,
        raw={**raw, "family": OWN_FAMILY, "experiment": experiment},
        description=f"A model built by hand ({params.name}), trained on {experiment}'s data and settings.",
    )
    train = dataclasses.replace(plan.train, strategy="default")  # built outside the run's scope
    if params.compiled:  # what trains it, as logged
        train = dataclasses.replace(
            train, optimizer=type(model.optimizer).__name__, learning_rate=rate(model)
        )
    return dataclasses.replace(
        plan, exp=exp, family=family, model=params, train=train, register_as=None, gate=None
    )


def rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def made(given: Given, spec) -> keras.Model:
    return given if isinstance(given, keras.Model) else given(spec)


def taken(model: keras.Model, example: keras.KerasTensor) -> tuple:
    """The shape of one example the model takes; a Sequential without an Input is built for `example`."""
    if not model.built:
        model.build((None, *example.shape[1:]))
    return tuple(model.inputs[0].shape[1:]) if getattr(model, "inputs", None) else tuple(example.shape[1:])


def fits(shape: tuple, expected: tuple) -> bool:
    return len(shape) == len(expected) and all(
        a is None or a == b for a, b in zip(shape, expected, strict=True)
    )


def names(model: keras.Model) -> set[str]:
    return {layer.name for layer in model.layers}


def last_layer(model: keras.Model) -> str:
    """How the experiment's model ends, e.g. Dense(10, activation="softmax")."""
    layer = model.layers[-1]
    if isinstance(layer, keras.layers.Dense):
        return f'Dense({layer.units}, activation="{keras.activations.serialize(layer.activation)}")'
    return type(layer).__name__


def check(given: Given, spec, plan: Plan) -> None:
    """The caller's model takes and gives what the experiment's own model does, or one line
    naming the expected shapes."""
    experiment = plan.exp.name
    reference = plan.family.build(plan.model, spec)  # the shapes this task's models take and give
    expected_in, expected_out = tuple(reference.input_shape[1:]), tuple(reference.output_shape[1:])
    example = keras.KerasTensor((1, *expected_in), dtype=reference.inputs[0].dtype)
    try:
        model = made(given, spec)
        given_in = taken(model, example)
        if fits(given_in, expected_in):
            given_out = tuple(model.compute_output_spec(example).shape[1:])
    except (ValueError, TypeError) as exc:
        raise UserError(
            f"pipeline.fit: the model does not run on {experiment}'s inputs of shape {expected_in} "
            f"({first_line(exc)})"
        ) from None
    if not fits(given_in, expected_in):
        raise UserError(
            f"pipeline.fit: the model takes inputs of shape {given_in}, {experiment}'s data are "
            f"{expected_in} per example: start it with keras.Input(shape={expected_in})"
        )
    for name in READ_BY_NAME:
        if name in names(reference) and name not in names(model):
            raise UserError(
                f"pipeline.fit: {plan.exp.task} reads the output of a sub-model named '{name}' "
                f"(as {experiment}'s model): build it as keras.Sequential([...], name='{name}')"
            )
    if not fits(given_out, expected_out):
        raise UserError(
            f"pipeline.fit: the model gives {given_out} per example, {plan.exp.task} needs {expected_out} "
            f"(as {experiment}'s model, which ends with {last_layer(reference)})"
        )
