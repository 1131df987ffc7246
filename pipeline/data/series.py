"""A dated series' retrain batches: CSV files of date,value rows that continue it after its test
period, on its step, and how they merge into it (a fourth segment, `recent`, after the holdout).

    segments(arrays)                      train, val, test, then `recent` once batches came
    read_batch(folder, dataset, ...)      a batch checked against the series (and the batches
                                          accepted before it): (dates, values), NaN where skipped
    merge_recent(arrays, batches, fill)   the series with the batches' weeks in `recent`
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data import readers
from pipeline.errors import UserError


def segments(arrays: dict[str, np.ndarray]) -> list[str]:
    """A series' segments in time order: train, val, test, then `recent` once retrain added weeks."""
    return [s for s in ("train", "val", "test", "recent") if f"values_{s}" in arrays]


def recent_gaps(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The dates of the `recent` segment whose values were filled, not observed: a later batch may
    give them (the holdout and the original series are never replaced)."""
    if "observed_recent" not in arrays:
        return np.zeros(0, "datetime64[D]")
    return arrays["dates_recent"][~arrays["observed_recent"]]


def merge_recent(arrays: dict[str, np.ndarray], batches, fill: str) -> dict[str, np.ndarray]:
    """A series' new weeks after its test period: the `recent` segment. A batch's NaN (a step it
    skipped) is filled like data prep fills gaps, anchored on the last value before it, and stays
    open: a later batch's value for that date replaces the filled one."""
    import pandas as pd

    merged = dict(arrays)
    dates = merged.get("dates_recent", np.zeros(0, "datetime64[D]"))
    observed = merged.get("observed_recent", np.ones(len(dates), bool))
    raw = pd.Series(np.where(observed, merged.get("values_recent", np.zeros(0)), np.nan), index=dates)
    for batch_dates, values in batches:
        batch = pd.Series(np.asarray(values, np.float64), index=np.asarray(batch_dates, "datetime64[D]"))
        raw = batch.combine_first(raw) if len(raw) else batch  # the batch's values win
    raw = raw.sort_index()
    anchor = pd.Series([merged["values_test"][-1]], index=merged["dates_test"][-1:])
    filled = readers.fill_gaps(pd.concat([anchor, raw]), fill).to_numpy(np.float64)[1:]
    merged["dates_recent"] = raw.index.to_numpy().astype("datetime64[D]")
    merged["values_recent"] = filled
    merged["observed_recent"] = raw.notna().to_numpy()
    return merged


def frequency(known: np.ndarray, name: str) -> str:
    """The series' step as a pandas frequency, inferred from its newest dates (CO2: 'W-SAT')."""
    import pandas as pd

    step = None
    if len(known) >= 3:
        # pandas 3's coming answer (an offset), without the warning about the change
        with pd.option_context("future.infer_freq_returns_offset", True):
            step = pd.infer_freq(pd.DatetimeIndex(known[-60:]))
    if step is None:
        raise UserError(f"dataset '{name}': its dates have no regular step, so no batch can continue it")
    return step.freqstr


def check_on_step(path: Path, part, last, freq: str, open_dates: set, where: str) -> None:
    """Every date of a batch file comes after the series and falls on its step, or fills one of the
    `open_dates`: steps an earlier batch skipped (their values were filled, not observed)."""
    import pandas as pd

    on_step = set(pd.date_range(last, max(part.index.max(), last), freq=freq))
    lines = part.attrs.get("lines") or range(2, len(part) + 2)
    for line, day in zip(lines, part.index, strict=True):
        if day <= last and day not in open_dates:
            raise UserError(
                f"{readers.shown(path)}: line {line}: date {day.date()} is already covered by {where} "
                f"(it ends {last.date()}); a batch adds only later dates, or dates an earlier batch "
                "skipped"
            )
        if day > last and day not in on_step:
            raise UserError(
                f"{readers.shown(path)}: line {line}: date {day.date()} is off the series' step "
                f"({freq}, last date {last.date()})"
            )


def read_batch(folder: Path, dataset, accepted: list, fill: str) -> tuple[np.ndarray, np.ndarray]:
    """CSV files of date,value rows that continue the series after its last date (and after the
    batches `accepted` earlier in this cycle), on the series' step. Returns (dates, values) with NaN
    on the steps the batch skips (merge_recent fills them as data prep does) and, first, any
    values for steps an earlier batch skipped: a late or corrected re-send replaces filled values."""
    import pandas as pd

    arrays = merge_recent(dataset.arrays, accepted, fill) if accepted else dataset.arrays
    known = np.concatenate([arrays[f"dates_{s}"] for s in segments(arrays)])
    last = pd.Timestamp(known[-1])
    freq = frequency(known, dataset.name)
    open_dates = set(pd.DatetimeIndex(recent_gaps(arrays)))
    files = readers.visible(folder)
    if not files:
        raise UserError(f"{readers.shown(folder)}: empty batch (no CSV file of date,value rows)")
    where = f"dataset '{dataset.name}'" + (" with the batches before this one" if accepted else "")
    parts = []
    for path in files:
        part = readers.read_series_csv(path)
        check_on_step(path, part, last, freq, open_dates, where)
        parts.append(part)
    new = pd.concat(parts).sort_index()
    if new.index.has_duplicates:
        duplicate = new.index[new.index.duplicated()][0].date()
        raise UserError(f"{readers.shown(folder)}: duplicate date {duplicate}")
    late, later = new[new.index <= last], new[new.index > last]
    # the batch's steps plus any skipped ones (NaN: filled on merge, open to a later re-send)
    grid = pd.date_range(last, max(new.index.max(), last), freq=freq)[1:]
    if len(grid) > 2 * len(later):
        raise UserError(
            f"{readers.shown(folder)}: {len(later)} row(s) would span {len(grid)} steps after "
            f"{last.date()}; filling more than half of them would make data up (a mistyped date?)"
        )
    values = pd.concat([late, later.reindex(grid)])
    return values.index.to_numpy().astype("datetime64[D]"), values.to_numpy(np.float64)
