"""Image splits as the models read them (pipeline/data/streams.py): rows selected without reading,
floats read on use, and the tf.data stream training fits on."""

import numpy as np
import pytest

from pipeline import data
from pipeline.data import split_files, streams
from pipeline.errors import UserError
from tests.helpers import as_floats


def stream_rows(stream):
    xs, ys = zip(*((x.numpy(), y.numpy()) for x, y in stream), strict=True)
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture
def read(monkeypatch):
    """The (start, stop) row runs the split file's reader is asked for, in order."""
    runs = []
    real = split_files.tf_pixels
    monkeypatch.setattr(split_files, "tf_pixels", lambda *a: runs.append(a[2:]) or real(*a))
    return runs


def test_rows_read_the_same_floats_as_the_whole_array(project):
    dataset = data.load("digits")
    x, y = dataset.examples("train")
    floats = as_floats(dataset, "train")
    keep = np.flatnonzero(y % 3 == 0)
    assert len(x) == len(y) == len(floats) and x.image_shape == floats.shape[1:]
    assert np.array_equal(x.read(slice(5, 9)), floats[5:9]) and np.array_equal(x.read([4, 1]), floats[[4, 1]])
    picked = x.select(keep).select(np.arange(10))
    assert np.array_equal(picked.load(), floats[keep[:10]])
    assert np.array_equal(np.concatenate(list(picked.chunks(3))), floats[keep[:10]])
    assert [len(c) for c in picked.chunks(4)] == [4, 4, 2]
    assert x.select(np.ones(len(x), bool)).index is None  # every row: no selection
    with pytest.raises(ValueError, match="increasing"):
        x.select([3, 1])


@pytest.mark.parametrize("held", [True, False], ids=["held", "read-every-epoch"])
def test_the_stream_gives_the_selected_rows_scaled_in_order_or_shuffled_by_the_seed(
    project, monkeypatch, held
):
    if not held:
        monkeypatch.setattr(streams, "HELD_BYTES", 0)  # the split file's reader, as for large data
    dataset = data.load("digits")
    x, y = dataset.examples("train")
    keep = np.flatnonzero(y < 5)
    rows, labels = x.select(keep), y[keep]
    images, targets = stream_rows(rows.dataset(32, targets=labels))
    assert np.array_equal(images, as_floats(dataset, "train")[keep]) and np.array_equal(targets, labels)

    first = stream_rows(rows.dataset(32, shuffle=7, targets=labels))
    again = stream_rows(rows.dataset(32, shuffle=7, targets=labels))
    assert np.array_equal(first[0], again[0])  # the same seed, the same order
    assert not np.array_equal(first[1], labels)  # shuffled
    order = np.lexsort(first[0].reshape(len(keep), -1).T)
    assert np.array_equal(first[0][order], images[np.lexsort(images.reshape(len(keep), -1).T)])


def test_holding_a_selection_changes_where_its_rows_come_from_not_the_batches(project, monkeypatch, read):
    """A selection of at most HELD_BYTES streams the same shuffled batches as the split file's
    reader (whole, in runs, filtered), also when the shuffle buffer holds only part of it: the held
    rows enter the same buffer in the same order."""
    x, y = data.load("digits").examples("train")
    monkeypatch.setattr(streams, "SHUFFLE_BYTES", 50 * int(np.prod(x.image_shape)))  # 50 rows
    selections = {
        "whole": np.arange(len(x)),
        "runs": np.r_[0:60, 100:160],
        "scattered": np.flatnonzero(y < 5),
    }
    for name, keep in selections.items():
        rows = x.select(keep)
        assert rows.float_bytes // 4 <= streams.HELD_BYTES
        read.clear()
        held = stream_rows(rows.dataset(32, shuffle=7, targets=y[keep]))
        assert read == [], name
        with monkeypatch.context() as patched:
            patched.setattr(streams, "HELD_BYTES", 0)
            from_file = stream_rows(rows.dataset(32, shuffle=7, targets=y[keep]))
        assert read, name  # the file's reader did run
        assert np.array_equal(held[0], from_file[0]) and np.array_equal(held[1], from_file[1]), name
        assert not np.array_equal(held[1], y[keep]), name  # shuffled


def test_an_autoencoder_stream_targets_the_images_themselves(project):
    x, _ = data.load("digits").examples("val")
    inputs, targets = next(iter(x.dataset(16)))  # no targets: the images are their own
    assert np.array_equal(inputs.numpy(), targets.numpy()) and np.array_equal(
        inputs.numpy(), x.read(slice(16))
    )


def test_a_limited_selection_reads_only_its_records(project, monkeypatch, read):
    """`train.limit` (the first rows and the merged ones at the end) reads only those records from
    the split file; a scattered selection of many runs is filtered while reading the whole file; a
    selection of at most HELD_BYTES is read into memory once, without the file's reader."""
    dataset = data.load("digits")
    x, y = dataset.examples("train")
    limited = x.select(np.r_[0:10, len(x) - 3 : len(x)])
    images, _ = stream_rows(limited.dataset(4, targets=y[: len(limited)]))
    assert read == [] and streams.HELD_BYTES >= limited.float_bytes // 4
    assert np.array_equal(images, as_floats(dataset, "train")[np.r_[0:10, len(x) - 3 : len(x)]])
    monkeypatch.setattr(streams, "HELD_BYTES", 0)  # as for a selection too large to hold
    images, _ = stream_rows(limited.dataset(4, targets=y[: len(limited)]))
    assert read == [(0, 10), (len(x) - 3, len(x))]
    assert np.array_equal(images, as_floats(dataset, "train")[np.r_[0:10, len(x) - 3 : len(x)]])
    scattered = np.arange(0, len(x), 2)[: streams.RANGES + 1]
    read.clear()
    images, _ = stream_rows(x.select(scattered).dataset(16, targets=y[scattered]))
    assert read == [(0, len(x))] and np.array_equal(images, as_floats(dataset, "train")[scattered])


def test_a_whole_float_copy_beyond_the_budget_is_refused_in_one_line(project, monkeypatch):
    x, _ = data.load("digits").examples("train")
    monkeypatch.setattr(streams, "IN_MEMORY_BYTES", 1000)
    with pytest.raises(UserError, match="digits/train: .* images of 8×8×1 .* use a Keras family") as error:
        streams.floats(x, cap=streams.IN_MEMORY_BYTES)
    assert "\n" not in str(error.value)
    assert len(x.read(slice(3))) == 3  # reading a few rows is fine
    assert len(x.select(range(3)).load(cap=1000)) == 3


def test_images_held_in_memory_stream_the_same(project):
    """Splits held in memory (not memory-mapped from a file): same rows, same floats."""
    dataset = data.load("digits")
    held = data.Dataset(dataset.name, dataset.manifest, {k: np.array(v) for k, v in dataset.arrays.items()})
    x, y = held.examples("test", np.arange(1, held.count("test"), 2))
    images, labels = stream_rows(x.dataset(50, targets=y))
    assert np.array_equal(images, as_floats(dataset, "test")[1::2]) and np.array_equal(labels, y)


def test_one_function_scales_the_stored_bytes_for_numpy_and_tensorflow():
    import tensorflow as tf

    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    for divisor in (255.0, 16.0):
        numpy = split_files.to_float(pixels, divisor)
        tensor = split_files.to_float(tf.constant(pixels), divisor).numpy()
        assert numpy.dtype == np.float32 and np.array_equal(numpy, tensor)
