"""The server's rolling drift window: one comparison written per window, never per request, in
bounded memory, and a failing writer never raises into the server."""

import time

import numpy as np
import pytest

from pipeline import data, monitoring


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def images(project):
    dataset = data.load("digits")
    return monitoring.fit(dataset), dataset.examples("test")[0].load()


def test_requests_are_summarised_once_per_window(images):
    profile, x_test = images
    written, clock = [], Clock()
    window = monitoring.DriftWindow(profile, written.append, seconds=60, clock=clock)
    for start in range(0, 120, 4):  # 30 requests of 4 images
        window.add(profile.stats(x_test[start : start + 4]))
        clock.now += 1
    assert written == [] and not window.due()  # nothing is written per request
    clock.now = 60
    assert window.due()
    drift = window.flush()
    assert written == [drift] and drift.examples == 120
    assert not drift.exceeds(monitoring_limit())
    assert window.flush() is None and len(written) == 1  # an empty window writes nothing
    window.add(profile.stats(1.0 - x_test[:40]))
    assert window.flush().exceeds(monitoring_limit())


def monitoring_limit():
    from pipeline.training.plan import DriftLimit

    return DriftLimit(max=0.3, action="warn")


def test_the_window_keeps_a_bounded_uniform_sample(images):
    profile, _ = images
    window = monitoring.DriftWindow(profile, lambda d: None, max_examples=50, clock=Clock())
    stream = np.broadcast_to(np.linspace(0, 1, 1800)[:, None, None, None], (1800, 8, 8, 1))
    for start in range(0, 1800, 30):  # 60 requests; image i's brightness tells its place
        window.add(profile.stats(stream[start : start + 30]))
    kept = window._stats
    assert len(kept.brightness) == len(kept.distance) == 50
    assert kept.count == 1800  # the sums and counts cover every image
    assert np.allclose(kept.pixel_sum, stream.sum(axis=0))
    # the sample is drawn from the whole stream, not only its start or its end
    positions = np.round(kept.brightness * 1799)
    assert len(set(positions)) == 50
    assert positions.min() < 600 and positions.max() > 1200
    assert 5 <= (positions < 900).sum() <= 45
    assert window.flush().examples == 1800


def test_the_timer_writes_each_window_and_the_last_one_on_stop(images):
    profile, x_test = images
    written = []
    with monitoring.DriftWindow(profile, written.append, seconds=0.2) as window:
        window.add(profile.stats(x_test[:10]))
        deadline = time.monotonic() + 10
        while not written and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(written) == 1 and written[0].examples == 10
        window.add(profile.stats(x_test[10:15]))
    assert written[-1].examples == 5  # the last window, written when the block ends


def test_a_failing_writer_is_reported_not_raised(images, capsys):
    profile, x_test = images

    def broken(drift):
        raise OSError("store unreachable")

    window = monitoring.DriftWindow(profile, broken, clock=Clock())
    window.add(profile.stats(x_test[:10]))
    assert window.flush().examples == 10
    assert "could not write (OSError: store unreachable)" in capsys.readouterr().err


def test_series_calls_fold_into_a_window(project):
    dataset = data.load("co2")
    arrays = dataset.arrays
    profile = monitoring.fit(dataset, season=52)
    dates, values = arrays["dates_val"], arrays["values_val"]
    written = []
    window = monitoring.DriftWindow(profile, written.append, clock=Clock())
    for end in (60, 70, 80):
        window.add(profile.stats(dates[:end], values[:end], new=4))
    drift = window.flush()
    assert drift.examples == 12 and drift.kind == "series"
    assert set(drift.metrics) == {
        "drift_score",
        "drift_examples",
        "drift_residual_share",
        "drift_level_shift",
    }
