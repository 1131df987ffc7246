"""Data-prep stage: read a source, validate it, split it deterministically, hash it, cache it.

    data.load(name)      the prepared dataset (prepared first when out of date)
    data.prepare(name)   prepare one dataset of params.yaml (a no-op when up to date)

Sources (pipeline/data/sources.py, one class each), readers shared with retrain and predict
(readers.py), splits (splits.py) and versions (versions.py: manifest, batches, atomic commit).
Output: data/processed/<dataset>/manifest.json and the files it names: arrays-<sha>.npz (labels,
tables, series) and, for images, images-<sha>/ (uint8 split files: split_files.py). A loaded Dataset
reads images in pieces (Dataset.images / .batches: see versions.py).
TensorFlow is not imported here: preparing data stays fast and `make` can decide without it.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import PARAMS_FILE, dataset_names, load_params, retrain_params, suggest
from pipeline.data import split_files
from pipeline.data.readers import (  # noqa: F401 - public readers
    date_column,
    numeric_column,
    read_csv,
    read_image,
    regular_files,
    resolve,
    shown,
)
from pipeline.data.sources import SOURCES, Source, parse_source  # noqa: F401
from pipeline.data.splits import SPLITS  # noqa: F401
from pipeline.data.versions import (  # noqa: F401 - the dataset's public API
    Batch,
    Dataset,
    batch_entries,
    batch_path,
    commit_version,
    content_hash,
    load_batch,
    make_manifest,
    merge_batches,
    new_version,
    processed_dir,
    read_arrays,
    read_manifest,
    series_segments,
    staging_folder,
    stored_files,
    write,
)
from pipeline.errors import UserError


def source_of(name: str, params: dict[str, Any]) -> Source:
    if name not in params["data"]:
        raise UserError(
            f"unknown dataset '{name}' in {PARAMS_FILE}{suggest(name, params['data'])}; "
            f"known: {', '.join(params['data'])}"
        )
    return parse_source(name, params["data"][name])


def prepare(
    name: str, params: dict[str, Any] | None = None, force: bool = False
) -> tuple[dict[str, Any], bool]:
    """Prepare one dataset; returns (manifest, whether anything was written)."""
    params = params or load_params()
    source = source_of(name, params)
    cache_key, detail = source.fingerprint(name)
    current = read_manifest(name)
    if not force and current and current.get("cache_key") == cache_key and stored_files(name, current):
        return current, False
    out = processed_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(out)
    try:
        # validates everything before the dataset's files change (images go to `staging` first)
        arrays, info = source.build(name, staging)
        digests = info.pop("digests", None)
        # batches accepted by `retrain` stay part of the dataset, even when its manifest was lost
        batches = current["batches"] if current else ingested(name, params)
        if batches:
            arrays = merge_ingested(name, source, arrays, info, batches, params)
        manifest = make_manifest(
            name, source.source, detail, dataclasses.asdict(source), info, arrays, cache_key, batches
        )
        write(name, arrays, manifest, digests, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in (out, out.parent):  # a refused first prep leaves nothing behind
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return manifest, True


def consumed_dir(name: str, params: dict[str, Any]) -> Path:
    """Where `retrain` keeps a dataset's ingested batches as they arrived."""
    return resolve(retrain_params(params).consumed) / name


def ingested(name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The batches a dataset holds when its manifest is missing or unreadable: every batch in the
    consumed folder (with its sidecar record when there is one), in the order they were ingested."""
    folder = consumed_dir(name, params)
    records = {e["id"]: e for e in batch_entries(name) if isinstance(e, dict) and "id" in e}
    found = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    entries = [records.get(i, {"id": i, "name": i, "sha256": None}) for i in found]
    return sorted(entries, key=lambda e: (e.get("seq", len(found)), e["id"]))


def merge_ingested(name, source, arrays, info, entries, params) -> dict[str, np.ndarray]:
    """The freshly built arrays with the ingested batches merged back in order: each from its
    stored arrays when they still fit (same image shape), else re-read from the consumed folder at
    the current settings (a changed image_size, say); neither possible: one line, nothing written."""
    fill = info.get("fill", "time")
    shape = arrays["x_train"].shape[1:] if "x_train" in arrays else None
    accepted = []
    for entry in entries:
        stored = batch_path(name, entry["id"])
        raw = consumed_dir(name, params) / entry["id"]
        if stored.exists() and (shape is None or load_batch(name, entry["id"])[0].shape[1:] == shape):
            x, y = load_batch(name, entry["id"])
            accepted.append((split_files.to_stored(x, info["divisor"]) if "divisor" in info else x, y))
        elif raw.is_dir():
            base = Dataset(name, {**info, "batches": []}, arrays)
            max_pixels = retrain_params(params).max_image_pixels
            x, y = source.read_batch(raw, base, accepted, max_pixels)
            accepted.append((base.to_stored(x) if "divisor" in info else x, y))
        else:
            raise UserError(
                f"dataset '{name}': ingested batch '{entry['id']}' cannot be rebuilt (no stored arrays "
                f"of this shape, and {raw} is gone); restore that folder, or set the data params back"
            )
    for entry, (_, y) in zip(entries, accepted, strict=True):
        entry.setdefault("examples", int(np.isfinite(y).sum()) if y.dtype.kind == "f" else len(y))
    staged = getattr(arrays.get("x_train"), "filename", None)
    if "divisor" in info and staged:  # a split file just written to the staging folder: appended to
        count = split_files.append_rows(Path(staged), len(arrays["x_train"]), shape, [x for x, _ in accepted])
        y = np.concatenate([arrays["y_train"], *(y.astype(arrays["y_train"].dtype) for _, y in accepted)])
        return {**arrays, "x_train": split_files.open_rows(Path(staged), shape, count), "y_train": y}
    return merge_batches(arrays, accepted, fill)


def load(name: str, params: dict[str, Any] | None = None) -> Dataset:
    """Prepare when needed (a no-op when up to date), then open and verify the arrays (images
    memory-mapped, hashed a piece at a time)."""
    manifest, _ = prepare(name, params)
    arrays = read_arrays(name, manifest)
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
