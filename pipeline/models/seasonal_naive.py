"""Seasonal-naive forecast: each step ahead is the value one season earlier (objective.season = 52 weeks)."""

from __future__ import annotations

import dataclasses

from pipeline.errors import UserError
from pipeline.forecasting import log_pyfunc as log_model  # noqa: F401 (the family's MLflow model hook)
from pipeline.models.forecast_baselines import SeasonalNaive

KIND = "sklearn"
OBJECTIVE = "forecasting"


@dataclasses.dataclass(frozen=True)
class Params:
    """No knobs: `model: {}`; the season is the objective's."""


def check(params: Params, spec) -> None:
    if spec.lookback < spec.season:
        raise UserError(
            f"objective.lookback {spec.lookback} is shorter than objective.season {spec.season}: "
            "seasonal-naive needs a whole season of history"
        )


def build(params: Params, spec) -> SeasonalNaive:
    return SeasonalNaive(spec.horizon, spec.season)
