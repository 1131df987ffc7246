"""Data sources: one class per `source:` value of a `data:` entry in params.yaml.

A source's dataclass fields are the entry's schema (checked strictly, with did-you-mean errors).
The class says how to read the raw data, how to fingerprint it without decoding it (the cache key),
which files make must watch, and how to read a retrain batch of new data for it. Add a source:
subclass `ImageSource`, `TableSource` or `SeriesSource` and list it in SOURCES.

  sklearn-digits   scikit-learn's bundled 8x8 digit images (offline)
  statsmodels-co2  statsmodels' bundled weekly Mauna Loa CO2 series (offline)
  image-folder     your images, one sub-folder per class, any format Pillow reads
  csv-table        your CSV of numeric feature columns and a `target` label column
  csv-series       your CSV of a date column and a value column
  function         a 1-D function sampled with noise, generated from a seed (regression, offline)
  npz              a file with x_train, y_train, x_test, y_test (the layout of keras' mnist.npz)
  keras-dataset    mnist, fashion_mnist or cifar10 through keras.datasets (downloaded once)
  python-reference the Python reference shipped with Python, as text (data/corpus.py)
  text-file        your text file (data/corpus.py)

A source's `build` returns one typed value, `Prepared(arrays, facts)` (manifest.py): the split
arrays (`x_<split>`, `y_<split>`; a series' `dates_<split>`, `values_<split>`; extras such as a
function's curve) and the `Facts` the manifest records. Image sources store uint8 pixels (value x
`divisor` of the float the models see): they return them as uint8 arrays (small, in memory: the
bundled digits, an npz file) or, for a folder, as split files written to the `staging` folder while
decoding (folder.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from pipeline.config import PARAMS_FILE, parse_section, suggest
from pipeline.data import folder, readers, series, split_files
from pipeline.data.manifest import PREP_VERSION, Facts, Prepared
from pipeline.data.splits import SPLITS, chronological_split, hashed_split, stratified_split
from pipeline.errors import UserError

Fill = Literal["time", "linear", "ffill"]


@dataclasses.dataclass(frozen=True)
class Source:
    """Base of every source. Subclasses are frozen dataclasses whose fields are the entry's keys."""

    KIND: ClassVar[str]  # images | table | series: what the prepared arrays hold
    BATCHES: ClassVar[bool] = False  # whether `retrain` can merge batches of new data into it

    def raw_key(self, name: str) -> tuple[str, str]:
        """(a key that changes when the raw data does, a description of where it comes from)."""
        raise NotImplementedError

    def watched(self) -> list[str] | None:
        """Files make must watch besides params.yaml; None: a folder, checked on every run."""
        return []

    def build(self, name: str, staging: Path | None = None) -> Prepared:
        """The split arrays and the facts about them, validated; nothing written but (image
        sources) files in `staging`, a new folder beside the dataset's."""
        raise NotImplementedError

    def read_batch(
        self, folder: Path, dataset, accepted: list, max_pixels: int = readers.MAX_PIXELS
    ) -> tuple[np.ndarray, np.ndarray]:
        """A retrain batch as (x, y) ready to merge; `accepted`: the batches taken earlier this cycle;
        `max_pixels`: the cap on an image's size (retrain.max_image_pixels)."""
        raise UserError(f"{readers.shown(folder)}: batches for a {self.KIND} dataset are not supported")

    def fingerprint(self, name: str) -> tuple[str, str]:
        """(cache key, source description), computed without decoding anything expensive."""
        raw, detail = self.raw_key(name)
        payload = json.dumps([PREP_VERSION, dataclasses.asdict(self), raw], sort_keys=True, default=list)
        return hashlib.sha256(payload.encode()).hexdigest(), detail


def package_key(package: str, distribution: str, what: str) -> tuple[str, str]:
    """A bundled dataset: it changes only with the package's version (read from its installed
    metadata, without importing the package: importing scikit-learn is slow)."""
    from importlib.metadata import version as installed

    version = installed(distribution)
    return f"{package}-{version}", f"{what} ({distribution} {version})"


class CsvFile:
    """A source read from one CSV file (`path`): keyed by the file's sha256, watched by make."""

    path: str

    def raw_key(self, name: str) -> tuple[str, str]:
        file = readers.resolve(self.path)
        if not file.is_file():
            raise UserError(f"data.{name}.path: CSV file '{self.path}' does not exist ({file})")
        return hashlib.sha256(file.read_bytes()).hexdigest(), str(file)

    def watched(self) -> list[str]:
        return [self.path]

    def frame(self, *columns: str):
        """(the CSV's path, its frame), the named columns checked to be there."""
        path = readers.resolve(self.path)
        frame = readers.read_csv(path)
        for column in columns:
            if column not in frame.columns:
                found = ", ".join(map(str, frame.columns))
                raise UserError(f"{path}: column '{column}' not found (columns: {found})")
        return path, frame


# --------------------------------------------------------------------------- labelled examples


@dataclasses.dataclass(frozen=True)
class LabelledSource(Source):
    """Examples with class labels, split stratified by `seed`."""

    def read(self, name: str) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
        """(x, y, class names, the source's other Facts fields, e.g. an image's divisor)."""
        raise NotImplementedError

    def build(self, name: str, staging: Path | None = None):
        x, y, class_names, facts = self.read(name)
        arrays = stratified_split(x, y, self.val_fraction, self.test_fraction, self.seed, name)
        return Prepared(arrays, Facts(kind=self.KIND, class_names=class_names, split_seed=self.seed, **facts))


@dataclasses.dataclass(frozen=True)
class ImageSource(LabelledSource):
    """Images stored as uint8 shaped (N, H, W, C) with the `divisor` that maps them to the float32
    values in [0, 1] the models see; a retrain batch is one folder per class."""

    KIND: ClassVar[str] = "images"
    BATCHES: ClassVar[bool] = True

    def read_batch(
        self, folder: Path, dataset, accepted: list, max_pixels: int = readers.MAX_PIXELS
    ) -> tuple[np.ndarray, np.ndarray]:
        """One sub-folder per class (names as in the dataset), images in any format Pillow reads."""
        shape = dataset.example_shape  # batches are read exactly like the dataset they join
        classes = {name: i for i, name in enumerate(dataset.class_names)}
        xs, ys = [], []
        for entry, files in readers.class_folders(folder):
            if entry.name not in classes:
                known = ", ".join(classes)
                name = readers.shown(entry.name)
                raise UserError(
                    f"{readers.shown(entry)}: unknown class '{name}'{suggest(name, classes)} (known: {known})"
                )
            xs += [readers.read_image(f, shape, max_pixels) for f in files]
            ys += [classes[entry.name]] * len(files)
        if not xs:
            raise UserError(f"{readers.shown(folder)}: empty batch")
        return np.stack(xs).astype(np.float32), np.asarray(ys, dtype=dataset.arrays["y_train"].dtype)


@dataclasses.dataclass(frozen=True)
class DigitsSource(ImageSource):
    source: Literal["sklearn-digits"]
    val_fraction: float
    test_fraction: float
    seed: int

    def raw_key(self, name):
        return package_key("sklearn", "scikit-learn", "sklearn.datasets.load_digits")

    def read(self, name):
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = bunch.images.astype(np.uint8)[..., np.newaxis]  # 0..16, as the models' [0, 1] x 16
        return x, bunch.target.astype(np.int64), [str(c) for c in bunch.target_names], dict(divisor=16)


@dataclasses.dataclass(frozen=True)
class ImageFolderSource(ImageSource):
    """Your images, one sub-folder per class. Each image's split is drawn from a hash of its bytes
    (and the seed), so adding images never moves an existing one between train, val and test, and
    identical copies always land in the same split."""

    source: Literal["image-folder"]
    path: str  # one sub-folder per class
    image_size: tuple[int, int]  # (height, width) every image is resized to
    color_mode: Literal["grayscale", "rgb"]
    val_fraction: float
    test_fraction: float
    seed: int
    max_image_pixels: int = readers.MAX_PIXELS  # refuse larger images (width x height, from the header)
    max_file_bytes: int = folder.MAX_FILE_BYTES  # refuse larger files (read once, whole)
    max_unreadable: int = 0  # skip up to this many unreadable images (listed in the manifest)

    def scan(self, name: str) -> tuple[Path, list[tuple[Path, list[Path]]]]:
        root = readers.resolve(self.path)
        if not root.is_dir():
            raise UserError(f"data.{name}.path: image folder '{self.path}' does not exist ({root})")
        classes = readers.class_folders(root)
        if len(classes) < 2:
            raise UserError(
                f"{root}: found {len(classes)} class folder(s); need at least 2 (one sub-folder per class)"
            )
        return root, classes

    def raw_key(self, name):
        """The files' names, sizes and modification times (nothing is read: the contents are
        hashed once, when the folder is prepared)."""
        root, classes = self.scan(name)
        digest = hashlib.sha256()
        for f in (f for _, files in classes for f in files):
            info = f.stat()
            digest.update(os.fsencode(f.relative_to(root)) + f"|{info.st_size}|{info.st_mtime_ns}\0".encode())
        return digest.hexdigest(), str(root)

    def watched(self) -> None:
        return None  # make cannot list a folder's files ahead of time: a (cheap) stat check each run

    def build(self, name: str, staging: Path | None = None):
        root, classes = self.scan(name)
        shape = (*self.image_size, 1 if self.color_mode == "grayscale" else 3)
        previous, reuse = folder.reusable(name, shape)
        staging.mkdir(parents=True, exist_ok=True)
        decoder = folder.Decoder(shape, self.max_image_pixels, self.max_file_bytes, frozenset(reuse), staging)
        total = sum(len(files) for _, files in classes)
        with readers.progress(f"data {name}", total) as advance:
            decoded = folder.decode_folder(classes, decoder, reuse, self.max_unreadable, root, advance)
        y = np.asarray(decoded.labels, dtype=np.int64)
        parts = hashed_split(y, decoded.keys, self.val_fraction, self.test_fraction, self.seed, name)
        record = int(np.prod(shape))
        spools = [staging / f for f in decoded.spools]
        sources = [*previous, *(split_files.open_rows(f, shape, f.stat().st_size // record) for f in spools)]
        arrays, digests = {}, {}
        for split, index in parts.items():
            path = staging / split_files.split_file(f"x_{split}")
            with open(path, "wb") as out:
                for i in index:
                    out.write(sources[decoded.source[i]][decoded.rows[i]].tobytes())
            arrays[f"x_{split}"] = split_files.open_rows(path, shape, len(index))
            arrays[f"y_{split}"] = y[index]
            digests[f"x_{split}"] = np.asarray([decoded.digests[i] for i in index], dtype="S32")
        for f in spools:
            f.unlink()
        facts = Facts(
            kind=self.KIND,
            class_names=[entry.name for entry, _ in classes],
            split="content-hash",
            split_seed=self.seed,
            divisor=255,
            unreadable=decoded.unreadable,
            native_size=decoded.native_size() or None,
        )
        return Prepared(arrays, facts, digests)


# the classes of keras' datasets, by label (mnist's are its digits)
KERAS_CLASSES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": [
        "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot",
    ],
    "cifar10": [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ],
}  # fmt: skip
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclasses.dataclass(frozen=True)
class TrainTestImages(ImageSource):
    """uint8 images that come split in train and test (keras' layout): the test split is the
    file's own, validation is drawn from the training part (stratified, by `seed`). The arrays
    are read whole (uint8: MNIST is 55 MB, CIFAR-10 184 MB)."""

    def parts(self, name: str) -> tuple[dict[str, np.ndarray], str]:
        """({x_train, y_train, x_test, y_test}, where they come from)."""
        raise NotImplementedError

    def class_names(self, labels: np.ndarray) -> list[str]:
        return [str(label) for label in labels]

    def build(self, name: str, staging: Path | None = None):
        parts, where = self.parts(name)
        x_train, y_train = checked_images(parts, "train", where)
        x_test, y_test = checked_images(parts, "test", where)
        if x_train.shape[1:] != x_test.shape[1:]:
            raise UserError(
                f"{where}: x_train images are {x_train.shape[1:]} but x_test's {x_test.shape[1:]}"
            )
        labels = np.unique(np.concatenate([y_train, y_test]))
        y_train, y_test = np.searchsorted(labels, y_train), np.searchsorted(labels, y_test)
        split = stratified_split(x_train, y_train, self.val_fraction, 0.0, self.seed, name, holdout=False)
        arrays = {**split, "x_test": x_test, "y_test": y_test.astype(np.int64)}
        facts = Facts(
            kind=self.KIND,
            class_names=self.class_names(labels),
            split="the file's test split; validation drawn from its training split",
            split_seed=self.seed,
            divisor=255,
        )
        return Prepared(arrays, facts)


def checked_images(parts: dict[str, np.ndarray], split: str, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(x as uint8 (N, H, W, C), y as int64 (N,)) of one split, or one line saying what is wrong."""
    x, y = parts[f"x_{split}"], parts[f"y_{split}"]
    if x.dtype != np.uint8 or x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[-1] not in (1, 3)):
        raise UserError(
            f"{where}: x_{split} is {x.dtype} shaped {x.shape}; "
            "expected uint8 images (N, H, W) or (N, H, W, 1 or 3)"
        )
    if y.dtype.kind not in "iu" or not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)) or len(y) != len(x):
        raise UserError(
            f"{where}: y_{split} is {y.dtype} shaped {y.shape}; "
            f"expected {len(x)} integer labels, (N,) or (N, 1)"
        )
    return (x[..., np.newaxis] if x.ndim == 3 else x), y.reshape(-1).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class NpzSource(TrainTestImages):
    """A .npz file in the layout of keras' mnist.npz: x_train, y_train, x_test, y_test."""

    source: Literal["npz"]
    path: str
    val_fraction: float
    seed: int

    def raw_key(self, name):
        file = readers.resolve(self.path)
        if not file.is_file():
            raise UserError(f"data.{name}.path: npz file '{self.path}' does not exist ({file})")
        with readers.open_regular(file, follow_symlinks=True) as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest(), str(file)

    def watched(self) -> list[str]:
        return [self.path]

    def parts(self, name):
        file = readers.resolve(self.path)
        where = readers.shown(file)
        try:
            with np.load(file, allow_pickle=False) as npz:
                missing = [k for k in NPZ_KEYS if k not in npz.files]
                if missing:
                    raise UserError(f"{where}: missing {', '.join(missing)} (has: {', '.join(npz.files)})")
                return {k: npz[k] for k in NPZ_KEYS}, where
        except UserError:
            raise
        except Exception as exc:  # not a zip, a pickled object array, a truncated member, ...
            reason = (str(exc).splitlines() or [""])[0][:200]
            raise UserError(
                f"{where}: not a readable .npz of arrays ({type(exc).__name__}: {reason})"
            ) from None


def keras_load(dataset: str):
    """keras.datasets.<dataset>.load_data(): downloaded once into ~/.keras/datasets."""
    import keras

    return getattr(keras.datasets, dataset).load_data()


@dataclasses.dataclass(frozen=True)
class KerasDatasetSource(TrainTestImages):
    """MNIST, Fashion-MNIST or CIFAR-10 through keras.datasets (a download on first use)."""

    source: Literal["keras-dataset"]
    name: Literal["mnist", "fashion_mnist", "cifar10"]
    val_fraction: float
    seed: int

    def raw_key(self, name):
        key, detail = package_key("keras", "keras", f"keras.datasets.{self.name}")
        return f"{key}-{self.name}", detail

    def parts(self, name):
        where = f"keras.datasets.{self.name}"
        try:
            (x_train, y_train), (x_test, y_test) = keras_load(self.name)
        except Exception as exc:  # offline, a broken download, ...
            reason = (str(exc).splitlines() or [""])[0][:200]
            raise UserError(
                f"{where}: cannot load ({type(exc).__name__}: {reason}); offline, put the file in "
                "~/.keras/datasets or use `source: npz` with its path"
            ) from None
        return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}, where

    def class_names(self, labels):
        names = KERAS_CLASSES[self.name]
        return [names[label] if 0 <= label < len(names) else str(label) for label in labels]


@dataclasses.dataclass(frozen=True)
class TableSource(LabelledSource):
    KIND: ClassVar[str] = "table"


@dataclasses.dataclass(frozen=True)
class CsvTableSource(CsvFile, TableSource):
    source: Literal["csv-table"]
    path: str
    target: str  # label column; every other column is a numeric feature
    val_fraction: float
    test_fraction: float
    seed: int

    def read(self, name):
        path, frame = self.frame(self.target)
        features = [c for c in frame.columns if c != self.target]
        if not features or len(frame) == 0:
            raise UserError(f"{path}: needs at least one feature column and one row")
        x = np.stack([readers.numeric_column(frame, c, path, allow_missing=False) for c in features], axis=1)
        labels = frame[self.target].astype(str).str.strip()
        if (labels == "").any():
            line = readers.line_of(frame, int(np.flatnonzero((labels == "").to_numpy())[0]))
            raise UserError(f"{path}: column '{self.target}' line {line} has an empty label")
        class_names = sorted(labels.unique())
        y = labels.map({c: i for i, c in enumerate(class_names)}).to_numpy(dtype=np.int64)
        return x.astype(np.float32), y, class_names, {"feature_names": features}


# --------------------------------------------------------------------------- series


@dataclasses.dataclass(frozen=True)
class SeriesSource(Source):
    """A dated series, split chronologically; a retrain batch is CSV files of date,value rows."""

    KIND: ClassVar[str] = "series"
    BATCHES: ClassVar[bool] = True

    def read(self, name: str):
        """(a gap-filled pandas Series on a DatetimeIndex, the number of gaps filled)."""
        raise NotImplementedError

    def build(self, name: str, staging: Path | None = None):
        values, gaps = self.read(name)
        arrays = chronological_split(values, self.val_fraction, self.test_fraction, name)
        dates = {s: arrays[f"dates_{s}"] for s in SPLITS}
        first_last = {s: [str(d[0]), str(d[-1])] if len(d) else [] for s, d in dates.items()}
        facts = Facts(
            kind=self.KIND, split="chronological", fill=self.fill, filled_gaps=gaps, date_range=first_last
        )
        return Prepared(arrays, facts)

    def read_batch(self, folder: Path, dataset, accepted: list, max_pixels: int = readers.MAX_PIXELS):
        return series.read_batch(folder, dataset, accepted, self.fill)


@dataclasses.dataclass(frozen=True)
class Co2Source(SeriesSource):
    source: Literal["statsmodels-co2"]
    val_fraction: float
    test_fraction: float
    fill: Fill  # how gaps are filled

    def raw_key(self, name):
        return package_key("statsmodels", "statsmodels", "statsmodels.datasets.co2")

    def read(self, name):
        import statsmodels.api as sm

        frame = sm.datasets.co2.load_pandas().data  # weekly, 1958-2001, with gaps
        values = readers.series_frame(frame.index, frame["co2"].to_numpy(), "statsmodels co2", self.fill)
        return values, int(frame["co2"].isna().sum())


@dataclasses.dataclass(frozen=True)
class CsvSeriesSource(CsvFile, SeriesSource):
    source: Literal["csv-series"]
    path: str
    date_column: str
    value_column: str
    val_fraction: float
    test_fraction: float
    fill: Fill

    def read(self, name):
        path, frame = self.frame(self.date_column, self.value_column)
        dates = readers.date_column(frame, self.date_column, path)
        values = readers.numeric_column(frame, self.value_column, path, allow_missing=True)
        gaps = int(np.isnan(values).sum())
        where = f"{path}: column '{self.date_column}'"
        return readers.series_frame(dates, values, where, self.fill), gaps


# --------------------------------------------------------------------------- a generated function

# y = f(x) on [-1, 1]; the formulas are the documentation (docs/tasks-and-models.md)
FUNCTIONS = {
    # smooth, two frequencies: sin(2 pi x) + 0.5 sin(6 pi x)
    "sine-mix": lambda x: np.sin(2 * np.pi * x) + 0.5 * np.sin(6 * np.pi * x),
    # the triangle wave with 4 teeth (from -1 up to 1 and back, 4 times): the tent map composed
    # with itself, the textbook function a deep ReLU net builds with far fewer units than a wide one
    "triangle": lambda x: 4 * np.abs(2 * x + 2 - np.floor(2 * x + 2) - 0.5) - 1,
}
CURVE_POINTS = 401  # the noiseless function on an even grid, for the fitted-curve plot


@dataclasses.dataclass(frozen=True)
class FunctionSource(Source):
    """`samples` points x drawn uniformly from [-1, 1] with `seed`, y = f(x) + Gaussian noise of
    standard deviation `noise`; split at random (same seed). Also stores the noiseless function on
    an even grid (`curve_x`, `curve_y`) for plots. Nothing is read: it is generated offline."""

    KIND: ClassVar[str] = "regression"
    source: Literal["function"]
    function: Literal["sine-mix", "triangle"]
    samples: int
    noise: float  # standard deviation of the noise on y (the best reachable test RMSE)
    val_fraction: float
    test_fraction: float
    seed: int

    def raw_key(self, name):
        # generated, not read: the params (in the fingerprint) and the formula's version say it all
        return "function-v1", f"f = {self.function} on [-1, 1], {self.samples} samples, noise {self.noise}"

    def build(self, name: str, staging: Path | None = None):
        if self.samples < 10 or self.noise < 0:
            raise UserError(f"data.{name}: samples must be at least 10 and noise non-negative")
        f = FUNCTIONS[self.function]
        rng = np.random.default_rng(self.seed)
        x = rng.uniform(-1.0, 1.0, self.samples)
        y = f(x) + rng.normal(0.0, self.noise, self.samples)
        n_test = max(1, round(self.samples * self.test_fraction))
        n_val = round(self.samples * self.val_fraction)
        order = rng.permutation(self.samples)
        parts = {
            "test": order[:n_test],
            "val": order[n_test : n_test + n_val],
            "train": order[n_test + n_val :],
        }
        arrays = {}
        for split, index in parts.items():
            arrays[f"x_{split}"] = x[index, np.newaxis].astype(np.float32)  # (n, 1): one feature
            arrays[f"y_{split}"] = y[index].astype(np.float32)
        grid = np.linspace(-1.0, 1.0, CURVE_POINTS)
        arrays["curve_x"], arrays["curve_y"] = grid.astype(np.float32), f(grid).astype(np.float32)
        facts = Facts(kind=self.KIND, function=self.function, split="random", split_seed=self.seed)
        return Prepared(arrays, facts)


SOURCES: dict[str, type[Source]] = {
    "sklearn-digits": DigitsSource,
    "image-folder": ImageFolderSource,
    "csv-table": CsvTableSource,
    "statsmodels-co2": Co2Source,
    "csv-series": CsvSeriesSource,
    "function": FunctionSource,
    "npz": NpzSource,
    "keras-dataset": KerasDatasetSource,
}

# text sources (pipeline/data/corpus.py, which subclasses Source above)
from pipeline.data.corpus import PythonReferenceSource, TextFileSource  # noqa: E402

SOURCES |= {"python-reference": PythonReferenceSource, "text-file": TextFileSource}


def parse_source(name: str, entry: Any) -> Source:
    """The `data.<name>:` entry, checked against its source's schema."""
    where = f"data.{name}"
    if not isinstance(entry, dict) or "source" not in entry:
        raise UserError(f"{PARAMS_FILE}: {where} needs a 'source' ({', '.join(SOURCES)})")
    schema = SOURCES.get(entry["source"])
    if schema is None:
        raise UserError(
            f"{PARAMS_FILE}: {where}.source '{entry['source']}' is unknown"
            f"{suggest(entry['source'], SOURCES)}; use one of {', '.join(SOURCES)}"
        )
    spec = parse_section(schema, entry, where)
    test = getattr(spec, "test_fraction", None)  # None: the source brings its own test split
    if not (0 <= spec.val_fraction < 1 and (test is None or (0 < test < 1 and spec.val_fraction + test < 1))):
        raise UserError(
            f"{PARAMS_FILE}: {where}: val_fraction and test_fraction must be in [0, 1) and sum below 1"
        )
    return spec
