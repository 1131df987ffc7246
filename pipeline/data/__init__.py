"""Data-prep stage: read a source, validate it, split it deterministically, hash it, cache it.

    data.load(name)      the prepared dataset (prepared first when out of date)
    data.prepare(name)   prepare one dataset of params.yaml (a no-op when up to date)

Sources (pipeline/data/sources.py, one class each), readers shared with retrain and predict
(readers.py), splits (splits.py) and versions (versions.py: manifest, batches, atomic commit).
Output: data/processed/<dataset>/manifest.json and the arrays it names (arrays-<sha>.npz).
TensorFlow is not imported here: preparing data stays fast and `make` can decide without it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from pipeline.config import PARAMS_FILE, dataset_names, load_params, suggest
from pipeline.data.readers import numeric_column, read_csv, read_image  # noqa: F401 - public readers
from pipeline.data.sources import SOURCES, Source, parse_source  # noqa: F401
from pipeline.data.splits import SPLITS  # noqa: F401
from pipeline.data.versions import (  # noqa: F401 - the dataset's public API
    Dataset,
    commit_version,
    content_hash,
    load_batch,
    make_manifest,
    merge_batches,
    new_version,
    processed_dir,
    read_manifest,
    series_segments,
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
    if (
        not force
        and current
        and current.get("cache_key") == cache_key
        and (processed_dir(name) / current["arrays"]).exists()
    ):
        return current, False
    arrays, info = source.build(name)  # validates everything before a byte is written
    batches = (current or {}).get("batches", [])
    if batches:  # batches accepted by `retrain` stay part of the dataset
        arrays = merge_batches(arrays, [load_batch(name, b["id"]) for b in batches])
    manifest = make_manifest(
        name, source.source, detail, dataclasses.asdict(source), info, arrays, cache_key, batches
    )
    write(name, arrays, manifest)
    return manifest, True


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
