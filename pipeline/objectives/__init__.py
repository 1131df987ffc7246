"""Objectives: what a task optimises. One module per objective, each ending with `OBJECTIVE = Objective(...)`.

An objective turns a prepared dataset into model inputs (`prepare`), names the loss and the Keras
metrics every network of the task trains with, scores any model the same way (`evaluate`), and
owns which way each of its metrics improves: the report, the promotion gate and sweeps read the
direction from here, nowhere else.

Objectives import neither the training core nor a model family (see docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, Literal

from pipeline.config import PARAMS_FILE, suggest
from pipeline.errors import UserError

Direction = Literal["max", "min"]
# the prefixes a metric name carries: Keras' per-epoch `val_`, the objectives' `test_`/`validation_`
PREFIXES = re.compile(r"^(test_|val_|validation_)")

OBJECTIVES = {
    "classification": "pipeline.objectives.classification",
    "binary": "pipeline.objectives.binary",
    "few_shot": "pipeline.objectives.few_shot",
    "forecasting": "pipeline.objectives.forecasting",
    "anomaly": "pipeline.objectives.anomaly",
    "regression": "pipeline.objectives.regression",
    "next_character": "pipeline.objectives.next_character",
}


def no_keras_metrics() -> list:
    return []


@dataclasses.dataclass(frozen=True)
class Served:
    """How a registered model of this objective is logged for use outside the pipeline (and for
    `make serve`): MLflow models-from-code that wraps the trained Keras model with the task's pre-
    and post-processing, so it takes raw inputs (an encoded image, a dated history).

    code       a module in pipeline/objectives/served/ (imports nothing from the pipeline; ends with
               `mlflow.models.set_model(...)`): MLflow runs it; the Keras model is its artifact `keras_model`
    helpers    {artifact name: module}: project files the code loads by path (e.g. the image rules)
    config     (splits, dataset) → what the code needs, as plain values (the MLmodel's `config`)
    example    (splits, dataset) → an input example, as records
    signature  () → the MLflow ModelSignature of those records and of the answers
    """

    code: ModuleType
    config: Callable[[Any, Any], dict]
    example: Callable[[Any, Any], list[dict]]
    signature: Callable[[], Any]
    helpers: Mapping[str, ModuleType] = dataclasses.field(default_factory=dict)


def same_dataset(dataset, params) -> str:
    """Default problem identity: every run on the same dataset solves the same problem."""
    return f"dataset {dataset.name}"


@dataclasses.dataclass(frozen=True)
class Objective:
    """The contract every objective module fulfils (its `OBJECTIVE`)."""

    name: str  # the run tag `objective`
    loss: str  # Keras loss of every network of the task
    headline: str  # the test metric a task's runs are ranked by
    # base metric name (no test_/val_/validation_ prefix) → which way it improves
    directions: Mapping[str, Direction]
    # (dataset, train params, objective params) → (splits, spec): the arrays a model sees
    prepare: Callable[[Any, Any, Any], tuple[Any, Any]]
    # (model, splits, objective params) → (test metrics, artifacts: {name: text or matplotlib figure})
    evaluate: Callable[[Any, Any, Any], tuple[dict[str, float], dict]]
    predict: Callable[[Any, Any], Any]  # (model, x) → what the logged model returns by default
    params: type | None = None  # schema of the experiment's `objective:` section, if it has one
    keras_metrics: Callable[[], list] = no_keras_metrics  # fresh metric objects for each compile
    # (dataset, objective params) → a label: runs with equal labels solve the same problem and
    # are ranked against each other (e.g. pretrain's digits 0-4 vs the transfer runs' 5-9)
    problem: Callable[[Any, Any], str] = same_dataset
    # how a registered Keras model of this task is logged (None: as its family says)
    served: Served | None = None
    # (Keras model, splits, objective params) → {artifact name: text} the run logs after every
    # epoch, each file growing by one section an epoch (e.g. text completion's prompts completed)
    epoch_artifacts: Callable[[Any, Any, Any], dict[str, str]] | None = None
    # (test metrics, the kept epoch's Keras logs or None, splits) → one line naming what looks wrong
    # with the trained model and its likely cause, or None (the run's tag `quality_warning`)
    warning: Callable[[dict, dict | None, Any], str | None] | None = None

    def direction(self, metric: str) -> Direction:
        """Which way `metric` (e.g. test_rmse, val_accuracy, test_precision_at_10) improves."""
        base = PREFIXES.sub("", metric)
        for name in (base, base.rstrip("0123456789").rstrip("_")):
            if name in self.directions:
                return self.directions[name]
        raise UserError(
            f"metric '{metric}' is not one the {self.name} objective reports"
            f"{suggest(base, self.directions)}; known: {', '.join(self.directions)}"
        )

    def better(self, metric: str, value: float, than: float) -> bool:
        return value > than if self.direction(metric) == "max" else value < than

    def reports(self, metric: str) -> bool:
        try:
            self.direction(metric)
        except UserError:
            return False
        return True

    def epoch_metrics(self) -> list[str]:
        """Names Keras logs every epoch for this objective (train and validation)."""
        names = ["loss", *(m if isinstance(m, str) else m.name for m in self.keras_metrics())]
        return [*names, *(f"val_{n}" for n in names)]


def limit_rows(n: int, limit: int | None, merged: int = 0):
    """The training rows `train.limit` keeps: the first `limit` of the original rows, and always the
    last `merged` (examples retrain merged in from new batches); a slice-able index array."""
    import numpy as np

    if limit is None:
        return np.arange(n)
    if limit < 1:
        raise UserError(f"train.limit must be at least 1 (got {limit}), e.g. 300, or null for every example")
    base = n - merged
    return np.concatenate([np.arange(min(limit, base)), np.arange(base, n)])


def known_classes(values, class_names: list[str], key: str) -> list[str]:
    """`values` (class names from params.yaml) as strings, each one of the dataset's classes; else one
    line naming the first unknown one at `key` (e.g. `objective.positive`)."""
    names = [str(c) for c in values]
    unknown = [n for n in names if n not in class_names]
    if unknown:
        raise UserError(
            f"{PARAMS_FILE}: {key}: class '{unknown[0]}' does not exist (classes: {', '.join(class_names)})"
        )
    return names


def get(name: str, where: str = "") -> Objective:
    if name not in OBJECTIVES:
        raise UserError(
            f"{PARAMS_FILE}: {where}objective '{name}' is unknown{suggest(name, OBJECTIVES)}; "
            f"known: {', '.join(OBJECTIVES)}"
        )
    return importlib.import_module(OBJECTIVES[name]).OBJECTIVE


def source_file(name: str):
    """The objective's module file, without importing it (make's prerequisites)."""
    from pathlib import Path

    return Path(*OBJECTIVES[name].split(".")).with_suffix(".py")


def get_by_tag(name: str | None) -> Objective | None:
    """The objective a run's `objective` tag names, or None (runs of another tool)."""
    return get(name) if name in OBJECTIVES else None
