"""Seasonal-naive forecast: each step ahead is the value one season earlier (objective.season = 52 weeks)."""

from __future__ import annotations

from pipeline.errors import UserError
from pipeline.models import Family, Logged, forecast_baselines, nothing_learned
from pipeline.models.forecast_baselines import SeasonalNaive
from pipeline.models.schemas import NoParams as Params
from pipeline.specs import ForecastSpec


def check(params: Params, spec: ForecastSpec) -> None:
    if spec.lookback < spec.season:
        raise UserError(
            f"objective.lookback {spec.lookback} is shorter than objective.season {spec.season}: "
            "seasonal-naive needs a whole season of history"
        )


def build(params: Params, spec: ForecastSpec) -> SeasonalNaive:
    return SeasonalNaive(spec.horizon, spec.season)


FAMILY = Family(
    name="seasonal-naive",
    build=build,
    count_params=nothing_learned,
    check=check,
    # models-from-code: forecast_baselines.py rebuilds the forecaster from its config (nothing pickled)
    logged=Logged("code", code=forecast_baselines, config=SeasonalNaive.config),
)
