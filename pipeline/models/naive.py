"""Naive forecast: every step ahead is the last observed value (the random-walk forecast)."""

from __future__ import annotations

import dataclasses

from pipeline.forecasting import log_pyfunc as log_model  # noqa: F401 (the family's MLflow model hook)
from pipeline.models.forecast_baselines import Naive

KIND = "sklearn"
OBJECTIVE = "forecasting"


@dataclasses.dataclass(frozen=True)
class Params:
    """No knobs: `model: {}`."""


def build(params: Params, spec) -> Naive:
    return Naive(spec.horizon)
