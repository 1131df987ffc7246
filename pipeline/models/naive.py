"""Naive forecast: every step ahead is the last observed value (the random-walk forecast)."""

from __future__ import annotations

from pipeline.models import Family, Logged, forecast_baselines, nothing_learned
from pipeline.models.forecast_baselines import Naive
from pipeline.models.schemas import NoParams as Params
from pipeline.specs import ForecastSpec


def build(params: Params, spec: ForecastSpec) -> Naive:
    return Naive(spec.horizon)


FAMILY = Family(
    name="naive",
    build=build,
    count_params=nothing_learned,
    # models-from-code: forecast_baselines.py rebuilds the forecaster from its config (nothing pickled)
    logged=Logged("code", code=forecast_baselines, config=Naive.config),
)
