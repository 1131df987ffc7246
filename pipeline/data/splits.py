"""Deterministic splits: stratified for labelled examples (the bundled digits, CSV tables), per
example from a hash of its content for image folders, chronological for a series."""

from __future__ import annotations

import hashlib

import numpy as np

from pipeline.errors import UserError

SPLITS = ("train", "val", "test")


def stratified_split(x, y, val_fraction: float, test_fraction: float, seed: int, name: str, holdout=True):
    """Train/val/test with the class proportions of y kept in each split, fixed by `seed`.
    `holdout=False`: train and val only (the test split comes from elsewhere)."""
    from sklearn.model_selection import train_test_split

    try:
        if holdout:
            x_rest, x_test, y_rest, y_test = train_test_split(
                x, y, test_size=test_fraction, stratify=y, random_state=seed
            )
        else:
            x_rest, y_rest = x, y
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
    arrays = {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val}
    return arrays | ({"x_test": x_test, "y_test": y_test} if holdout else {})


def hashed_split(y, keys: list[str], val_fraction: float, test_fraction: float, seed: int, name: str):
    """{split: the examples' indices} drawn per example from a hash of its key (its content) and the
    seed: an example's split never depends on the others, so adding examples moves none of the old
    ones. Each split is ordered by that hash (a shuffle that is stable too)."""
    draws = np.array(
        [int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64 for key in keys]
    )
    order = np.argsort(draws, kind="stable")
    which = np.where(draws < test_fraction, 2, np.where(draws < test_fraction + val_fraction, 1, 0))
    parts = {split: order[which[order] == index] for index, split in enumerate(SPLITS)}
    for split in ("train", "test"):
        if not len(parts[split]):
            raise UserError(
                f"dataset '{name}': {len(y)} images leave the {split} split empty; add images or change "
                "val_fraction/test_fraction"
            )
    return parts


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
