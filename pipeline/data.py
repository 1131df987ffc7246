"""Data-prep stage: load a source, validate it, split it deterministically, hash it, cache it.

Sources (the `source:` key of a `data:` entry in params.yaml):
  sklearn-digits   scikit-learn's bundled 8x8 digit images (offline)
  statsmodels-co2  statsmodels' bundled weekly Mauna Loa CO2 series (offline)
  image-folder     your images, one sub-folder per class, any format Pillow reads
  csv-table        your CSV of numeric feature columns and a `target` label column
  csv-series       your CSV of a date column and a value column

Output: data/processed/<dataset>/manifest.json and the arrays it names (arrays-<sha>.npz).
The manifest is replaced last and atomically, so an interrupted run leaves the previous
version intact. Images are float32 in [0, 1], shaped (N, H, W, C). TensorFlow is not
imported here: preparing data stays fast and `make` can decide without it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from pipeline import atomic
from pipeline.config import PARAMS_FILE, dataset_names, load_params, parse_section, project_root, suggest
from pipeline.errors import UserError

# Bump when the processing below changes what a source turns into: it invalidates caches.
PREP_VERSION = 1
SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


# --------------------------------------------------------------------------- source schemas


@dataclasses.dataclass(frozen=True)
class DigitsSource:
    source: Literal["sklearn-digits"]
    val_fraction: float
    test_fraction: float
    seed: int


@dataclasses.dataclass(frozen=True)
class ImageFolderSource:
    source: Literal["image-folder"]
    path: str  # one sub-folder per class
    image_size: tuple[int, int]  # (height, width) every image is resized to
    color_mode: Literal["grayscale", "rgb"]
    val_fraction: float
    test_fraction: float
    seed: int


@dataclasses.dataclass(frozen=True)
class CsvTableSource:
    source: Literal["csv-table"]
    path: str
    target: str  # label column; every other column is a numeric feature
    val_fraction: float
    test_fraction: float
    seed: int


@dataclasses.dataclass(frozen=True)
class Co2Source:
    source: Literal["statsmodels-co2"]
    val_fraction: float
    test_fraction: float
    fill: Literal["time", "linear", "ffill"]  # how gaps are filled


@dataclasses.dataclass(frozen=True)
class CsvSeriesSource:
    source: Literal["csv-series"]
    path: str
    date_column: str
    value_column: str
    val_fraction: float
    test_fraction: float
    fill: Literal["time", "linear", "ffill"]


SOURCES = {
    "sklearn-digits": DigitsSource,
    "image-folder": ImageFolderSource,
    "csv-table": CsvTableSource,
    "statsmodels-co2": Co2Source,
    "csv-series": CsvSeriesSource,
}


def parse_source(name: str, entry: Any):
    where = f"data.{name}"
    if not isinstance(entry, dict) or "source" not in entry:
        raise UserError(f"{PARAMS_FILE}: {where} needs a 'source' ({', '.join(SOURCES)})")
    schema = SOURCES.get(entry["source"])
    if schema is None:
        raise UserError(
            f"{PARAMS_FILE}: {where}.source '{entry['source']}' is unknown; use one of {', '.join(SOURCES)}"
        )
    spec = parse_section(schema, entry, where)
    if not (
        0 <= spec.val_fraction < 1
        and 0 < spec.test_fraction < 1
        and spec.val_fraction + spec.test_fraction < 1
    ):
        raise UserError(
            f"{PARAMS_FILE}: {where}: val_fraction and test_fraction must be in [0, 1) and sum below 1"
        )
    return spec


# --------------------------------------------------------------------------- the prepared dataset


@dataclasses.dataclass
class Dataset:
    name: str
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def sha256(self) -> str:
        return self.manifest["sha256"]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def class_names(self) -> list[str]:
        return self.manifest.get("class_names", [])

    def xy(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        return self.arrays[f"x_{split}"], self.arrays[f"y_{split}"]

    @property
    def path(self) -> Path:
        return processed_dir(self.name) / self.manifest["arrays"]


def processed_dir(name: str) -> Path:
    return project_root() / "data" / "processed" / name


def content_hash(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and bytes: independent of the file format's metadata."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- sources → raw data


def _digits_raw():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[..., np.newaxis]  # 0..16 → [0, 1]
    return x, bunch.target.astype(np.int64), [str(c) for c in bunch.target_names]


def _resolve(path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


def _hash_files(files: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(root)).encode())
        digest.update(f.read_bytes())
    return digest.hexdigest()


def _scan_image_folder(spec: ImageFolderSource, name: str) -> tuple[Path, list[tuple[Path, list[Path]]]]:
    root = _resolve(spec.path)
    if not root.is_dir():
        raise UserError(f"data.{name}.path: image folder '{spec.path}' does not exist ({root})")
    classes = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            raise UserError(f"{entry}: stray file; expected only one sub-folder per class in {root}")
        files = sorted(f for f in entry.iterdir() if not f.name.startswith("."))
        if not files:
            raise UserError(f"{entry}: class folder '{entry.name}' has no images")
        classes.append((entry, files))
    if len(classes) < 2:
        raise UserError(
            f"{root}: found {len(classes)} class folder(s); need at least 2 (one sub-folder per class)"
        )
    return root, classes


def read_image(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """One image file as float32 in [0, 1], shaped (height, width, channels); channels 1 or 3."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()  # decode now, so truncated files fail here
            img = img.convert("L" if shape[2] == 1 else "RGB")
            img = img.resize((shape[1], shape[0]), Image.Resampling.BILINEAR)
            pixels = np.asarray(img, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        reason = "not an image" if isinstance(exc, UnidentifiedImageError) else f"corrupt image ({exc})"
        raise UserError(f"{path}: {reason}") from None
    return pixels[..., np.newaxis] if pixels.ndim == 2 else pixels


def _image_folder_raw(spec: ImageFolderSource, name: str):
    _, classes = _scan_image_folder(spec, name)
    xs, ys = [], []
    for label, (_, files) in enumerate(classes):
        for f in files:
            xs.append(read_image(f, (*spec.image_size, 1 if spec.color_mode == "grayscale" else 3)))
            ys.append(label)
    return np.stack(xs), np.asarray(ys, dtype=np.int64), [folder.name for folder, _ in classes]


def _read_csv(path: Path):
    import pandas as pd

    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise UserError(f"{path}: CSV file does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None


def _numeric_column(frame, column: str, path: Path, allow_missing: bool):
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


def _csv_table_raw(spec: CsvTableSource):
    path = _resolve(spec.path)
    frame = _read_csv(path)
    if spec.target not in frame.columns:
        raise UserError(
            f"{path}: target column '{spec.target}' not found (columns: {', '.join(map(str, frame.columns))})"
        )
    features = [c for c in frame.columns if c != spec.target]
    if not features or len(frame) == 0:
        raise UserError(f"{path}: needs at least one feature column and one row")
    x = np.stack([_numeric_column(frame, c, path, allow_missing=False) for c in features], axis=1)
    labels = frame[spec.target].astype(str)
    class_names = sorted(labels.unique())
    y = labels.map({c: i for i, c in enumerate(class_names)}).to_numpy(dtype=np.int64)
    return x.astype(np.float32), y, class_names, features


def _series_frame(dates, values, where: str, fill: str):
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
    series = series.ffill() if fill == "ffill" else series.interpolate(method=fill)
    return series.bfill()  # a leading gap takes the first observed value


def _co2_raw(spec: Co2Source):
    import statsmodels.api as sm

    frame = sm.datasets.co2.load_pandas().data  # weekly, 1958-2001, with gaps
    return _series_frame(frame.index, frame["co2"].to_numpy(), "statsmodels co2", spec.fill), int(
        frame["co2"].isna().sum()
    )


def _csv_series_raw(spec: CsvSeriesSource):
    import pandas as pd

    path = _resolve(spec.path)
    frame = _read_csv(path)
    for column in (spec.date_column, spec.value_column):
        if column not in frame.columns:
            raise UserError(
                f"{path}: column '{column}' not found (columns: {', '.join(map(str, frame.columns))})"
            )
    dates = pd.to_datetime(frame[spec.date_column], errors="coerce")
    if dates.isna().any():
        row = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise UserError(
            f"{path}: column '{spec.date_column}' line {row + 2} is not a date: "
            f"{frame[spec.date_column].iloc[row]!r}"
        )
    values = _numeric_column(frame, spec.value_column, path, allow_missing=True)
    gaps = int(np.isnan(values).sum())
    return _series_frame(dates, values, f"{path}: column '{spec.date_column}'", spec.fill), gaps


# --------------------------------------------------------------------------- splitting


def stratified_split(x, y, val_fraction: float, test_fraction: float, seed: int, name: str):
    """Train/val/test with the class proportions of y kept in each split, fixed by `seed`."""
    from sklearn.model_selection import train_test_split

    try:
        x_rest, x_test, y_rest, y_test = train_test_split(
            x, y, test_size=test_fraction, stratify=y, random_state=seed
        )
        if val_fraction > 0:
            x_train, x_val, y_train, y_val = train_test_split(
                x_rest,
                y_rest,
                test_size=val_fraction / (1 - test_fraction),
                stratify=y_rest,
                random_state=seed,
            )
        else:
            x_train, y_train, x_val, y_val = x_rest, y_rest, x_rest[:0], y_rest[:0]
    except ValueError as exc:
        raise UserError(f"dataset '{name}': cannot split stratified ({exc})") from None
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_val": x_val,
        "y_val": y_val,
        "x_test": x_test,
        "y_test": y_test,
    }


def chronological_split(series, val_fraction: float, test_fraction: float, name: str):
    """Oldest part → train, then val, newest → test: no future leaks into training."""
    n = len(series)
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    n_train = n - n_val - n_test
    if n_train < 2 or n_test < 1:
        raise UserError(f"dataset '{name}': series of {n} points is too short to split")
    dates = series.index.to_numpy().astype("datetime64[D]")
    values = series.to_numpy(dtype=np.float64)
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n)}
    arrays = {}
    for split, (a, b) in bounds.items():
        arrays[f"dates_{split}"], arrays[f"values_{split}"] = dates[a:b], values[a:b]
    return arrays


# --------------------------------------------------------------------------- the stage


def _fingerprint(name: str, spec) -> tuple[str, str]:
    """(cache key, source description), computed without decoding anything expensive."""
    if isinstance(spec, DigitsSource):
        import sklearn

        raw, detail = (
            f"sklearn-{sklearn.__version__}",
            f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__})",
        )
    elif isinstance(spec, Co2Source):
        import statsmodels

        raw, detail = (
            f"statsmodels-{statsmodels.__version__}",
            f"statsmodels.datasets.co2 (statsmodels {statsmodels.__version__})",
        )
    elif isinstance(spec, ImageFolderSource):
        root, classes = _scan_image_folder(spec, name)
        raw, detail = _hash_files([f for _, files in classes for f in files], root), str(root)
    else:
        path = _resolve(spec.path)
        if not path.is_file():
            raise UserError(f"data.{name}.path: CSV file '{spec.path}' does not exist ({path})")
        raw, detail = hashlib.sha256(path.read_bytes()).hexdigest(), str(path)
    payload = json.dumps([PREP_VERSION, dataclasses.asdict(spec), raw], sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest(), detail


def _build(name: str, spec) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    info: dict[str, Any] = {}
    if isinstance(spec, (DigitsSource, ImageFolderSource, CsvTableSource)):
        if isinstance(spec, DigitsSource):
            x, y, class_names = _digits_raw()
            info["kind"] = "images"
        elif isinstance(spec, ImageFolderSource):
            x, y, class_names = _image_folder_raw(spec, name)
            info["kind"] = "images"
        else:
            x, y, class_names, features = _csv_table_raw(spec)
            info.update(kind="table", feature_names=features)
        arrays = stratified_split(x, y, spec.val_fraction, spec.test_fraction, spec.seed, name)
        info["class_names"] = class_names
        info["split_seed"] = spec.seed
        if info["kind"] == "images":
            info["value_range"] = [0.0, 1.0]
    else:
        series, gaps = _co2_raw(spec) if isinstance(spec, Co2Source) else _csv_series_raw(spec)
        arrays = chronological_split(series, spec.val_fraction, spec.test_fraction, name)
        info.update(kind="series", filled_gaps=gaps, fill=spec.fill, split="chronological", split_seed=None)
        info["date_range"] = {
            s: [str(arrays[f"dates_{s}"][0]), str(arrays[f"dates_{s}"][-1])]
            if len(arrays[f"dates_{s}"])
            else []
            for s in SPLITS
        }
    return arrays, info


def prepare(
    name: str, params: dict[str, Any] | None = None, force: bool = False
) -> tuple[dict[str, Any], bool]:
    """Prepare one dataset; returns (manifest, whether anything was written)."""
    params = params or load_params()
    if name not in params["data"]:
        raise UserError(
            f"unknown dataset '{name}' in {PARAMS_FILE}{suggest(name, params['data'])}; "
            f"known: {', '.join(params['data'])}"
        )
    spec = parse_source(name, params["data"][name])
    cache_key, detail = _fingerprint(name, spec)
    out = processed_dir(name)
    current = read_manifest(name)
    if not force and current and current.get("cache_key") == cache_key and (out / current["arrays"]).exists():
        return current, False
    arrays, info = _build(name, spec)  # validates everything before a byte is written
    batches = (current or {}).get("batches", [])
    if batches:  # batches accepted by `retrain` stay part of the dataset
        arrays = merge_batches(arrays, [load_batch(name, b["id"]) for b in batches])
    manifest = make_manifest(
        name, spec.source, detail, dataclasses.asdict(spec), info, arrays, cache_key, batches
    )
    write(name, arrays, manifest)
    return manifest, True


def make_manifest(name, source, detail, spec_params, info, arrays, cache_key, batches) -> dict[str, Any]:
    sha = content_hash(arrays)
    manifest = {
        "dataset": name,
        "source": source,
        "source_detail": detail,
        "params": spec_params,
        **info,
        "shapes": {k: list(v.shape) for k, v in arrays.items()},
        "sha256": sha,
        "arrays": f"arrays-{sha[:16]}.npz",
        "cache_key": cache_key,
        "prep_version": PREP_VERSION,
        "batches": batches,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if "class_names" in info:
        manifest["class_counts"] = class_counts(arrays, info["class_names"])
    return manifest


def class_counts(arrays, class_names) -> dict[str, dict[str, int]]:
    counts = {}
    for split in SPLITS:
        labels, n = np.unique(arrays[f"y_{split}"], return_counts=True)
        counts[split] = {class_names[c]: int(k) for c, k in zip(labels, n, strict=True)}
    return counts


# --------------------------------------------------------------------------- new-data batches


def batch_path(name: str, batch_id: str) -> Path:
    return processed_dir(name) / "batches" / f"{batch_id}.npz"


def load_batch(name: str, batch_id: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(batch_path(name, batch_id), allow_pickle=False) as npz:
        return npz["x"], npz["y"]


def series_segments(arrays: dict[str, np.ndarray]) -> list[str]:
    """A series' segments in time order: train, val, test, then `recent` once retrain added weeks."""
    return [s for s in ("train", "val", "test", "recent") if f"values_{s}" in arrays]


def merge_batches(arrays: dict[str, np.ndarray], batches) -> dict[str, np.ndarray]:
    """New labelled examples join the training split only: val and test (the holdout) never change.

    A series' new weeks come after its test period, so they form a fourth segment, `recent`, that
    trains the window models (targets there, inputs may reach back into the test period).
    """
    merged = dict(arrays)
    if "values_train" in merged:
        for dates, values in batches:
            merged["dates_recent"] = np.concatenate([merged.get("dates_recent", dates[:0]), dates])
            merged["values_recent"] = np.concatenate([merged.get("values_recent", values[:0]), values])
        return merged
    for x, y in batches:
        merged["x_train"] = np.concatenate([merged["x_train"], x.astype(merged["x_train"].dtype)])
        merged["y_train"] = np.concatenate([merged["y_train"], y.astype(merged["y_train"].dtype)])
    return merged


def new_version(dataset: Dataset, batches: dict[str, tuple[np.ndarray, np.ndarray]]):
    """The dataset with `batches` ({id: (x, y)}) merged: (arrays, manifest), nothing written yet."""
    arrays = merge_batches(dataset.arrays, batches.values())
    m = dataset.manifest
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    recorded = [
        *m.get("batches", []),
        *({"id": k, "examples": len(v[1]), "ingested": now} for k, v in batches.items()),
    ]
    kept = (
        "kind",
        "class_names",
        "split",
        "split_seed",
        "value_range",
        "feature_names",
        "fill",
        "filled_gaps",
    )
    info = {k: m[k] for k in kept if k in m}
    manifest = make_manifest(
        dataset.name, m["source"], m["source_detail"], m["params"], info, arrays, m["cache_key"], recorded
    )
    return arrays, manifest


def commit_version(name: str, arrays, manifest, batches: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write the batches, then the arrays, then the manifest (the single atomic commit point)."""
    for batch_id, (x, y) in batches.items():
        buffer = io.BytesIO()
        np.savez(buffer, x=x, y=y)
        with atomic.atomic_open(batch_path(name, batch_id)) as handle:
            handle.write(buffer.getvalue())
    write(name, arrays, manifest)


def write(name: str, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> None:
    """Arrays first, manifest last (both atomic), then drop versions nothing points to."""
    out = processed_dir(name)
    target = out / manifest["arrays"]
    if not target.exists():
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        with atomic.atomic_open(target) as handle:
            handle.write(buffer.getvalue())
    atomic.write_text(out / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")
    for old in out.glob("arrays-*.npz"):
        if old.name != manifest["arrays"]:
            old.unlink(missing_ok=True)


def read_manifest(name: str) -> dict[str, Any] | None:
    path = processed_dir(name) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def load(name: str, params: dict[str, Any] | None = None) -> Dataset:
    """Prepare when needed (a no-op when up to date), then load and verify the arrays."""
    manifest, _ = prepare(name, params)
    with np.load(processed_dir(name) / manifest["arrays"], allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if content_hash(arrays) != manifest["sha256"]:
        raise UserError(
            f"{processed_dir(name)}: arrays do not match the manifest's sha256; run `make data` again"
        )
    return Dataset(name, manifest, arrays)


def main(names: list[str], force: bool = False) -> int:
    params = load_params()
    for name in names or dataset_names(params):
        manifest, written = prepare(name, params, force=force)
        state = "prepared" if written else "up to date"
        shapes = ", ".join(
            f"{k}{tuple(v)}" for k, v in manifest["shapes"].items() if k.startswith(("x_", "values_"))
        )
        print(f"data {name}: {state} · sha256 {manifest['sha256'][:12]} · {shapes}")
    return 0
