"""A prepared dataset and its versions: the arrays, the manifest that names them (with their
sha256), the batches `retrain` merged in, and the atomic commit of a new version.

Images are stored as uint8 split files (split_files.py); the other arrays in `arrays-<sha16>.npz`. The
manifest is replaced last and atomically, so an interrupted write leaves the previous version.
A merge appends a batch's images to the training split (append_images: the other files are hard
links, nothing is rewritten); the new version's sha256 is the same content hash as a fresh prep's,
read from disk a piece at a time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import atomic
from pipeline.config import project_root
from pipeline.data import split_files, streams
from pipeline.data.splits import SPLITS
from pipeline.faults import fault

# Bump when the processing changes what a source turns into: it invalidates caches.
PREP_VERSION = 2  # 2: images stored as uint8 split files


@dataclasses.dataclass
class Dataset:
    """A prepared dataset: its manifest and its arrays as stored (images uint8, memory-mapped).

    Models read a split with examples(split): images as streams.Rows (float values read on use, a
    tf.data stream for training), any other data as its arrays.
        divisor / scale           float value = uint8 / divisor = uint8 * scale
        count(split), image_shape
    """

    name: str
    manifest: dict[str, Any]
    arrays: Mapping[str, np.ndarray]

    @property
    def divisor(self) -> float:
        """Stored images are uint8 = float value x divisor (255; 16 for sklearn's digits)."""
        return float(self.manifest["divisor"])

    @property
    def scale(self) -> float:
        """1 / divisor, e.g. for keras.layers.Rescaling (x / divisor is the exact float32 value)."""
        return 1.0 / self.divisor

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.arrays["x_train"].shape[1:])

    def count(self, split: str) -> int:
        return len(self.arrays[f"y_{split}"])

    def examples(self, split: str):
        """(x, y) of a split as the models read it: images as streams.Rows (float values read on
        use, a tf.data stream for training), other data as arrays."""
        if "divisor" not in self.manifest:
            return self.arrays[f"x_{split}"], self.arrays[f"y_{split}"]
        x = streams.Rows(f"{self.name}/{split}", self.sha256, self.arrays[f"x_{split}"], self.divisor)
        return x, self.arrays[f"y_{split}"]

    def to_stored(self, x: np.ndarray) -> np.ndarray:
        """Float images in [0, 1] (a retrain batch) as this dataset stores them."""
        return split_files.to_stored(x, self.divisor)

    @property
    def sha256(self) -> str:
        return self.manifest["sha256"]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def class_names(self) -> list[str]:
        return self.manifest.get("class_names", [])

    @property
    def merged_rows(self) -> int:
        """Rows at the end of the training split that retrain merged in from batches (`train.limit`
        never drops them: a batch is trained on from the cycle that ingests it)."""
        if self.kind == "series":
            return 0  # a series' batches are their own segment, `recent`
        return sum(int(b.get("examples", 0)) for b in self.manifest.get("batches", []))

    @property
    def path(self) -> Path:
        return processed_dir(self.name) / self.manifest["arrays"]


def processed_dir(name: str) -> Path:
    return project_root() / "data" / "processed" / name


def content_hash(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over names, dtypes, shapes and bytes: independent of the file format's metadata
    (read in pieces: a memory-mapped split is never loaded whole)."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        array = arrays[key]
        digest.update(f"{key}|{array.dtype.str}|{tuple(array.shape)}|".encode())
        for part in split_files.chunks(array):
            digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()


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
        **({"images": {"folder": f"images-{sha[:16]}"}} if "divisor" in info else {}),
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


@dataclasses.dataclass
class Batch:
    """A batch of new data read for merging: where it came from, its identity and its arrays."""

    id: str  # its id in the dataset (the folder name, or <name>-<sha8> when the name was taken)
    name: str  # the folder name it arrived under
    sha256: str  # of its files (relative paths and bytes): its identity
    x: np.ndarray  # images, or a series' dates
    y: np.ndarray  # labels, or a series' values (NaN on the steps it skipped)

    @property
    def examples(self) -> int:
        return int(np.isfinite(self.y).sum()) if self.y.dtype.kind == "f" else len(self.y)

    def entry(self, seq: int, ingested: str) -> dict[str, Any]:
        """What the manifest (and the batch's sidecar file) records of it."""
        identity = {"id": self.id, "name": self.name, "sha256": self.sha256}
        return {**identity, "examples": self.examples, "seq": seq, "ingested": ingested}


def batch_path(name: str, batch_id: str) -> Path:
    return processed_dir(name) / "batches" / f"{batch_id}.npz"


def load_batch(name: str, batch_id: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(batch_path(name, batch_id), allow_pickle=False) as npz:
        return npz["x"], npz["y"]


def batch_entries(name: str) -> list[dict[str, Any]]:
    """The sidecar records of every batch ever committed to the dataset (a manifest's backup)."""
    entries = []
    for path in sorted((processed_dir(name) / "batches").glob("*.json")):
        try:
            entries.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return entries


def series_segments(arrays: dict[str, np.ndarray]) -> list[str]:
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

    from pipeline.data.readers import fill_gaps

    merged = dict(arrays)
    dates = merged.get("dates_recent", np.zeros(0, "datetime64[D]"))
    observed = merged.get("observed_recent", np.ones(len(dates), bool))
    raw = pd.Series(np.where(observed, merged.get("values_recent", np.zeros(0)), np.nan), index=dates)
    for batch_dates, values in batches:
        batch = pd.Series(np.asarray(values, np.float64), index=np.asarray(batch_dates, "datetime64[D]"))
        raw = batch.combine_first(raw) if len(raw) else batch  # the batch's values win
    raw = raw.sort_index()
    anchor = pd.Series([merged["values_test"][-1]], index=merged["dates_test"][-1:])
    filled = fill_gaps(pd.concat([anchor, raw]), fill).to_numpy(np.float64)[1:]
    merged["dates_recent"] = raw.index.to_numpy().astype("datetime64[D]")
    merged["values_recent"] = filled
    merged["observed_recent"] = raw.notna().to_numpy()
    return merged


def merge_batches(arrays: dict[str, np.ndarray], batches, fill: str = "time") -> dict[str, np.ndarray]:
    """New labelled examples join the training split only: val and test (the holdout) never change.

    A series' new weeks come after its test period, so they form a fourth segment, `recent`, that
    trains the window models (targets there, inputs may reach back into the test period).
    `batches`: (x, y) pairs in the order they were ingested.
    """
    batches = list(batches)
    if "values_train" in arrays:
        return merge_recent(arrays, batches, fill) if batches else dict(arrays)
    merged = dict(arrays)
    for x, y in batches:
        merged["x_train"] = np.concatenate([merged["x_train"], x.astype(merged["x_train"].dtype)])
        merged["y_train"] = np.concatenate([merged["y_train"], y.astype(merged["y_train"].dtype)])
    return merged


# what a new version keeps of the manifest it extends (the rest is recomputed)
KEPT = (
    "kind",
    "class_names",
    "split",
    "split_seed",
    "value_range",
    "divisor",
    "feature_names",
    "fill",
    "filled_gaps",
    "unreadable",
    "native_size",
)


def new_version(dataset: Dataset, batches: list[Batch]):
    """The dataset with `batches` merged: (arrays, manifest), not committed. An image dataset's new
    folder is staged (append_images); the other arrays are small and merged in memory."""
    m = dataset.manifest
    stored = [(dataset.to_stored(b.x) if "divisor" in m else b.x, b.y) for b in batches]
    if m.get("images"):
        staging = staging_folder(processed_dir(dataset.name))
        try:
            return append_images(dataset, stored, batches, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    arrays = merge_batches(dataset.arrays, stored, m.get("fill", "time"))
    return arrays, manifest_after(dataset, arrays, batches)


def manifest_after(dataset: Dataset, arrays, batches: list[Batch]) -> dict[str, Any]:
    """The manifest of `dataset` with `batches` merged into `arrays` (its sha256 read in pieces)."""
    m = dataset.manifest
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    before = m.get("batches", [])
    recorded = [*before, *(b.entry(len(before) + i, now) for i, b in enumerate(batches))]
    info = {k: m[k] for k in KEPT if k in m}
    return make_manifest(
        dataset.name, m["source"], m["source_detail"], m["params"], info, arrays, m["cache_key"], recorded
    )


def append_images(dataset: Dataset, stored, batches: list[Batch], staging: Path):
    """The new version's image folder, named by its hash and not yet committed: the current files
    linked into `staging`, the batches' rows appended to the training split (split_files.append_version),
    the whole hashed from disk, then `staging` renamed to its name. A kill anywhere leaves the
    current version as it is (readers trust its manifest's counts) and at most an unnamed folder."""
    out, shape = processed_dir(dataset.name), dataset.image_shape
    counts = {k: len(dataset.arrays[k]) for k in split_files.IMAGE_KEYS}
    current = out / dataset.manifest["images"]["folder"]
    split_files.append_version(current, staging, counts, shape, [x for x, _ in stored])
    fault("append")
    small = {k: v for k, v in dataset.arrays.items() if k not in split_files.IMAGE_KEYS}
    labels = [small["y_train"], *(y.astype(small["y_train"].dtype) for _, y in stored)]
    small["y_train"] = np.concatenate(labels)
    counts["x_train"] = len(small["y_train"])
    manifest = manifest_after(dataset, small | split_files.read_images(staging, shape, counts), batches)
    target = out / manifest["images"]["folder"]
    shutil.rmtree(target, ignore_errors=True)  # a folder no manifest names is never trusted
    staging.rename(target)
    atomic.sync_folder(out)
    fault("stage")
    return small | split_files.read_images(target, shape, counts), manifest


def commit_version(name: str, arrays, manifest, batches: list[Batch]) -> None:
    """Write the batches (arrays and a sidecar record each), then the arrays, then the manifest
    (the single atomic commit point). A sidecar without a manifest entry is an uncommitted leftover."""
    recorded = {entry["id"]: entry for entry in manifest["batches"]}
    for batch in batches:
        buffer = io.BytesIO()
        np.savez(buffer, x=batch.x, y=batch.y)
        with atomic.atomic_open(batch_path(name, batch.id)) as handle:
            handle.write(buffer.getvalue())
        sidecar = batch_path(name, batch.id).with_suffix(".json")
        atomic.write_text(sidecar, json.dumps(recorded[batch.id], indent=2) + "\n")
    write(name, arrays, manifest)


def write(name: str, arrays, manifest: dict[str, Any], digests=None, staging: Path | None = None) -> None:
    """Images first, then the other arrays, the manifest last (each atomic), then drop the versions
    nothing points to. `digests`: the image rows' file content sha256, kept for incremental prep;
    `staging`: a folder (under the dataset's) where image splits were written already."""
    out = processed_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    images = manifest.get("images")
    if images:
        place_images(name, arrays, images["folder"], digests, staging)
    small = {k: v for k, v in arrays.items() if not (images and k in split_files.IMAGE_KEYS)}
    target = out / manifest["arrays"]
    if not target.exists():
        buffer = io.BytesIO()
        np.savez(buffer, **small)
        with atomic.atomic_open(target) as handle:
            handle.write(buffer.getvalue())
    fault("files")
    atomic.write_text(out / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")
    keep = {manifest["arrays"], images["folder"] if images else None}
    for old in [*out.glob("arrays-*.npz"), *out.glob("images-*")]:
        if old.name not in keep:
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)


def place_images(name: str, arrays, folder: str, digests, staging: Path | None) -> None:
    """The image folder `folder` in place: kept when it is the committed version's or the arrays are
    read from it (staged by new_version); else written afresh (a folder no manifest names may be a
    killed cycle's, whose training split shares its file with a later version: never trusted)."""
    out = processed_dir(name)
    target = out / folder
    committed = (read_manifest(name) or {}).get("images", {}).get("folder")
    if target.exists() and (folder == committed or split_files.reads_from(target, arrays)):
        return
    staging = staging or staging_folder(out)
    try:
        split_files.stage(staging, arrays, digests)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_arrays(name: str, manifest: dict[str, Any]) -> dict[str, np.ndarray]:
    """A version's arrays as stored: the small ones loaded, the images memory-mapped."""
    out = processed_dir(name)
    with np.load(out / manifest["arrays"], allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if manifest.get("images"):
        shapes = manifest["shapes"]
        counts = {key: shapes[key][0] for key in split_files.IMAGE_KEYS}
        folder = out / manifest["images"]["folder"]
        arrays |= split_files.read_images(folder, shapes["x_train"][1:], counts)
    return arrays


def stored_files(name: str, manifest: dict[str, Any] | None) -> bool:
    """Whether every file the manifest names is there."""
    if not manifest or "arrays" not in manifest:
        return False
    out = processed_dir(name)
    images = manifest.get("images")
    return (out / manifest["arrays"]).exists() and (not images or (out / images["folder"]).is_dir())


def staging_folder(out: Path) -> Path:
    """A new folder under `out` to write files in before they are renamed into place. Folders a
    killed process left (its pid in the name, no longer running) are removed first."""
    for old in out.glob(".staging-*"):
        pid = old.name.split("-")[1]
        if pid.isdigit() and not atomic.running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", dir=out))


def read_manifest(name: str) -> dict[str, Any] | None:
    path = processed_dir(name) / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
