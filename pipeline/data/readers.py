"""Readers shared by data prep, retrain batches and predict: image files, class folders, CSV
columns and date/value series. One reader per kind of file, so every stage reads alike."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from pipeline import images
from pipeline.config import project_root
from pipeline.errors import UserError

FILLS = ("time", "linear", "ffill")


def resolve(path: str) -> Path:
    """A path from params.yaml: relative to the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


def hash_files(files: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(root)).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def visible(folder: Path) -> list[Path]:
    """A folder's entries in name order, hidden ones (dot-files) left out."""
    return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))


def class_folders(root: Path) -> list[tuple[Path, list[Path]]]:
    """[(class folder, its files)] of a folder holding one sub-folder per class."""
    classes = []
    for entry in visible(root):
        if not entry.is_dir():
            raise UserError(f"{entry}: stray file; expected only one sub-folder per class in {root}")
        files = visible(entry)
        if not files:
            raise UserError(f"{entry}: class folder '{entry.name}' has no images")
        classes.append((entry, files))
    return classes


def read_image(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """One image file as float32 in [0, 1], shaped (height, width, channels); channels 1 or 3
    (the rules in pipeline/images.py, which the served classifier shares)."""
    try:
        return images.decode(path, shape)
    except images.ImageError as exc:
        raise UserError(f"{path}: {exc}") from None


def read_csv(path: Path):
    import pandas as pd

    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise UserError(f"{path}: CSV file does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def numeric_column(frame, column: str, path: Path, allow_missing: bool) -> np.ndarray:
    """A CSV column as float64; a non-numeric (or, unless allowed, empty) cell names its line."""
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if not allow_missing:
        bad |= frame[column].isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raw = frame[column].iloc[row]
        what = "an empty value" if pd.isna(raw) else f"non-numeric value {str(raw)!r}"
        raise UserError(f"{path}: column '{column}' line {row + 2} has {what}")
    return values.to_numpy(dtype=np.float64)


def fill_gaps(series, fill: str):
    """Missing values filled by the dataset's `fill:` rule (time | linear interpolation, ffill)."""
    return series.ffill() if fill == "ffill" else series.interpolate(method=fill)


def series_frame(dates, values, where: str, fill: str):
    """Validate a (date, value) series and fill its gaps; returns a pandas Series on a DatetimeIndex."""
    import pandas as pd

    index = pd.DatetimeIndex(dates)
    if index.has_duplicates:
        raise UserError(f"{where}: duplicate date {index[index.duplicated()][0].date()}")
    if not index.is_monotonic_increasing:
        pos = int(np.flatnonzero(np.diff(index.asi8) < 0)[0]) + 1
        raise UserError(f"{where}: dates are not in increasing order at {index[pos].date()} (line {pos + 2})")
    series = pd.Series(values, index=index, dtype=np.float64)
    if series.notna().sum() < 2:
        raise UserError(f"{where}: fewer than 2 numeric values")
    return fill_gaps(series, fill).bfill()  # a leading gap takes the first observed value


def read_series_csv(path: Path):
    """One series batch file: a pandas Series of its values on their (time-zone-free) dates, in file order."""
    import pandas as pd

    if not path.is_file() or path.suffix.lower() != ".csv":
        raise UserError(f"{path}: stray entry; a series batch holds CSV files of date,value rows")
    frame = read_csv(path)
    for column in ("date", "value"):
        if column not in frame.columns:
            columns = ", ".join(map(str, frame.columns))
            raise UserError(f"{path}: column '{column}' not found (columns: {columns}; want date,value)")
    if frame.empty:
        raise UserError(f"{path}: no rows")
    try:  # as text: a number such as 20020105 is a date, not nanoseconds since 1970
        dates = pd.to_datetime(frame["date"].astype(str), errors="coerce")
    except (ValueError, TypeError) as exc:  # e.g. several time zones in one column
        raise UserError(f"{path}: column 'date' cannot be read as dates ({exc})") from None
    if dates.isna().any():
        line = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise UserError(f"{path}: column 'date' line {line + 2} is not a date: {frame['date'].iloc[line]!r}")
    if dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)  # the local calendar date is the one that counts
    values = numeric_column(frame, "value", path, allow_missing=False)
    if not np.isfinite(values).all():
        line = int(np.flatnonzero(~np.isfinite(values))[0]) + 2
        raise UserError(f"{path}: column 'value' line {line} is not a finite number")
    return pd.Series(values, index=pd.DatetimeIndex(dates.dt.normalize()), name=path.name)
