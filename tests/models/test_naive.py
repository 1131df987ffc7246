import numpy as np

from pipeline.models import naive
from pipeline.objectives.forecasting import make_windows
from pipeline.specs import ForecastSpec as Spec


def test_naive_repeats_the_last_value():
    x, y = make_windows(np.arange(30.0) ** 2, lookback=6, horizon=3)
    model = naive.build(naive.Params(), Spec(6, 3, 4, 0.0, 1.0, 0)).fit(x, y)
    forecast = model.predict(x)
    assert forecast.shape == y.shape and np.array_equal(forecast[:, 0], x[:, -1, 0])
    assert np.all(forecast == forecast[:, :1])
