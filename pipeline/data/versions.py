"""A prepared dataset and its versions: the arrays, the manifest that names them (with their
sha256), the batches `retrain` merged in, and the atomic commit of a new version.

The manifest is replaced last and atomically, so an interrupted write leaves the previous version.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import atomic
from pipeline.config import project_root
from pipeline.data.splits import SPLITS

# Bump when the processing changes what a source turns into: it invalidates caches.
PREP_VERSION = 1


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


# what a new version keeps of the manifest it extends (the rest is recomputed)
KEPT = ("kind", "class_names", "split", "split_seed", "value_range", "feature_names", "fill", "filled_gaps")


def new_version(dataset: Dataset, batches: dict[str, tuple[np.ndarray, np.ndarray]]):
    """The dataset with `batches` ({id: (x, y)}) merged: (arrays, manifest), nothing written yet."""
    arrays = merge_batches(dataset.arrays, batches.values())
    m = dataset.manifest
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    recorded = [
        *m.get("batches", []),
        *({"id": k, "examples": len(v[1]), "ingested": now} for k, v in batches.items()),
    ]
    info = {k: m[k] for k in KEPT if k in m}
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
