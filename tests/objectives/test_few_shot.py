"""The few-shot objective: a subset of classes, relabelled, with N labelled examples per class."""

import dataclasses

import numpy as np
import pytest

from pipeline import data
from pipeline.config import TrainParams
from pipeline.errors import UserError
from pipeline.objectives import few_shot

TRAIN = TrainParams(
    epochs=1,
    batch_size=8,
    learning_rate=0.01,
    optimizer="adam",
    patience=1,
    seed=3,
    limit=None,
    strategy="default",
)


def prepare(project, classes=(5, 6, 7, 8, 9), n=None, seed=3):
    train = dataclasses.replace(TRAIN, seed=seed)
    return few_shot.prepare(data.load("digits"), train, few_shot.Params(tuple(classes), n))


def test_classes_are_selected_and_relabelled(project):
    splits, spec = prepare(project)
    full = data.load("digits")
    assert spec.num_classes == 5 and splits.class_names == ["5", "6", "7", "8", "9"]
    for split in ("train", "val", "test"):
        y = getattr(splits, f"y_{split}")
        _, y_full = full.examples(split)
        assert set(np.unique(y)) == set(range(5)) and len(y) == int(np.isin(y_full, [5, 6, 7, 8, 9]).sum())
    # relabelled, not shuffled: the first kept test image is the first 5-9 image of the full split
    x_full, y_full = full.examples("test")
    first = int(np.flatnonzero(y_full >= 5)[0])
    assert np.array_equal(splits.x_test.read(0), x_full.read(first)) and splits.y_test[0] == y_full[first] - 5


def test_labels_per_class_draws_nested_subsets_by_seed(project):
    one, _ = prepare(project, n=1)
    two, _ = prepare(project, n=2)
    assert np.bincount(one.y_train).tolist() == [1] * 5 and np.bincount(two.y_train).tolist() == [2] * 5
    as_rows = lambda s: {x.tobytes() for x in s.x_train.load()}  # noqa: E731
    assert as_rows(one) <= as_rows(two)  # more labels add examples, never swap them
    other, _ = prepare(project, n=2, seed=4)
    assert as_rows(other) != as_rows(two)
    assert len(two.y_test) == len(prepare(project)[0].y_test)  # evaluation data is never subsampled


@pytest.mark.parametrize(
    "classes, n, message",
    [
        ((5, 6, 12), None, "objective.classes"),
        ((5, 5), None, "objective.classes"),
        ((), None, "objective.classes"),
        ((5, 6), 0, "labels_per_class must be at least 1"),
        ((5, 6), 10_000, "class '5' has only"),
    ],
)
def test_bad_objective_params(project, classes, n, message):
    with pytest.raises(UserError, match=message):
        prepare(project, classes, n)
