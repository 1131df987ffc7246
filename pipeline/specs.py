"""What a model builder knows about its data: the contract between objectives and model families.

An objective prepares the data and describes it with one of these; a family's `build(params,
spec)` reads it. Both sides import this module, neither imports the other.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol


@dataclasses.dataclass(frozen=True)
class ClassifierSpec:
    """Classification (and few-shot classification): images or feature rows → class probabilities."""

    input_shape: tuple[int, ...]
    num_classes: int
    seed: int
    steps_per_epoch: int | None = None  # training batches an epoch (set by the training core)


@dataclasses.dataclass(frozen=True)
class ForecastSpec:
    """Forecasting: a window of `lookback` levels → the next `horizon` levels.

    The difference statistics come from the training split only.
    """

    lookback: int
    horizon: int
    season: int
    diff_mean: float  # mean of the training split's one-step differences
    diff_std: float  # their standard deviation
    seed: int


@dataclasses.dataclass(frozen=True)
class AnomalySpec:
    """Anomaly detection: images of the normal classes → a reconstruction or a score."""

    input_shape: tuple[int, ...]
    latent_dim: int
    seed: int


@dataclasses.dataclass(frozen=True)
class RegressionSpec:
    """Regression: feature rows → one number each."""

    input_shape: tuple[int, ...]
    seed: int


@dataclasses.dataclass(frozen=True)
class TextSpec:
    """Next-character prediction: windows of character codes → the next character's probabilities
    at every position."""

    vocabulary_size: int  # codes 0..vocabulary_size - 1 (0: a character the training text never had)
    window: int  # characters per window in training and scoring
    seed: int


class Splits(Protocol):
    """What the training core reads of an objective's splits (each objective adds its own fields;
    each objective's Splits is a dataclass: the gate fingerprints all its fields)."""

    x_train: Any
    y_train: Any
    x_test: Any
    class_names: list[str] | None  # the logged model's metadata, when the outputs are classes

    @property
    def validation(self) -> tuple[Any, Any] | None: ...
