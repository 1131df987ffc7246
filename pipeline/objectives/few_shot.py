"""Few-shot classification: a subset of the dataset's classes, N labelled training examples each.

The transfer-learning target task (digits 5-9 from a handful of labels) and its source task
(digits 0-4, every label) are both this objective. The loss, metrics and evaluation are
classification's, so the runs compare directly with the digits classifiers.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.errors import UserError
from pipeline.objectives import Objective, classification, limit_rows
from pipeline.objectives.classification import Splits
from pipeline.specs import ClassifierSpec


@dataclasses.dataclass(frozen=True)
class Params:
    """The `objective:` section."""

    classes: tuple[int, ...]  # dataset class indices to keep, relabelled 0..k-1 in this order
    labels_per_class: int | None  # labelled training examples per class (null: all of them)


def chosen(dataset, split: str, classes: tuple[int, ...], rows=None) -> np.ndarray:
    """The rows of `split` (among `rows`; all when None) whose class is one of `classes`."""
    rows = np.arange(dataset.count(split)) if rows is None else np.asarray(rows)
    return rows[np.isin(dataset.labels(split)[rows], classes)]


def relabelled(y: np.ndarray, classes: tuple[int, ...]) -> np.ndarray:
    """Labels of `classes` as their positions in `classes`."""
    relabel = {c: i for i, c in enumerate(classes)}
    return np.array([relabel[int(c)] for c in y], dtype=y.dtype)


def select(dataset, split: str, rows: np.ndarray, classes: tuple[int, ...]):
    """(x, y) of `rows` of `split`, relabelled by their class's position in `classes`."""
    x, y = dataset.examples(split, rows)
    return x, relabelled(y, classes)


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
    """The examples of `params.classes`, relabelled 0..k-1; `train.limit` first keeps the first N
    training examples (as classification does), then `labels_per_class` samples each class."""
    classification.check_dataset(dataset)
    first = limit_rows(dataset.count("train"), train.limit, dataset.merged_rows)  # already shuffled
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
    rows = chosen(dataset, "train", params.classes, first)
    class_names = [names[c] for c in params.classes]
    if params.labels_per_class is not None:
        labels = relabelled(dataset.labels("train")[rows], params.classes)
        rows = rows[sample_per_class(labels, params.labels_per_class, train.seed, class_names)]
    subset = Splits(
        *select(dataset, "train", rows, params.classes),
        *select(dataset, "val", chosen(dataset, "val", params.classes), params.classes),
        *select(dataset, "test", chosen(dataset, "test", params.classes), params.classes),
        class_names,
    )
    return subset, ClassifierSpec(dataset.example_shape, len(class_names), train.seed)


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
