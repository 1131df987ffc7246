import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.models import sarimax
from pipeline.models.forecast_baselines import series_from_windows
from pipeline.objectives.forecasting import make_windows
from pipeline.specs import ForecastSpec as Spec


def test_windows_give_back_the_series_they_were_cut_from():
    values = np.random.default_rng(0).normal(size=50)
    x, y = make_windows(values, lookback=7, horizon=3)
    assert np.allclose(series_from_windows(x, y), values)


def test_windows_after_a_jump_are_left_out_of_the_series():
    values = np.random.default_rng(0).normal(size=50)
    x, y = make_windows(values, lookback=7, horizon=3)
    later_x, later_y = make_windows(values[30:] + 10, lookback=7, horizon=3)  # e.g. a retrain batch
    series = series_from_windows(np.concatenate([x, later_x]), np.concatenate([y, later_y]))
    assert np.allclose(series, values)


@pytest.mark.integration  # fits SARIMAX (statsmodels): seconds
def test_sarimax_forecasts_a_trend_plus_season_in_levels():
    t = np.arange(160.0)
    values = 300 + 0.5 * t + 3 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(1).normal(0, 0.05, 160)
    x, y = make_windows(values[:120], lookback=40, horizon=6)
    params = sarimax.Params(order=(0, 1, 1), seasonal_order=(0, 1, 1, 12), simple_differencing=True)
    model = sarimax.build(params, Spec(40, 6, 12, 0.5, 1.0, 0)).fit(x, y)
    x_test, y_test = make_windows(values[100:], lookback=40, horizon=6)
    forecast = model.predict(x_test)
    # trend and season are deterministic: the airline model forecasts them to within the noise
    assert forecast.shape == y_test.shape and np.sqrt(np.mean((forecast - y_test) ** 2)) < 0.3
    naive = np.repeat(x_test[:, -1, :1], 6, axis=1)
    assert np.sqrt(np.mean((naive - y_test) ** 2)) > 2


@pytest.mark.integration  # fits SARIMAX twice: seconds
def test_simple_differencing_gives_levels_like_the_state_space_differencing():
    t = np.arange(120.0)
    values = 10 + 0.2 * t + np.sin(2 * np.pi * t / 6) + np.random.default_rng(2).normal(0, 0.1, 120)
    x, y = make_windows(values[:90], lookback=30, horizon=4)
    x_test, _ = make_windows(values[60:], lookback=30, horizon=4)
    forecasts = []
    for simple in (True, False):
        params = sarimax.Params(order=(1, 1, 0), seasonal_order=(0, 1, 1, 6), simple_differencing=simple)
        forecasts.append(sarimax.build(params, Spec(30, 4, 6, 0.2, 1.0, 0)).fit(x, y).predict(x_test[:5]))
    assert np.allclose(forecasts[0], forecasts[1], atol=0.15)


def test_sarimax_needs_more_lookback_than_differencing_takes():
    params = sarimax.Params(order=(1, 1, 1), seasonal_order=(0, 1, 1, 52), simple_differencing=True)
    with pytest.raises(UserError, match="differencing takes 53 points"):
        sarimax.check(params, Spec(54, 4, 52, 0.0, 1.0, 0))
    sarimax.check(params, Spec(55, 4, 52, 0.0, 1.0, 0))
