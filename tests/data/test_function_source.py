"""The `function` source: a 1-D function sampled with noise, generated offline from a seed."""

import numpy as np
import pytest

from pipeline import data
from pipeline.data.sources import FUNCTIONS, parse_source
from pipeline.errors import UserError

WAVE = {
    "source": "function",
    "function": "sine-mix",
    "samples": 200,
    "noise": 0.05,
    "val_fraction": 0.15,
    "test_fraction": 0.2,
    "seed": 7,
}


def test_the_documented_functions():
    x = np.array([-1.0, -0.75, -0.5, -0.25, 0.0, 0.125, 0.25])
    expected = np.sin(2 * np.pi * x) + 0.5 * np.sin(6 * np.pi * x)
    assert np.allclose(FUNCTIONS["sine-mix"](x), expected)
    # 4 teeth on [-1, 1]: peaks (1) every 0.5, troughs (-1) half-way between
    assert np.allclose(FUNCTIONS["triangle"](x), [1, -1, 1, -1, 1, 0, -1])


def test_same_seed_same_samples_and_the_noise_is_what_it_says():
    prepared = parse_source("wave", WAVE).build("wave")
    arrays, again = prepared.arrays, parse_source("wave", WAVE).build("wave").arrays
    assert all(np.array_equal(arrays[k], again[k]) for k in arrays)
    assert prepared.facts.kind == "regression" and prepared.facts.function == "sine-mix"
    sizes = {s: len(arrays[f"y_{s}"]) for s in ("train", "val", "test")}
    assert sizes == {"train": 130, "val": 30, "test": 40}
    assert (
        arrays["x_train"].shape == (130, 1) and -1 <= arrays["x_train"].min() < arrays["x_train"].max() <= 1
    )
    x = np.concatenate([arrays[f"x_{s}"][:, 0] for s in ("train", "val", "test")])
    y = np.concatenate([arrays[f"y_{s}"] for s in ("train", "val", "test")])
    noise = y - FUNCTIONS["sine-mix"](x)
    assert len(np.unique(x)) == 200 and 0.03 < noise.std() < 0.07  # every sample in one split
    assert np.allclose(arrays["curve_y"], FUNCTIONS["sine-mix"](arrays["curve_x"]), atol=1e-6)
    other = parse_source("wave", {**WAVE, "seed": 8}).build("wave").arrays
    assert not np.array_equal(other["x_train"], arrays["x_train"])


def test_prepared_like_every_dataset_and_bad_entries_name_the_key(project):
    import yaml

    params = yaml.safe_load((project / "params.yaml").read_text())
    dataset = data.load("wave", params)
    assert dataset.kind == "regression" and dataset.manifest.source == "function"
    with pytest.raises(UserError, match="data.w.function = 'cosine' is not one of"):
        parse_source("w", {**WAVE, "function": "cosine"})
    with pytest.raises(UserError, match="samples must be at least 10"):
        parse_source("w", {**WAVE, "samples": 3}).build("w")
