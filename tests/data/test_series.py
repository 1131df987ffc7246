"""A series' retrain batches (pipeline/data/series.py): date,value CSV files read for its dataset,
and merged into its `recent` segment."""

import numpy as np
import pytest

from pipeline import data
from pipeline.data import series
from pipeline.errors import UserError
from tests.helpers import weeks_after, write_series_batch


def read_series_batch(folder, dataset, accepted):
    return series.read_batch(folder, dataset, accepted, "time")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (lambda ds: weeks_after(ds, 3) + weeks_after(ds, 1), "duplicate date"),
        (lambda ds: weeks_after(ds, 2, start=-1), "is already covered by dataset 'co2'"),
        (lambda ds: [(str(ds.arrays["dates_test"][-1] + 3), 371.0)], r"off the series' step \(W-SAT"),
        (lambda ds: weeks_after(ds, 1, start=12), "filling more than half of them would make data up"),
        (lambda ds: [("2002-01-05T00:00+01:00", 1.0), ("2002-01-12T00:00+05:00", 2.0)], "mixes time zones"),
        (lambda ds: [(d, "high") for d, _ in weeks_after(ds, 2)], "column 'value' line 2 has non-numeric"),
        (lambda ds: [("someday", 371.0)], "column 'date' line 2 is not a date"),
    ],
)
def test_bad_series_batches_are_refused_with_the_line(project, rows, message):
    co2 = data.load("co2")
    folder = write_series_batch(project, "bad", rows(co2))
    with pytest.raises(UserError, match=message):
        read_series_batch(folder, co2, [])


def test_a_series_batch_may_give_times_and_time_zones_but_no_folders(project):
    co2 = data.load("co2")
    (d1, v1), (d2, v2) = weeks_after(co2, 2)
    folder = write_series_batch(project, "tz", [(f"{d1}T23:30:00-05:00", v1), (f"{d2}T08:00:00-05:00", v2)])
    dates, values = read_series_batch(folder, co2, [])
    assert dates.tolist() == [d1, d2] and values.tolist() == [v1, v2]  # the local calendar date counts
    (folder / "more.csv").mkdir()
    with pytest.raises(UserError, match="more.csv: stray entry"):
        read_series_batch(folder, co2, [])


def test_a_monthly_series_takes_the_next_months(project):
    dates = np.array(["2016-01-01", "2016-02-01", "2016-03-01", "2016-04-01", "2016-05-01"], "datetime64[D]")
    arrays = {"dates_train": dates[:3], "values_train": np.arange(3.0)}
    arrays |= {"dates_val": dates[3:3], "values_val": np.zeros(0), "dates_test": dates[3:]}
    arrays["values_test"] = np.array([3.0, 4.0])
    monthly = data.Dataset("months", data.Manifest.model_construct(kind="series", fill="time"), arrays)
    folder = write_series_batch(project, "m", [("2016-07-01", 6.0), ("2016-08-01", 7.0)])
    got, values = read_series_batch(folder, monthly, [])
    assert [str(d) for d in got] == ["2016-06-01", "2016-07-01", "2016-08-01"]
    assert np.isnan(values[0])  # June skipped: filled on merging, by time interpolation
    merged = data.merge_batches(arrays, [(got, values)], "time")
    assert merged["values_recent"][0] == pytest.approx(5.0, abs=0.1)
    assert merged["observed_recent"].tolist() == [False, True, True]
    with pytest.raises(UserError, match="off the series' step"):
        read_series_batch(write_series_batch(project, "x", [("2016-06-15", 5.0)]), monthly, [])


def test_a_series_batch_fills_a_skipped_week_and_the_next_batch_continues_it(project):
    co2 = data.load("co2")
    rows = weeks_after(co2, 1) + weeks_after(co2, 2, start=3)  # week 2 is missing
    dates, values = read_series_batch(write_series_batch(project, "a", rows), co2, [])
    assert len(dates) == 4 and np.all(np.diff(dates).astype(int) == 7) and np.isnan(values[1])
    merged = data.merge_batches(co2.arrays, [(dates, values)], "time")
    assert merged["values_recent"][1] == pytest.approx((rows[0][1] + rows[1][1]) / 2)  # as data prep fills
    later = write_series_batch(project, "b", [(dates[-1] + 7, 372.0)])
    assert read_series_batch(later, co2, [(dates, values)])[0][0] == dates[-1] + 7
    with pytest.raises(UserError, match="already covered"):  # the same weeks again
        read_series_batch(write_series_batch(project, "c", rows), co2, [(dates, values)])


def test_a_late_batch_replaces_only_filled_weeks(project):
    """Issue 14.11: a batch quarantined, the next one skips its weeks (filled), then the corrected
    re-send arrives: it replaces the filled values, never an observed or holdout one."""
    co2 = data.load("co2")
    gap = weeks_after(co2, 2)  # the weeks of the batch that was quarantined
    after = weeks_after(co2, 3, start=3)
    dates, values = read_series_batch(write_series_batch(project, "next", after), co2, [])
    merged = data.Dataset("co2", co2.manifest, data.merge_batches(co2.arrays, [(dates, values)], "time"))
    assert merged.arrays["observed_recent"].tolist() == [False, False, True, True, True]
    resent = read_series_batch(write_series_batch(project, "resent", gap), merged, [])
    final = data.merge_batches(merged.arrays, [resent], "time")
    assert final["values_recent"].tolist() == [v for _, v in gap + after]
    assert final["observed_recent"].all() and len(final["dates_recent"]) == 5
    for split in ("train", "val", "test"):
        assert np.array_equal(final[f"values_{split}"], co2.arrays[f"values_{split}"])
    with pytest.raises(UserError, match="already covered"):  # an observed week is never replaced
        read_series_batch(write_series_batch(project, "again", after[:1]), merged, [])
