import dataclasses

import keras
import numpy as np
import pytest

from pipeline.errors import UserError
from pipeline.models import cnn
from pipeline.models.layers import MinPooling2D
from pipeline.specs import ClassifierSpec as Spec
from pipeline.training.artifacts import layer_table

SPEC = Spec(input_shape=(8, 8, 1), num_classes=10, seed=0)


def params(**changes) -> cnn.Params:
    base = dict(
        filters=(4, 6),
        kernel_size=3,
        strides=1,
        padding="same",
        activation="relu",
        batch_norm=False,
        pooling="none",
        pool_size=2,
        pool_every=0,
        dropout=0.0,
        dense_units=5,
        bn_momentum=0.99,
        extra_blocks=0,
        head="flatten",
        augment=None,
    )
    return cnn.Params(**{**base, **changes})


def conv_shapes(model):
    return [tuple(layer.output.shape[1:]) for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


@pytest.mark.parametrize(
    "padding, expected",
    [
        ("same", [(8, 8, 4), (8, 8, 6)]),  # size kept
        ("valid", [(6, 6, 4), (4, 4, 6)]),  # 8 - (3 - 1) = 6, then 4
        ("full", [(10, 10, 4), (12, 12, 6)]),  # 8 + (3 - 1) = 10, then 12
        (1, [(8, 8, 4), (8, 8, 6)]),  # explicit 1 = 'same' for a 3x3 kernel
        ((2, 0), [(10, 6, 4), (12, 4, 6)]),  # rows padded by 2, columns not
    ],
)
def test_padding_sets_the_feature_map_size(padding, expected):
    model = cnn.build(params(padding=padding), SPEC)
    assert conv_shapes(model) == expected
    assert model.output.shape[1:] == (10,)


def test_strides_and_pooling():
    model = cnn.build(params(strides=2, pooling="max", pool_every=0), SPEC)
    assert conv_shapes(model) == [(4, 4, 4), (2, 2, 6)]
    pooled = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert len(pooled) == 1 and tuple(pooled[0].output.shape[1:]) == (1, 1, 6)
    avg = cnn.build(params(pooling="avg", pool_every=1), SPEC)
    assert sum(isinstance(layer, keras.layers.AveragePooling2D) for layer in avg.layers) == 2


def test_conv_parameter_counts_follow_the_formula():
    model = cnn.build(params(filters=(8, 16), kernel_size=3, padding="valid"), SPEC)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.count_params() for c in convs] == [(3 * 3 * 1 + 1) * 8, (3 * 3 * 8 + 1) * 16]
    rows = [line.split(",") for line in layer_table(model).splitlines()[1:]]
    checked = [r for r in rows if r[4]]
    assert len(checked) == 4  # two Conv2D and two Dense layers
    assert all(int(r[3]) == int(r[4]) for r in checked)
    *layers, total = rows
    assert total[0] == "total" and int(total[3]) == model.count_params()
    assert sum(int(r[3]) for r in layers) == model.count_params()


def test_batch_norm_replaces_the_conv_bias():
    model = cnn.build(params(filters=(8,), batch_norm=True), SPEC)
    (conv,) = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert conv.count_params() == 3 * 3 * 1 * 8  # no bias
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 1
    rows = [line.split(",") for line in layer_table(model).splitlines()[1:]]
    assert all(int(r[3]) == int(r[4]) for r in rows if r[4])


def test_valid_padding_that_shrinks_the_map_away_is_a_user_error():
    with pytest.raises(UserError, match="too small for layer 4"):
        cnn.build(params(filters=(4, 4, 4, 4), padding="valid"), SPEC)


def test_cnn_rejects_tabular_input():
    with pytest.raises(UserError, match="cnn needs images"):
        cnn.build(params(), Spec(input_shape=(5,), num_classes=2, seed=0))


@pytest.mark.parametrize(
    "kernel_size, strides, expected",
    [
        ((3, 1), 1, [(6, 8, 4), (4, 8, 6)]),  # 3 rows high, 1 column wide: only the height shrinks
        (3, (2, 1), [(3, 6, 4), (1, 4, 6)]),  # stride 2 down the rows, 1 along the columns
        ((2, 3), (1, 2), [(7, 3, 4), (6, 1, 6)]),
    ],
)
def test_kernel_size_and_strides_take_rows_and_columns(kernel_size, strides, expected):
    model = cnn.build(params(kernel_size=kernel_size, strides=strides, padding="valid"), SPEC)
    assert conv_shapes(model) == expected
    (first, _) = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert first.kernel_size == cnn.pair(kernel_size) and first.strides == cnn.pair(strides)


def test_full_padding_follows_each_kernel_side():
    model = cnn.build(params(kernel_size=(3, 1), padding="full", filters=(4,)), SPEC)
    assert conv_shapes(model) == [(10, 8, 4)]  # rows padded by 2 on each side, columns not


def test_int_or_pair_knobs_parse_from_params_yaml_and_log_as_written():
    from pipeline import config

    section = {**dataclasses.asdict(params()), "kernel_size": [3, 2], "strides": 1}
    parsed = config.parse_section(cnn.Params, section, "experiments.x.model")
    assert parsed.kernel_size == (3, 2) and parsed.strides == 1  # an int stays an int: logged "1"
    with pytest.raises(UserError, match="kernel_size"):
        config.parse_section(cnn.Params, {**section, "kernel_size": [3, 2, 1]}, "experiments.x.model")
    with pytest.raises(UserError, match="model.strides"):
        cnn.build(params(strides=(0, 1)), SPEC)


def test_min_pooling_takes_the_smallest_value_and_survives_save_and_load(tmp_path):
    model = cnn.build(params(pooling="min", pool_every=1, filters=(2,)), SPEC)
    (pool,) = [layer for layer in model.layers if isinstance(layer, MinPooling2D)]
    grid = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    assert np.asarray(pool(grid))[0, :, :, 0].tolist() == [[0, 2], [8, 10]]
    x = np.random.default_rng(0).random((3, 8, 8, 1)).astype("float32")
    path = tmp_path / "cnn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer(pool.name), MinPooling2D)
    assert np.allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# ---------------------------------------------------------------------------- `auto` knobs


@pytest.mark.parametrize(
    "steps, momentum",
    [
        (None, 0.99),
        (7, 0.5),
        (8, 0.5),
        (10, 0.6),
        (19, 0.789),
        (33, 0.879),
        (37, 0.892),
        (41, 0.902),
        (400, 0.99),
        (438, 0.99),
    ],
)
def test_batch_norm_momentum_averages_a_quarter_epoch_between_half_and_kerass(steps, momentum):
    assert cnn.bn_momentum(steps) == momentum


@pytest.mark.parametrize(
    "shape, blocks, head",
    [
        ((4, 4, 64), 0, "flatten"),
        ((8, 8, 64), 0, "average"),
        ((32, 32, 64), 2, "average"),
        ((112, 112, 3), 4, "average"),
        ((9, 9, 8), 1, "average"),
    ],
)
def test_extra_blocks_halve_a_large_map_to_8x8_and_the_head_flattens_only_a_small_one(shape, blocks, head):
    assert cnn.extra_blocks(shape) == blocks
    assert cnn.head(shape) == head


def copied_block() -> cnn.Params:
    """cnn-same's model block as users copied it (068cd6e): no `auto` knob written."""
    from pipeline import config

    block = {"filters": [32, 64], "kernel_size": 3, "strides": 1, "padding": "same", "activation": "relu",
             "batch_norm": True, "pooling": "max", "pool_size": 2, "pool_every": 2, "dropout": 0.3,
             "dense_units": 128}  # fmt: skip
    return config.parse_section(cnn.Params, block, "experiments.x.model")


def test_the_copied_block_keeps_digits_network_and_adapts_to_photos():
    digits = cnn.resolve(copied_block(), Spec((8, 8, 1), 10, 0, steps_per_epoch=37))
    assert digits == dataclasses.replace(
        copied_block(), extra_blocks=0, head="flatten", augment=None, bn_momentum=0.892
    )
    photos = cnn.resolve(copied_block(), Spec((64, 64, 3), 10, 0, steps_per_epoch=7))
    assert (photos.extra_blocks, photos.head, photos.bn_momentum) == (2, "average", 0.5)
    assert photos.augment == cnn.PHOTO_AUGMENT
    model = cnn.build(photos, Spec((64, 64, 3), 10, 0))
    assert model.get_layer("conv4").output.shape[1:] == (8, 8, 256)  # 32 → 16 → 8, filters doubled
    assert isinstance(model.get_layer("average"), keras.layers.GlobalAveragePooling2D)
    assert model.get_layer("bn1").momentum == 0.5
    assert cnn.resolve(photos, Spec((64, 64, 3), 10, 0, steps_per_epoch=500)) == photos  # chosen once


def test_family_cnn_alone_is_a_complete_model_block():
    from pipeline import config

    default = config.parse_section(cnn.Params, {}, "experiments.x.model")
    resolved = cnn.resolve(default, Spec((64, 64, 3), 10, 0, steps_per_epoch=50))
    assert (resolved.filters, resolved.extra_blocks, resolved.head) == ((32, 64, 128), 0, "average")
    assert cnn.build(default, Spec((64, 64, 1), 3, 0)).output.shape[1:] == (3,)


def test_written_knobs_are_kept():
    block = params(head="average", extra_blocks=1, bn_momentum=0.95, augment=None)
    assert cnn.resolve(block, Spec((64, 64, 3), 10, 0, steps_per_epoch=8)) == block
