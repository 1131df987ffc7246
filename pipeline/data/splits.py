"""Deterministic splits: stratified for labelled examples, chronological for a series."""

from __future__ import annotations

import numpy as np

from pipeline.errors import UserError

SPLITS = ("train", "val", "test")


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
