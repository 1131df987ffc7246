"""A reference profile: made once from a dataset's training split, saved as a small JSON file
(never a pickle), loaded where batches or requests are checked."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from pipeline import atomic
from pipeline.errors import UserError
from pipeline.monitoring.images import ImageProfile
from pipeline.monitoring.series import SeriesProfile

FORMAT = 1
MAX_BYTES = 32 * 2**20  # a profile of 1000 quantiles per statistic is tens of kB; refuse anything huge
KINDS = {cls.KIND: cls for cls in (ImageProfile, SeriesProfile)}

Profile = ImageProfile | SeriesProfile


def fit(dataset, probabilities=None, season: int | None = None) -> Profile:
    """The profile of a prepared dataset's training split (`data.Dataset`).

    Images: `probabilities` are the model's class probabilities on the validation split (see
    ImageProfile.fit). A series needs its `season` in steps (the forecasting objective's)."""
    if dataset.kind == "images":
        return ImageProfile.fit(dataset.examples("train")[0], probabilities)
    if dataset.kind == "series":
        if season is None:
            raise UserError(f"drift: dataset '{dataset.name}' is a series; its profile needs the season")
        return SeriesProfile.fit(dataset.arrays["dates_train"], dataset.arrays["values_train"], season)
    raise UserError(f"drift: dataset '{dataset.name}' is a {dataset.kind}; drift covers images and series")


def to_json(profile: Profile) -> str:
    return json.dumps({"format": FORMAT, **profile.to_json()}, separators=(",", ":"))


def from_json(text: str, where: str = "drift profile") -> Profile:
    try:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
        return KINDS[data["kind"]].from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{where}: not a drift profile ({type(exc).__name__}: {exc})") from None


def save(profile: Profile, path: Path) -> Path:
    atomic.write_text(Path(path), to_json(profile))
    return Path(path)


def load(path: Path) -> Profile:
    """Read a profile file; a symlink, a directory or an oversized file is refused."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO never blocks
    except OSError as exc:
        raise UserError(f"{path}: cannot read the drift profile ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{path}: not a file")
    with os.fdopen(fd, "rb") as handle:
        text = handle.read(MAX_BYTES + 1)
    if len(text) > MAX_BYTES:
        raise UserError(f"{path}: larger than {MAX_BYTES // 2**20} MiB; not a drift profile")
    return from_json(text.decode("utf-8", errors="replace"), str(path))
