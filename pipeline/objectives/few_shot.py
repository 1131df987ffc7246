"""Few-shot classification: a subset of the dataset's classes, N labelled training examples each.

The transfer-learning target task (digits 5-9 from a handful of labels) and its source task
(digits 0-4, every label) are both this objective. The loss, metrics and evaluation are
classification's, so the runs compare directly with the digits classifiers.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.errors import UserError
from pipeline.objectives import Objective, classification
from pipeline.objectives.classification import Splits
from pipeline.specs import ClassifierSpec


@dataclasses.dataclass(frozen=True)
class Params:
    """The `objective:` section."""

    classes: tuple[int, ...]  # dataset class indices to keep, relabelled 0..k-1 in this order
    labels_per_class: int | None  # labelled training examples per class (null: all of them)


def select(x, y: np.ndarray, classes: tuple[int, ...]):
    """Keep the examples of `classes`, relabelled by their position in `classes`."""
    keep = np.isin(y, classes)
    relabel = {c: i for i, c in enumerate(classes)}
    return x.take(np.flatnonzero(keep), axis=0), np.array([relabel[int(c)] for c in y[keep]], dtype=y.dtype)


def sample_per_class(y: np.ndarray, n: int, seed: int, class_names: list[str]) -> np.ndarray:
    """Indices of `n` examples per class, drawn with `seed`; a smaller n gives a subset of a larger one."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label, name in enumerate(class_names):
        pool = np.flatnonzero(y == label)
        if len(pool) < n:
            raise UserError(
                f"objective.labels_per_class = {n}, but class '{name}' has only {len(pool)} training "
                "examples (use null for all of them)"
            )
        chosen.append(rng.permutation(pool)[:n])
    return np.sort(np.concatenate(chosen))


def prepare(dataset, train, params: Params) -> tuple[Splits, ClassifierSpec]:
    splits, _ = classification.prepare(dataset, train)
    names = dataset.class_names
    bad = [c for c in params.classes if not 0 <= c < len(names)]
    if not params.classes or bad or len(set(params.classes)) != len(params.classes):
        raise UserError(
            f"objective.classes = {list(params.classes)}: needs distinct class indices of dataset "
            f"'{dataset.name}' (0..{len(names) - 1})"
        )
    if params.labels_per_class is not None and params.labels_per_class < 1:
        raise UserError(
            f"objective.labels_per_class must be at least 1 or null (got {params.labels_per_class})"
        )
    x_train, y_train = select(splits.x_train, splits.y_train, params.classes)
    class_names = [names[c] for c in params.classes]
    if params.labels_per_class is not None:
        keep = sample_per_class(y_train, params.labels_per_class, train.seed, class_names)
        x_train, y_train = x_train.take(keep, axis=0), y_train[keep]
    subset = Splits(
        x_train,
        y_train,
        *select(splits.x_val, splits.y_val, params.classes),
        *select(splits.x_test, splits.y_test, params.classes),
        class_names,
    )
    return subset, ClassifierSpec(tuple(x_train.shape[1:]), len(class_names), train.seed)


def problem(dataset, params: Params) -> str:
    """The classes kept, not how many labels each had: a 5-label and an all-label run compete."""
    names = [dataset.class_names[c] for c in params.classes if 0 <= c < len(dataset.class_names)]
    return f"{dataset.name}: classes {', '.join(names)}"


OBJECTIVE = Objective(
    name="few_shot",
    loss=classification.OBJECTIVE.loss,
    headline=classification.OBJECTIVE.headline,
    directions=classification.OBJECTIVE.directions,
    prepare=prepare,
    evaluate=classification.evaluate,
    predict=classification.predict,
    params=Params,
    keras_metrics=classification.keras_metrics,
    problem=problem,
)
