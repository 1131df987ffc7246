"""`train.limit` limits the original training examples; examples retrain merged in are always kept."""

import numpy as np

from pipeline import data
from pipeline.config import TrainParams
from pipeline.objectives import anomaly, classification, forecasting
from tests.helpers import loaded

TRAIN = TrainParams(
    epochs=1,
    batch_size=8,
    learning_rate=0.001,
    optimizer="adam",
    patience=1,
    seed=0,
    limit=10,
    strategy="default",
)


def with_batch(name, rows):
    base = data.load(name)
    x, y = loaded(base, "val") if base.kind != "series" else (None, None)
    if base.kind == "series":
        last = base.arrays["dates_test"][-1]
        dates = np.array([last + 7 * k for k in range(1, rows + 1)], "datetime64[D]")
        batch = data.Batch("b1", "b1", "0" * 64, dates, np.linspace(370, 372, rows))
    else:
        batch = data.Batch("b1", "b1", "0" * 64, x[:rows], y[:rows])
    arrays, manifest = data.new_version(base, [batch])
    return data.Dataset(name, manifest, arrays), batch


def test_classification_keeps_the_merged_batch(project):
    dataset, batch = with_batch("digits", 30)
    splits, _ = classification.prepare(dataset, TRAIN)
    assert len(splits.x_train) == 10 + 30
    x_train = splits.x_train.load()
    assert np.array_equal(x_train[-30:], batch.x) and np.array_equal(
        x_train[:10], dataset.examples("train")[0].read(slice(10))
    )


def test_anomaly_keeps_the_merged_batch(project):
    dataset, batch = with_batch("digits", 30)
    params = anomaly.Params(
        anomaly_classes=(9,), latent_dim=2, score="mse", threshold_quantile=0.95, retrieval_k=5
    )
    splits, _ = anomaly.prepare(dataset, TRAIN, params)
    normal = batch.x[batch.y != 9]
    x_train = splits.x_train.load()
    assert len(x_train) == 10 + len(normal) and np.array_equal(x_train[-len(normal) :], normal)


def test_forecasting_keeps_the_new_weeks(project):
    dataset, _ = with_batch("co2", 60)
    params = forecasting.Params(lookback=8, horizon=1, season=52)
    splits, _ = forecasting.prepare(dataset, TRAIN, params)
    assert len(splits.x_train) == 10 + 60  # the 10 newest original windows, one window per new week
