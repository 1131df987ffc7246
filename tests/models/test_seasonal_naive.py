import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.models import seasonal_naive
from pipeline.objectives.forecasting import make_windows
from pipeline.specs import ForecastSpec as Spec


def test_seasonal_naive_is_exact_on_a_purely_seasonal_series():
    values = np.tile([1.0, 5.0, 2.0, 8.0], 12)  # season 4, no trend, no noise
    x, y = make_windows(values, lookback=6, horizon=6)  # horizon beyond one season reaches back twice
    model = seasonal_naive.build(seasonal_naive.Params(), Spec(6, 6, 4, 0.0, 1.0, 0)).fit(x, y)
    assert np.array_equal(model.predict(x), y)


def test_seasonal_naive_takes_the_value_one_season_before_each_target():
    x, y = make_windows(np.arange(40.0), lookback=8, horizon=3)
    model = seasonal_naive.build(seasonal_naive.Params(), Spec(8, 3, 5, 1.0, 0.0, 0))
    assert np.array_equal(model.predict(x), y - 5)


def test_seasonal_naive_needs_a_whole_season_of_lookback():
    with pytest.raises(UserError, match="lookback 3 is shorter than objective.season 4"):
        seasonal_naive.check(seasonal_naive.Params(), Spec(3, 1, 4, 0.0, 1.0, 0))
