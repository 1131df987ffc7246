"""A dataset's versions on disk: prepared from its source, opened (verified once), extended by the
batches `retrain` merges in, committed atomically.

    data/processed/<name>/manifest.json        the committed version (manifest.py)
        arrays-<sha16>.npz                     the arrays that are not images (labels, tables, series)
        images-<sha16>/x_<split>.u8            image splits (split_files.py)
        verified.json                          the files' size and mtime when they last hashed right
        batches/<id>.npz, <id>.json            the batches retrain merged in, and their records

Every file is written under a temp name (images in a `.staging-<pid>-*` folder) and renamed into
place; the manifest is replaced last, so an interrupted write leaves the previous version. A
version's sha256 is computed from the files as written (image splits read back from disk), recorded
with their sizes and mtimes, and hashed again on load only when those change.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pydantic

from pipeline import atomic
from pipeline.config import project_root
from pipeline.data import series, split_files, streams
from pipeline.data.manifest import BatchEntry, Manifest, Prepared, now
from pipeline.data.splits import SPLITS
from pipeline.errors import UserError
from pipeline.faults import fault

RECORD_TRIES = 50  # verified.json written again for up to about half a second until it is newest


@dataclasses.dataclass
class Dataset:
    """A prepared dataset: its manifest and its arrays as stored (images uint8, memory-mapped).

    Models read a split with examples(split, rows): images as streams.Rows (float values read on
    use, a tf.data stream for training), any other data as its arrays."""

    name: str
    manifest: Manifest
    arrays: Mapping[str, np.ndarray]

    @property
    def sha256(self) -> str:
        return self.manifest.sha256

    @property
    def kind(self) -> str:
        return self.manifest.kind

    @property
    def class_names(self) -> list[str]:
        return self.manifest.class_names

    @property
    def divisor(self) -> float:
        """Stored images are uint8 = float value x divisor (255; 16 for sklearn's digits)."""
        return float(self.manifest.divisor)

    @property
    def example_shape(self) -> tuple[int, ...]:
        """One example's shape: an image's (height, width, channels), a table row's (features,)."""
        return tuple(self.arrays["x_train"].shape[1:])

    def count(self, split: str) -> int:
        return len(self.arrays[f"y_{split}"])

    def labels(self, split: str) -> np.ndarray:
        return self.arrays[f"y_{split}"]

    def examples(self, split: str, rows=None):
        """(x, y) of a split as the models read it, only `rows` (increasing indices) when given:
        images as streams.Rows (nothing read yet), other data as arrays."""
        x, y = self.arrays[f"x_{split}"], self.arrays[f"y_{split}"]
        if self.manifest.pixels:
            x = streams.Rows(f"{self.name}/{split}", self.sha256, x, self.divisor)
            return (x, y) if rows is None else (x.select(rows), y[rows])
        return (x, y) if rows is None else (x[rows], y[rows])

    def to_stored(self, x: np.ndarray) -> np.ndarray:
        """Float images in [0, 1] (a retrain batch) as this dataset stores them."""
        return split_files.to_stored(x, self.divisor)

    @property
    def merged_rows(self) -> int:
        """Rows at the end of the training split that retrain merged in from batches (`train.limit`
        never drops them: a batch is trained on from the cycle that ingests it)."""
        if self.kind == "series":
            return 0  # a series' batches are their own segment, `recent`
        return sum(b.examples or 0 for b in self.manifest.batches)

    @property
    def path(self) -> Path:
        return processed_dir(self.name) / self.manifest.arrays


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


def contents(arrays: Mapping[str, np.ndarray], class_names: list[str]) -> dict[str, Any]:
    """What a manifest records of its arrays: shapes, sha256 and, for classes, their counts."""
    counts = None
    if class_names:
        counts = {}
        for split in SPLITS:
            labels, n = np.unique(arrays[f"y_{split}"], return_counts=True)
            counts[split] = {class_names[c]: int(k) for c, k in zip(labels, n, strict=True)}
    shapes = {k: list(v.shape) for k, v in arrays.items()}
    return {"shapes": shapes, "sha256": content_hash(arrays), "class_counts": counts}


# --------------------------------------------------------------------------- the dataset's folder


def processed_dir(name: str) -> Path:
    """A dataset's folder: its manifest, the files the manifest names, its batches."""
    return project_root() / "data" / "processed" / name


def read_manifest(name: str) -> Manifest | None:
    """The committed version's manifest; None when there is none or it cannot be read."""
    try:
        return Manifest.model_validate_json((processed_dir(name) / "manifest.json").read_bytes())
    except (FileNotFoundError, pydantic.ValidationError):
        return None


def write_manifest(manifest: Manifest) -> None:
    """Replace manifest.json atomically: the commit point of a version."""
    text = manifest.model_dump_json(indent=2, exclude_none=True)
    atomic.write_text(processed_dir(manifest.dataset) / "manifest.json", text + "\n")


def stats(manifest: Manifest, files: list[str]) -> dict[str, list[int]]:
    """{file: [size, mtime_ns]} of a version's files (relative to the dataset's folder)."""
    folder = processed_dir(manifest.dataset)
    found = {}
    for name in files:
        info = os.stat(folder / name)
        found[name] = [info.st_size, info.st_mtime_ns]
    return found


def record_verified(manifest: Manifest, found: dict[str, list[int]]) -> None:
    """Record that the files with these stats hashed to the manifest's sha256 (verified.json),
    the record newer than every file (written again a clock tick later if it is not: see
    `verified`), so the next load trusts them without hashing."""
    path = processed_dir(manifest.dataset) / "verified.json"
    text = json.dumps({"sha256": manifest.sha256, "files": found}, indent=1) + "\n"
    newest = max(mtime for _, mtime in found.values())
    for _ in range(RECORD_TRIES):
        atomic.write_text(path, text)
        if path.stat().st_mtime_ns > newest:
            return
        time.sleep(0.01)  # a file system whose clock ticks coarsely: the next load hashes again


def verified(manifest: Manifest, files: list[str]) -> bool:
    """Whether `files` are as they were when they last hashed to the manifest's sha256: the same
    size and modification time, and older than that record (git's rule for a racily clean file: one
    written in the same clock tick as the record may have changed unseen, so it is hashed again)."""
    path = processed_dir(manifest.dataset) / "verified.json"
    try:
        record = json.loads(path.read_text())
        written = path.stat().st_mtime_ns
        current = stats(manifest, files)
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("sha256") != manifest.sha256:
        return False
    return record.get("files") == current and all(mtime < written for _, mtime in current.values())


# --------------------------------------------------------------------------- preparing a version


def prepare(name: str, source, consumed: Path, max_pixels: int, force: bool) -> tuple[Manifest, bool]:
    """The dataset's current manifest, prepared from `source` first when it is out of date (or
    `force`); returns (manifest, whether a version was written). Batches retrain ingested stay
    part of the dataset: merged back in from the manifest's records (or, when it was lost, from
    `consumed`, the folder they were moved to)."""
    out = processed_dir(name)
    clean_staging(out)
    cache_key, detail = source.fingerprint(name)
    current = read_manifest(name)
    if not force and current and current.cache_key == cache_key and stored_files(current):
        return current, False
    with staging(out) as folder:  # validates everything before the dataset's files change
        prepared = source.build(name, folder)
        batches = current.batches if current else ingested(name, consumed)
        arrays = prepared.arrays
        if batches:
            arrays, batches = merge_ingested(name, source, prepared, batches, consumed, max_pixels)
        if prepared.facts.pixels:
            arrays = split_files.stage(folder, arrays, prepared.digests)
        manifest = Manifest(
            **prepared.facts.model_dump(),
            **contents(arrays, prepared.facts.class_names),
            dataset=name,
            source=source.source,
            source_detail=detail,
            params=dataclasses.asdict(source),
            cache_key=cache_key,
            batches=batches,
            created=now(),
        )
        commit(manifest, arrays, folder)
    return manifest, True


def ingested(name: str, consumed: Path) -> list[BatchEntry]:
    """The batches a dataset holds when its manifest is missing or unreadable: every batch in the
    consumed folder (with its sidecar record when there is one), in the order they were ingested."""
    records = {e.id: e for e in batch_entries(name)}
    found = sorted(p.name for p in consumed.iterdir() if p.is_dir()) if consumed.is_dir() else []
    entries = [records.get(i, BatchEntry(id=i, name=i)) for i in found]
    return sorted(entries, key=lambda e: (len(found) if e.seq is None else e.seq, e.id))


def merge_ingested(name, source, prepared: Prepared, entries, consumed: Path, max_pixels: int):
    """(the freshly built arrays with the ingested batches merged back in order, the entries with
    their example counts): each batch from its stored arrays when they still fit (same image
    shape), else re-read from `consumed` at the current settings (a changed image_size, say);
    neither possible: one line, nothing written."""
    arrays, facts = prepared.arrays, prepared.facts
    shape = arrays["x_train"].shape[1:] if "x_train" in arrays else None
    accepted = []
    for entry in entries:
        raw, stored = consumed / entry.id, batch_path(name, entry.id).exists()
        if stored and (shape is None or load_batch(name, entry.id)[0].shape[1:] == shape):
            x, y = load_batch(name, entry.id)
            accepted.append((split_files.to_stored(x, facts.divisor) if facts.pixels else x, y))
        elif raw.is_dir():
            base = Dataset(name, Manifest.model_construct(**dict(facts), batches=[]), arrays)
            x, y = source.read_batch(raw, base, accepted, max_pixels)
            accepted.append((base.to_stored(x) if facts.pixels else x, y))
        else:
            raise UserError(
                f"dataset '{name}': ingested batch '{entry.id}' cannot be rebuilt (no stored arrays "
                f"of this shape, and {raw} is gone); restore that folder, or set the data params back"
            )
    counted = [
        e if e.examples is not None else e.model_copy(update={"examples": examples(y)})
        for e, (_, y) in zip(entries, accepted, strict=True)
    ]
    staged = getattr(arrays.get("x_train"), "filename", None)
    if facts.pixels and staged:  # a split file just written to the staging folder: appended to
        count = split_files.append_rows(Path(staged), len(arrays["x_train"]), shape, [x for x, _ in accepted])
        y = np.concatenate([arrays["y_train"], *(y.astype(arrays["y_train"].dtype) for _, y in accepted)])
        return {**arrays, "x_train": split_files.open_rows(Path(staged), shape, count), "y_train": y}, counted
    return merge_batches(arrays, accepted, facts.fill or "time"), counted


# --------------------------------------------------------------------------- new-data batches


def examples(y: np.ndarray) -> int:
    """A batch's examples: its labels, or a series' observed values (not the NaN of skipped steps)."""
    return int(np.isfinite(y).sum()) if y.dtype.kind == "f" else len(y)


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
        return examples(self.y)

    def entry(self, seq: int, ingested: str) -> BatchEntry:
        """What the manifest (and the batch's sidecar file) records of it."""
        return BatchEntry(
            id=self.id, name=self.name, sha256=self.sha256, examples=self.examples, seq=seq, ingested=ingested
        )


def batch_path(name: str, batch_id: str) -> Path:
    return processed_dir(name) / "batches" / f"{batch_id}.npz"


def load_batch(name: str, batch_id: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(batch_path(name, batch_id), allow_pickle=False) as npz:
        return npz["x"], npz["y"]


def batch_entries(name: str) -> list[BatchEntry]:
    """The sidecar records of every batch ever committed to the dataset (a manifest's backup)."""
    entries = []
    for path in sorted((processed_dir(name) / "batches").glob("*.json")):
        try:
            entries.append(BatchEntry.model_validate_json(path.read_bytes()))
        except (OSError, ValueError):
            continue
    return entries


def merge_batches(arrays: Mapping[str, np.ndarray], batches, fill: str = "time") -> dict[str, np.ndarray]:
    """New labelled examples join the training split only: val and test (the holdout) never change.

    A series' new weeks come after its test period, so they form a fourth segment, `recent`, that
    trains the window models (targets there, inputs may reach back into the test period).
    `batches`: (x, y) pairs in the order they were ingested.
    """
    batches = list(batches)
    if "values_train" in arrays:
        return series.merge_recent(arrays, batches, fill) if batches else dict(arrays)
    merged = dict(arrays)
    for x, y in batches:
        merged["x_train"] = np.concatenate([merged["x_train"], x.astype(merged["x_train"].dtype)])
        merged["y_train"] = np.concatenate([merged["y_train"], y.astype(merged["y_train"].dtype)])
    return merged


def new_version(dataset: Dataset, batches: list[Batch]) -> tuple[dict[str, np.ndarray], Manifest]:
    """The dataset with `batches` merged: (arrays, manifest), not committed. An image dataset's new
    folder is staged and named (append_images); the other arrays are small and merged in memory."""
    pixels = dataset.manifest.pixels
    stored = [(dataset.to_stored(b.x) if pixels else b.x, b.y) for b in batches]
    if pixels:
        with staging(processed_dir(dataset.name)) as folder:
            return append_images(dataset, stored, batches, folder)
    arrays = merge_batches(dataset.arrays, stored, dataset.manifest.fill or "time")
    return arrays, manifest_after(dataset, arrays, batches)


def manifest_after(dataset: Dataset, arrays, batches: list[Batch]) -> Manifest:
    """The manifest of `dataset` with `batches` merged into `arrays` (its sha256 read in pieces)."""
    before = dataset.manifest.batches
    added = [b.entry(len(before) + i, now()) for i, b in enumerate(batches)]
    return dataset.manifest.merged(contents(arrays, dataset.class_names), [*before, *added])


def append_images(dataset: Dataset, stored, batches: list[Batch], staging: Path):
    """The new version's image folder, named by its hash and not yet committed: the current files
    linked into `staging`, the batches' rows appended to the training split
    (split_files.append_version), the whole hashed from disk, then `staging` renamed to its name. A
    kill anywhere leaves the current version as it is (readers trust its manifest's counts) and at
    most an unnamed folder."""
    out, shape = processed_dir(dataset.name), dataset.example_shape
    counts = {k: len(dataset.arrays[k]) for k in split_files.IMAGE_KEYS}
    current = out / dataset.manifest.images_folder
    split_files.append_version(current, staging, counts, shape, [x for x, _ in stored])
    fault("append")
    small = {k: v for k, v in dataset.arrays.items() if k not in split_files.IMAGE_KEYS}
    labels = [small["y_train"], *(y.astype(small["y_train"].dtype) for _, y in stored)]
    small["y_train"] = np.concatenate(labels)
    counts["x_train"] = len(small["y_train"])
    manifest = manifest_after(dataset, small | split_files.read_images(staging, shape, counts), batches)
    target = out / manifest.images_folder
    shutil.rmtree(target, ignore_errors=True)  # a folder no manifest names is never trusted
    staging.rename(target)
    atomic.sync_folder(out)
    fault("stage")
    return small | split_files.read_images(target, shape, counts), manifest


# --------------------------------------------------------------------------- committing, opening


def commit_version(name: str, arrays, manifest: Manifest, batches: list[Batch]) -> None:
    """Write the batches (arrays and a sidecar record each), then the version (commit). A sidecar
    without a manifest entry is an uncommitted leftover."""
    recorded = {entry.id: entry for entry in manifest.batches}
    for batch in batches:
        buffer = io.BytesIO()
        np.savez(buffer, x=batch.x, y=batch.y)
        with atomic.atomic_open(batch_path(name, batch.id)) as handle:
            handle.write(buffer.getvalue())
        sidecar = batch_path(name, batch.id).with_suffix(".json")
        atomic.write_text(sidecar, recorded[batch.id].model_dump_json(indent=2) + "\n")
    commit(manifest, arrays)


def commit(manifest: Manifest, arrays, staged: Path | None = None) -> None:
    """The version in place: its image folder (`staged`: written there, renamed to its name, unless
    the committed version has that name already; else in place already, see append_images), the
    other arrays, the manifest (the commit point), the record of the files as hashed; then the
    versions nothing points to are dropped."""
    out = processed_dir(manifest.dataset)
    out.mkdir(parents=True, exist_ok=True)
    committed = read_manifest(manifest.dataset)
    if staged is not None and manifest.pixels:
        target = out / manifest.images_folder
        if not (target.is_dir() and committed and committed.images_folder == target.name):
            shutil.rmtree(target, ignore_errors=True)  # a folder no manifest names is never trusted
            staged.rename(target)
    small = {k: v for k, v in arrays.items() if not (manifest.pixels and k in split_files.IMAGE_KEYS)}
    if not (out / manifest.arrays).exists():
        buffer = io.BytesIO()
        np.savez(buffer, **small)
        with atomic.atomic_open(out / manifest.arrays) as handle:
            handle.write(buffer.getvalue())
    fault("files")
    write_manifest(manifest)
    record_verified(manifest, stats(manifest, version_files(manifest)))
    keep = {manifest.arrays, manifest.images_folder}
    for old in [*out.glob("arrays-*.npz"), *out.glob("images-*")]:
        if old.name not in keep:
            shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)


def version_files(manifest: Manifest) -> list[str]:
    """The files a version's sha256 covers, relative to the dataset's folder."""
    images = [f"{manifest.images_folder}/{split_files.split_file(k)}" for k in split_files.IMAGE_KEYS]
    return [manifest.arrays, *(images if manifest.pixels else [])]


def read_arrays(manifest: Manifest) -> dict[str, np.ndarray]:
    """A version's arrays as stored: the small ones loaded, the images memory-mapped."""
    out = processed_dir(manifest.dataset)
    with np.load(out / manifest.arrays, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    if manifest.pixels:
        counts = {key: manifest.shapes[key][0] for key in split_files.IMAGE_KEYS}
        shape = manifest.shapes["x_train"][1:]
        arrays |= split_files.read_images(out / manifest.images_folder, shape, counts)
    return arrays


def open_version(manifest: Manifest) -> Dataset:
    """The version's arrays (images memory-mapped), checked against its sha256 when its files are
    not as they were when they last hashed right (then hashed a piece at a time, and recorded)."""
    files = version_files(manifest)
    arrays = read_arrays(manifest)
    if not verified(manifest, files):
        before = stats(manifest, files)  # a change while hashing shows on the next load
        if content_hash(arrays) != manifest.sha256:
            raise UserError(
                f"{processed_dir(manifest.dataset)}: arrays do not match the manifest's sha256; "
                "run `make data` again"
            )
        record_verified(manifest, before)
    return Dataset(manifest.dataset, manifest, arrays)


def stored_files(manifest: Manifest) -> bool:
    """Whether every file the manifest names is there."""
    out = processed_dir(manifest.dataset)
    images = not manifest.pixels or (out / manifest.images_folder).is_dir()
    return (out / manifest.arrays).exists() and images


# --------------------------------------------------------------------------- staging folders


def clean_staging(out: Path) -> None:
    """Remove the staging folders a killed process left (its pid in the name, no longer running)."""
    for old in out.glob(".staging-*"):
        pid = old.name.split("-")[1]
        if pid.isdigit() and not atomic.running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staging(out: Path):
    """A new folder under `out` (created) to write files in before they are renamed into place;
    removed on the way out, with `out` and its parent when they are left empty (a refused first
    prep leaves nothing behind)."""
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", dir=out))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        for empty in (out, out.parent):
            if empty.is_dir() and not any(empty.iterdir()):
                empty.rmdir()
