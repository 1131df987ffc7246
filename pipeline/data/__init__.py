"""Data-prep stage: read a source, validate it, split it deterministically, hash it, store it.

    data.load(name)      the prepared dataset (prepared first when out of date; its files hashed
                         again only when they changed since they last were)
    data.prepare(name)   prepare one dataset of params.yaml (a no-op when up to date)
    data.main(names)     `python -m pipeline data`: prepare, waiting for a retrain that holds the lock

A source (sources.py, one class per `source:`) builds a typed `Prepared` value: its split arrays and
the `Facts` about them (manifest.py); versions.py stores it as a version of the dataset in
data/processed/<dataset>/: manifest.json (the typed Manifest), arrays-<sha>.npz (labels, tables,
series) and, for images, images-<sha>/ (uint8 split files: split_files.py). A loaded Dataset gives
each split as models read it (`examples`): images as streams.Rows (read on use, a tf.data stream
for training), other data as arrays. Readers shared with retrain and predict are in readers.py,
splits in splits.py, a series' batches in series.py.
TensorFlow is not imported here: preparing data stays fast and `make` can decide without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import atomic, layout
from pipeline.config import PARAMS_FILE, dataset_names, load_params, retrain_params, suggest
from pipeline.data import series, versions  # noqa: F401 - series: a series' batches (segments, ...)
from pipeline.data.manifest import BatchEntry, Facts, Manifest, Prepared  # noqa: F401
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
    commit_version,
    content_hash,
    merge_batches,
    new_version,
    open_version,
    processed_dir,
    read_manifest,
)
from pipeline.errors import UserError


def source_of(name: str, params: dict[str, Any]) -> Source:
    if name not in params["data"]:
        raise UserError(
            f"unknown dataset '{name}' in {PARAMS_FILE}{suggest(name, params['data'])}; "
            f"known: {', '.join(params['data'])}"
        )
    return parse_source(name, params["data"][name])


def consumed_dir(name: str, params: dict[str, Any]) -> Path:
    """Where `retrain` keeps a dataset's ingested batches as they arrived."""
    return resolve(retrain_params(params).consumed) / name


def prepare(name: str, params: dict[str, Any] | None = None, force: bool = False) -> tuple[Manifest, bool]:
    """Prepare one dataset; returns (manifest, whether anything was written)."""
    params = params or load_params()
    source = source_of(name, params)
    cap = retrain_params(params).max_image_pixels  # batches re-read from their folders (retrain's cap)
    return versions.prepare(name, source, consumed_dir(name, params), cap, force)


def load(name: str, params: dict[str, Any] | None = None) -> Dataset:
    """Prepare when needed (a no-op when up to date), then open the arrays (images memory-mapped),
    hashed a piece at a time only when their files changed since they last matched the manifest."""
    manifest, _ = prepare(name, params)
    return open_version(manifest)


def main(names: list[str], force: bool = False) -> int:
    params = load_params()
    # a retrain cycle holds the lock while it stages, trains on and commits a new version: wait
    with atomic.file_lock(layout.retrain_lock(), "pipeline data", wait=True):
        for name in names or dataset_names(params):
            manifest, written = prepare(name, params, force=force)
            state = "prepared" if written else "up to date"
            shapes = ", ".join(
                f"{k}{tuple(v)}" for k, v in manifest.shapes.items() if k.startswith(("x_", "values_"))
            )
            print(f"data {name}: {state} · sha256 {manifest.sha256[:12]} · {shapes}")
    return 0
