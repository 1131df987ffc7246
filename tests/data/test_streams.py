"""Image splits as the models read them (pipeline/data/streams.py): rows selected without reading,
floats read on use, and the tf.data stream training fits on."""

import numpy as np
import pytest

from pipeline import data
from pipeline.data import streams
from pipeline.errors import UserError
from tests.helpers import as_floats


def stream_rows(stream):
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in stream), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_rows_read_the_same_floats_as_the_whole_array(project):
    dataset = data.load("digits")
    x, y = dataset.examples("train")
    floats = as_floats(dataset, "train")
    keep = np.flatnonzero(y % 3 == 0)
    assert x.shape == floats.shape and len(x) == len(y)
    assert np.array_equal(x[5:9], floats[5:9]) and np.array_equal(x[[1, 4]], floats[[1, 4]])
    picked = x.take(keep).take(np.arange(10))
    assert np.array_equal(np.asarray(picked), floats[keep[:10]])
    assert x.take(np.ones(len(x), bool)).index is None  # every row: no selection
    with pytest.raises(ValueError, match="increasing"):
        x.take([3, 1])


def test_the_stream_gives_the_selected_rows_scaled_in_order_or_shuffled_by_the_seed(project):
    dataset = data.load("digits")
    x, y = dataset.examples("train")
    keep = np.flatnonzero(y < 5)
    rows, labels = x.take(keep), y[keep]
    images, targets = stream_rows(rows.stream(labels, 32))
    assert np.array_equal(images, as_floats(dataset, "train")[keep]) and np.array_equal(targets, labels)

    first = stream_rows(rows.stream(labels, 32, shuffle=7))
    again = stream_rows(rows.stream(labels, 32, shuffle=7))
    assert np.array_equal(first[0], again[0])  # the same seed, the same order
    assert not np.array_equal(first[1], labels)  # shuffled
    order = np.lexsort(first[0].reshape(len(keep), -1).T)
    assert np.array_equal(first[0][order], images[np.lexsort(images.reshape(len(keep), -1).T)])


def test_an_autoencoder_stream_targets_the_images_themselves(project):
    x, _ = data.load("digits").examples("val")
    inputs, targets = next(iter(x.stream(x, 16)))
    assert np.array_equal(inputs.numpy(), targets.numpy()) and np.array_equal(inputs.numpy(), x[:16])


def test_a_whole_float_copy_beyond_the_budget_is_refused_in_one_line(project, monkeypatch):
    x, _ = data.load("digits").examples("train")
    monkeypatch.setattr(streams, "IN_MEMORY_BYTES", 1000)
    with pytest.raises(UserError, match="digits/train: .* images of 8×8×1 .* use a Keras family") as error:
        np.asarray(x)
    assert "\n" not in str(error.value)
    assert len(x[:3]) == 3  # reading a few rows is fine


def test_images_held_in_memory_stream_the_same(project):
    """A retrain candidate's merged splits are in memory until committed: same rows, same floats."""
    dataset = data.load("digits")
    held = data.Dataset(dataset.name, dataset.manifest, {k: np.array(v) for k, v in dataset.arrays.items()})
    x, y = held.examples("test")
    images, labels = stream_rows(x.take(np.arange(1, len(x), 2)).stream(y[1::2], 50))
    assert np.array_equal(images, as_floats(dataset, "test")[1::2]) and np.array_equal(labels, y[1::2])
