"""The classification objective's quality warning: near chance, or far better on training images."""

import numpy as np
import pytest

from pipeline.objectives import classification


def splits(classes: int = 10, train: int = 300) -> classification.Splits:
    empty = np.zeros((0, 8, 8, 1))
    return classification.Splits(
        empty,
        np.zeros(train, int),
        empty,
        np.zeros(0, int),
        empty,
        np.zeros(0, int),
        [str(c) for c in range(classes)],
    )


def test_a_good_run_gets_no_warning():
    kept = {"accuracy": 0.95, "val_accuracy": 0.9}
    assert classification.quality_warning({"test_accuracy": 0.9}, kept, splits()) is None


@pytest.mark.parametrize(
    "metrics, kept, said",
    [
        (
            {"test_accuracy": 0.135},
            {"accuracy": 0.77, "val_accuracy": 0.5},
            "test accuracy 0.135 is near chance",
        ),
        (
            {"test_accuracy": 0.6},
            {"accuracy": 0.77, "val_accuracy": 0.12},
            "validation accuracy 0.120 is near chance",
        ),
        ({"test_accuracy": 0.1}, {"accuracy": 0.11, "val_accuracy": 0.1}, "nothing was learned"),
        ({"test_accuracy": 0.6}, {"accuracy": 0.99, "val_accuracy": 0.6}, "0.39 below training accuracy"),
        ({"test_accuracy": 0.12, "model_params": 8e6}, None, "8,000,000 weights"),  # an estimator
    ],
)
def test_near_chance_or_memorised_runs_get_one_line_naming_the_cause(metrics, kept, said):
    warning = classification.quality_warning(metrics, kept, splits())
    assert said in warning and "\n" not in warning


def test_chance_depends_on_the_classes():
    # 0.6 is near chance for 2 classes (1.5 x 0.5 = 0.75), not for 10
    assert classification.quality_warning({"test_accuracy": 0.6}, None, splits(classes=2)) is not None
    assert classification.quality_warning({"test_accuracy": 0.6}, None, splits(classes=10)) is None
