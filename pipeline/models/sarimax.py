"""statsmodels SARIMAX, the classical forecaster: fitted once on the training series by maximum
likelihood; each window is then filtered with those parameters and forecast `horizon` steps ahead.

Default order (params.yaml): (1, 1, 1) x (0, 1, 1, 52), the "airline" model of Box & Jenkins with a
weekly season: one regular and one seasonal difference remove the trend and the yearly cycle, an
ARMA(1, 1) and a seasonal MA(1) model what is left. `simple_differencing: true` differences the
data before the Kalman filter: the same parameters, far faster than keeping the 53 differenced
states in the state vector.
"""

from __future__ import annotations

from pipeline.errors import UserError
from pipeline.models import Family, Logged, forecast_baselines
from pipeline.models.forecast_baselines import Sarimax
from pipeline.models.schemas import SarimaxParams as Params
from pipeline.specs import ForecastSpec


def check(params: Params, spec: ForecastSpec) -> None:
    if min(params.order) < 0 or min(params.seasonal_order) < 0:
        raise UserError(f"model.order and model.seasonal_order must be non-negative (got {params})")
    _, d, _ = params.order
    _, big_d, _, s = params.seasonal_order
    lost = d + big_d * s  # observations differencing consumes at the start of each window
    if spec.lookback < lost + 2:
        raise UserError(
            f"objective.lookback {spec.lookback} is too short for SARIMAX "
            f"{params.order}x{params.seasonal_order}: differencing takes {lost} points, "
            f"each window needs at least {lost + 2}"
        )


def build(params: Params, spec: ForecastSpec) -> Sarimax:
    return Sarimax(spec.horizon, params.order, params.seasonal_order, params.simple_differencing)


def count_params(model: Sarimax) -> int:
    """The coefficients fitted by maximum likelihood (AR, MA, seasonal MA, noise variance)."""
    return int(len(model.params))


FAMILY = Family(
    name="sarimax",
    build=build,
    count_params=count_params,
    check=check,
    # models-from-code: forecast_baselines.py rebuilds the forecaster from its config (nothing pickled)
    logged=Logged("code", code=forecast_baselines, config=Sarimax.config, requirements=("statsmodels",)),
)
