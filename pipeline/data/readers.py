"""Readers shared by data prep, retrain batches and predict: files (regular ones only), image files,
class folders, CSV columns and date/value series. One reader per kind of file, so every stage reads
alike, and what an uploader chose (names, file types, image sizes) is checked here once.

Skipped everywhere: what other systems leave in copied folders (Thumbs.db, desktop.ini, .DS_Store,
__MACOSX/) and dot-files. Refused everywhere with one line: symbolic links and special files (a FIFO
would block the reader), images over the pixel cap (checked from the header, before decoding).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import stat
import sys
from pathlib import Path

import numpy as np

from pipeline import images
from pipeline.config import project_root
from pipeline.errors import UserError

JUNK = {"thumbs.db", "desktop.ini", "__macosx"}  # and every dot-file (.DS_Store, ._x, .git/)
MAX_PIXELS = images.MAX_PIXELS  # the default cap on an image's width x height (retrain.max_image_pixels)


def resolve(path: str) -> Path:
    """A path from params.yaml: relative to the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


def shown(value) -> str:
    """An uploader-chosen name or path as one printable line: backslashes, control and format
    characters and bytes that are not UTF-8 (os.fsdecode's surrogates) are backslash-escaped, so a
    file name can neither forge a log line nor break a note."""
    out = []
    for ch in os.fsdecode(value) if isinstance(value, bytes) else str(value):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode keeps it
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def printable(text: str) -> str:
    """A message that may quote uploader-chosen text, as one printable line (names in it were
    escaped with `shown` already; this catches anything else: newlines, escape sequences, bytes)."""
    return "".join(ch if ch.isprintable() else shown(ch) for ch in str(text))


def is_junk(name: str) -> bool:
    """Files other systems leave in copied folders, dot-files, and a batch's READY marker: skipped,
    never read."""
    return name.startswith(".") or name.lower() in JUNK or name == "READY"


def special_kind(mode: int) -> str | None:
    """What a non-regular file is (None for a regular file or a folder)."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    kinds = {stat.S_ISLNK: "a symbolic link", stat.S_ISFIFO: "a named pipe", stat.S_ISSOCK: "a socket"}
    found = next((kind for test, kind in kinds.items() if test(mode)), "a device file")
    return f"{found}; only regular files are read (links are not followed)"


def regular_files(root: Path) -> list[Path]:
    """Every regular file under `root` (junk skipped), in byte order of their relative paths.
    Symbolic links and special files anywhere are refused (lstat: nothing is followed or opened)."""
    found, todo = [], [Path(root)]
    while todo:
        folder = todo.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if is_junk(entry.name):
                    continue
                mode = entry.stat(follow_symlinks=False).st_mode
                kind = special_kind(mode)
                if kind:
                    raise UserError(f"{shown(entry.path)}: {kind}")
                (todo if stat.S_ISDIR(mode) else found).append(Path(entry.path))
    return sorted(found, key=lambda p: os.fsencode(p.relative_to(root)))


def open_regular(path: Path, follow_symlinks: bool = False):
    """A binary file object of a regular file; anything else is refused before a byte is read
    (O_NONBLOCK: opening a FIFO returns at once, and fstat then refuses it)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UserError(f"{shown(path)}: file does not exist") from None
    except OSError as exc:
        mode = os.lstat(path).st_mode if os.path.lexists(path) else 0
        raise UserError(f"{shown(path)}: {special_kind(mode) or exc.strerror}") from None
    kind = special_kind(os.fstat(fd).st_mode)
    if kind or stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{shown(path)}: {kind or 'a folder, not a file'}")
    return os.fdopen(fd, "rb")


def hash_files(files: list[Path], root: Path, follow_symlinks: bool = True) -> str:
    """sha256 over the files' relative paths (as bytes) and contents, streamed."""
    digest = hashlib.sha256()
    for f in files:
        name = os.fsencode(f.relative_to(root))
        digest.update(len(name).to_bytes(4, "big") + name)
        with open_regular(f, follow_symlinks) as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def visible(folder: Path) -> list[Path]:
    """A folder's entries in name order, junk (dot-files, Thumbs.db, __MACOSX, ...) left out."""
    return sorted(entry for entry in folder.iterdir() if not is_junk(entry.name))


def class_folders(root: Path) -> list[tuple[Path, list[Path]]]:
    """[(class folder, its files)] of a folder holding one sub-folder per class."""
    classes = []
    for entry in visible(root):
        if not entry.is_dir():
            raise UserError(
                f"{shown(entry)}: stray file; expected only one sub-folder per class in {shown(root)}"
            )
        files = visible(entry)
        if not files:
            raise UserError(f"{shown(entry)}: class folder '{shown(entry.name)}' has no images")
        classes.append((entry, files))
    return classes


@contextlib.contextmanager
def progress(label: str, total: int):
    """Yields advance(): one more file done. A bar on a terminal (stderr, gone when done); nothing
    in a log or for a few files."""
    if total < 100 or not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


# --------------------------------------------------------------------------- images


def read_image(
    path: Path, shape: tuple[int, ...], max_pixels: int = MAX_PIXELS, follow_symlinks: bool = False
) -> np.ndarray:
    """One image file as float32 in [0, 1], shaped (height, width, channels); channels 1 or 3.

    Only a regular file is opened (never a FIFO; a link only with `follow_symlinks`); its size is
    checked from the header against `max_pixels` before anything is decoded, and every Pillow mode
    is converted by its meaning or refused: the rules in pipeline/images.py, which the served
    classifier shares. Any failure is one line naming the file."""
    with open_regular(path, follow_symlinks) as handle:
        try:
            return images.decode(handle, shape, max_pixels)
        except images.ImageError as exc:
            raise UserError(f"{shown(path)}: {exc}") from None


COMMON_FORMATS = (
    ".jpg",
    ".jpeg",
    ".png",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".avif",
    ".heic",
    ".heif",
)


def formats_read() -> str:
    """The image files read, as a message lists them: the common extensions Pillow has an opener for
    (HEIC once pillow-heif registers one), and how many more it reads."""
    from PIL import Image

    Image.init()
    images.heif_opener()  # registered on the first image read: list HEIC before one is read
    readable = {ext for ext, name in Image.registered_extensions().items() if name in Image.OPEN}
    common = [ext for ext in COMMON_FORMATS if ext in readable]
    return f"formats read: {' '.join(common)} and {len(readable) - len(common)} more that Pillow reads"


COLOR_MODES = ("RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA")


def image_header(source) -> tuple[int, int, bool] | None:
    """(height, width, colour) of an image file from its header alone (nothing decoded), or None when
    Pillow cannot read it. Colour: the file stores colour (RGB, CMYK, a palette), whatever it shows."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            width, height = img.size
            return height, width, img.mode in COLOR_MODES
    except Exception:  # noqa: BLE001 - Pillow raises many kinds; the decoder says what is wrong
        return None


# --------------------------------------------------------------------------- CSV files


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_rows(path: Path) -> list[tuple[int, list[str]]]:
    """[(line number, cells)] of a CSV file, blank lines skipped, cells stripped."""
    rows = []
    try:
        with (
            open_regular(path, follow_symlinks=True) as raw,
            open(raw.fileno(), newline="", encoding="utf-8-sig", closefd=False) as handle,
        ):
            reader = csv.reader(handle)
            for row in reader:
                if any(cell.strip() for cell in row):
                    rows.append((reader.line_num, [cell.strip() for cell in row]))
    except UnicodeDecodeError:
        raise UserError(f"{shown(path)}: not a readable CSV (not UTF-8 text)") from None
    except csv.Error as exc:
        raise UserError(f"{shown(path)}: line {reader.line_num}: not a readable CSV ({exc})") from None
    return rows


def read_csv(path: Path, header: bool | None = True):
    """A CSV file as a person reads it: a DataFrame of the cells as text (numbers and dates are read
    per column by numeric_column / date_column), its line numbers in `frame.attrs["lines"]`.

    A row with more or fewer fields than the header is an error naming its line (an unquoted
    thousands separator, 1,250, would otherwise shift a column). `header=None` detects the header:
    a first row of numbers only is data, and the columns are named 0, 1, ..."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise UserError(f"{shown(path)}: CSV file does not exist")
    rows = csv_rows(path)
    if not rows:
        raise UserError(f"{shown(path)}: not a readable CSV (the file is empty)")
    if header is None:
        header = not all(is_number(cell) for cell in rows[0][1])
    names = rows[0][1] if header else [str(i) for i in range(len(rows[0][1]))]
    body = rows[1:] if header else rows
    if header and (len(set(names)) != len(names) or "" in names):
        raise UserError(f"{shown(path)}: line {rows[0][0]}: the header has an empty or repeated column name")
    for line, cells in body:
        if len(cells) != len(names):
            first = "the header" if header else "the first row"
            raise UserError(
                f"{shown(path)}: line {line} has {len(cells)} fields but {first} has {len(names)} "
                f"({shown(','.join(cells))[:80]}); an unquoted thousands separator such as 1,250? "
                "quote the value or drop the comma"
            )
    frame = pd.DataFrame([cells for _, cells in body], columns=names, dtype=object)
    frame.attrs["lines"] = [line for line, _ in body]
    return frame


def line_of(frame, row: int) -> int:
    """The file line of a frame's row (read_csv keeps them; else header + 1-based row)."""
    lines = frame.attrs.get("lines")
    return lines[row] if lines else row + 2


def numeric_column(frame, column: str, path: Path, allow_missing: bool) -> np.ndarray:
    """A CSV column as float64; a non-numeric, non-finite (inf, nan) or, unless allowed, empty cell
    names its line. With `allow_missing`, an empty cell is NaN (a gap)."""
    import pandas as pd

    text = frame[column].astype(object)
    empty = text.isna() | (text.astype(str).str.strip() == "")
    values = pd.to_numeric(text.where(~empty), errors="coerce").astype(np.float64)
    bad = ~empty & ~np.isfinite(values)
    if not allow_missing:
        bad |= empty
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raw = text.iloc[row]
        if empty.iloc[row]:
            what = "has an empty value"
        elif is_number(str(raw)):
            what = f"is not a finite number: {shown(raw)!r}"
        else:
            what = f"has non-numeric value {shown(raw)!r}"
        raise UserError(f"{shown(path)}: column '{shown(column)}' line {line_of(frame, row)} {what}")
    return values.to_numpy(dtype=np.float64)


def date_column(frame, column: str, path: Path):
    """A CSV column of dates as a DatetimeIndex (time zones dropped: the local date and time count).

    The format is inferred per column (20200104 is 4 January 2020, never an epoch count); a cell
    that does not fit it names its line; several UTC offsets in one column are refused."""
    import pandas as pd

    text = frame[column].astype(str).str.strip()
    try:
        dates = pd.to_datetime(text, errors="coerce")
    except (ValueError, TypeError) as exc:
        if "zone" not in str(exc).lower():
            where = f"{shown(path)}: column '{shown(column)}'"
            raise UserError(f"{where} cannot be read as dates ({exc})") from None
        raise UserError(
            f"{shown(path)}: column '{shown(column)}' mixes time zones (UTC offsets); write every date "
            "with the same offset, or none"
        ) from None
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise UserError(
            f"{shown(path)}: column '{shown(column)}' line {line_of(frame, row)} is not a date "
            f"(in the column's format): {shown(text.iloc[row])!r}"
        )
    if dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)  # the local calendar date is the one that counts
    return pd.DatetimeIndex(dates)


def fill_gaps(series, fill: str):
    """Missing values filled by the dataset's `fill:` rule (time | linear interpolation, ffill)."""
    return series.ffill() if fill == "ffill" else series.interpolate(method=fill)


def series_frame(dates, values, where: str, fill: str):
    """Validate a (date, value) series and fill its gaps; returns a pandas Series on a DatetimeIndex.

    Rows out of date order are sorted (a spreadsheet sorted by value, say); a date twice is an error."""
    import pandas as pd

    index = pd.DatetimeIndex(dates)
    values = np.asarray(values, dtype=np.float64)
    if not index.is_monotonic_increasing:  # (the bundled CO2 series is in order: untouched)
        order = np.argsort(index.asi8, kind="stable")
        index, values = index[order], values[order]
    if index.has_duplicates:
        raise UserError(f"{where}: duplicate date {index[index.duplicated()][0].date()}")
    series = pd.Series(values, index=index, dtype=np.float64)
    if series.notna().sum() < 2:
        raise UserError(f"{where}: fewer than 2 numeric values")
    return fill_gaps(series, fill).bfill()  # a leading gap takes the first observed value


def read_series_csv(path: Path):
    """One series batch file: a pandas Series of its values on their (time-zone-free) dates, in file order."""
    import pandas as pd

    if path.suffix.lower() != ".csv" or stat.S_ISDIR(path.lstat().st_mode):
        raise UserError(f"{shown(path)}: stray entry; a series batch holds CSV files of date,value rows")
    frame = read_csv(path)
    for column in ("date", "value"):
        if column not in frame.columns:
            columns = ", ".join(map(shown, frame.columns))
            raise UserError(
                f"{shown(path)}: column '{column}' not found (columns: {columns}; want date,value)"
            )
    if frame.empty:
        raise UserError(f"{shown(path)}: no rows")
    dates = date_column(frame, "date", path)
    values = numeric_column(frame, "value", path, allow_missing=False)
    series = pd.Series(values, index=dates.normalize(), name=path.name)
    series.attrs["lines"] = frame.attrs["lines"]
    return series
