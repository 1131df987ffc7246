"""keras.applications backbones for the transfer family, built offline (weights=None or a file
written here): the params they resolve, the inputs each network gets, frozen and trainable
weights, the weights file's checks, the one line an offline `imagenet` download gives, the
params.yaml recipe, and a backbone trained on one folder beating the same network from scratch on
another."""

import dataclasses
import json
import typing
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from pipeline.config import check_type
from pipeline.errors import UserError
from pipeline.models import backbones, schemas, transfer
from pipeline.specs import ClassifierSpec
from pipeline.training import keras_loop
from tests.helpers import REPO

SMALL = {"backbone": "mobilenet_v3_small", "weights": None, "image_size": [32, 32]}


def params(**model) -> schemas.TransferParams:
    return check_type({"mode": "feature", "head_dropout": 0.2, **model}, schemas.TransferParams, "model")


def test_every_backbone_params_yaml_offers_is_built_by_keras():
    assert set(typing.get_args(schemas.Backbone)) == set(backbones.NETWORKS)


def test_a_backbone_resolves_its_input_and_weights():
    resolved = params(backbone="efficientnet_b0")
    assert (resolved.image_size, resolved.channels, resolved.weights) == ((224, 224), 3, "imagenet")
    assert params(backbone="resnet50", image_size=[64, 96]).image_size == (64, 96)
    assert params(backbone="resnet50", mode="scratch", weights="w.weights.h5").weights is None  # random
    hub = params(hub_handle="models/hub/digits-0-4", image_size=[8, 8], channels=1)
    assert (hub.backbone, hub.weights) == (None, None)
    for resolved in (hub, params(backbone="resnet50", mode="scratch")):  # resolving twice changes nothing
        assert dataclasses.replace(resolved) == resolved


@pytest.mark.parametrize(
    "model, problem",
    [
        ({}, "exactly one of hub_handle"),
        ({"hub_handle": "m", "backbone": "resnet50"}, "exactly one of hub_handle"),
        ({"hub_handle": "m"}, "model.image_size and model.channels: required with hub_handle"),
        ({"hub_handle": "m", "image_size": [8, 8], "channels": 1, "weights": "w.keras"}, "backbone only"),
        ({"backbone": "resnet50", "channels": 1}, "resnet50 takes 3"),
    ],
)
def test_conflicting_keys_are_one_line(model, problem):
    with pytest.raises(UserError, match=problem) as error:
        params(**model)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("mobilenet_v3_small", lambda rgb: 255 * rgb),  # rescales inside the network
        ("efficientnet_b0", lambda rgb: 255 * rgb),
        ("mobilenet_v2", lambda rgb: 2 * rgb - 1),
        ("resnet50", lambda rgb: 255 * rgb[..., ::-1] - np.array([103.939, 116.779, 123.68])),  # caffe: BGR
    ],
)
def test_images_in_0_1_reach_each_network_as_its_weights_expect(name, expected):
    images = keras.Input((4, 4, 3))
    model = keras.Model(images, backbones.preprocessed(images, name))
    rgb = np.random.default_rng(0).random((2, 4, 4, 3), dtype=np.float32)
    assert np.allclose(model.predict(rgb, verbose=0), expected(rgb), atol=1e-4)


@pytest.fixture(scope="module")
def models():
    """A transfer model per mode on grey 8x8 inputs (resized to 32x32, repeated to RGB)."""
    built = {
        mode: transfer.build(params(**SMALL, mode=mode), ClassifierSpec((8, 8, 1), 5, 0))
        for mode in ("feature", "finetune", "scratch")
    }
    transfer.unfreeze(built["finetune"], params(**SMALL, mode="finetune"))  # its second phase
    return built


@pytest.mark.integration  # builds MobileNetV3 two or three times (seconds)
def test_frozen_fine_tuned_and_scratch_train_what_they_should(models):
    head = {"probabilities/kernel", "probabilities/bias"}
    assert {w.path for w in models["feature"].trainable_weights} == head
    network = models["finetune"].get_layer(backbones.BACKBONE)
    norms = {
        w.path
        for layer in network.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for w in layer.weights
    }
    tuned = {w.path for w in models["finetune"].trainable_weights}
    assert head < tuned and not tuned & norms  # batch norm stays in inference mode
    assert len(tuned) == len(models["finetune"].weights) - len(norms)
    assert len(models["scratch"].trainable_weights) > len(tuned)  # batch norm's scale and offset too


@pytest.mark.integration  # builds MobileNetV3 two or three times (seconds)
def test_the_model_takes_the_dataset_images_and_loads_with_keras_alone(models, tmp_path):
    model = models["feature"]
    assert model.input_shape == (None, 8, 8, 1) and model.output_shape == (None, 5)
    assert model.get_layer("to_channels").output.shape[1:] == (32, 32, 3)
    model.save(tmp_path / "model.keras")
    config = zipfile.ZipFile(tmp_path / "model.keras").read("config.json").decode()
    assert "pipeline" not in json.dumps(json.loads(config))  # no custom layer: a server needs only Keras
    again = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True, compile=False)
    x = np.random.default_rng(0).random((3, 8, 8, 1), dtype=np.float32)
    assert np.allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.integration  # builds MobileNetV3 two or three times (seconds)
def test_a_weights_file_is_loaded_and_one_of_another_network_is_one_line(project):
    saved = backbones.network("mobilenet_v3_small", (32, 32, 3), None)
    saved.save_weights(project / "small.weights.h5")
    loaded = backbones.network("mobilenet_v3_small", (32, 32, 3), "small.weights.h5")  # project-relative
    assert backbones.digest(loaded) == backbones.digest(saved)
    with pytest.raises(UserError, match="not mobilenet_v3_large's weights at image_size") as error:
        backbones.network("mobilenet_v3_large", (32, 32, 3), "small.weights.h5")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "name, make, problem",
    [
        ("gone.weights.h5", lambda path: None, "no such file"),
        ("link.weights.h5", lambda path: path.symlink_to(path.parent / "params.yaml"), "a symbolic link"),
        ("folder.keras", lambda path: path.mkdir(), "not a regular file"),
        ("weights.bin", lambda path: path.write_bytes(b"x"), "expected imagenet, null or a weights file"),
    ],
)
def test_a_weights_path_is_checked_before_keras_reads_it(project, name, make, problem):
    make(project / name)
    with pytest.raises(UserError, match=problem) as error:
        backbones.weights_file(name)
    assert str(error.value).startswith(f"model.weights '{name}'") and "\n" not in str(error.value)


@pytest.mark.integration  # builds every network once (seconds)
@pytest.mark.parametrize("name", list(backbones.NETWORKS))
def test_each_network_asks_keras_for_its_own_imagenet_file(monkeypatch, name):
    from keras.src.utils import file_utils

    asked = []

    def offline(fname=None, origin=None, **kwargs):
        asked.append(fname)
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(UserError, match="cannot download"):
        backbones.network(name, (224, 224, 3), "imagenet")
    (file,) = asked
    assert file.endswith(".h5") and "notop" in file.replace("_", "") and backbones.BACKBONE not in file


def test_imagenet_weights_that_cannot_be_downloaded_say_what_to_do(monkeypatch):
    from keras.src.utils import file_utils

    def offline(fname=None, origin=None, **kwargs):  # what Keras raises without a network
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(UserError) as error:
        backbones.network("mobilenet_v3_small", (32, 32, 3), "imagenet")
    line = str(error.value)
    assert line.startswith("model.weights imagenet: cannot download mobilenet_v3_small's ImageNet weights")
    assert ".keras/models" in line and "set model.weights to a weights file" in line and "\n" not in line


def uncomment(text: str, first: str) -> str:
    """`text` with the commented-out YAML entry that starts with the line `first` uncommented (up
    to the next comment at its level)."""
    lines = text.splitlines()
    start, indent = lines.index(first), first.index("#")
    end = start + 1
    while end < len(lines) and lines[end].startswith(first[: indent + 2] + " "):
        end += 1
    lines[start:end] = [line[:indent] + line[indent + 2 :] for line in lines[start:end]]
    return "\n".join(lines)


def test_the_commented_photos_recipe_in_params_yaml_is_valid(project):
    import yaml

    from pipeline.training.plan import make_plan

    text = uncomment(uncomment((REPO / "params.yaml").read_text(), "  # photos-mobilenet:"), "  # my-images:")
    plan = make_plan(yaml.safe_load(text), "photos-mobilenet")
    assert (plan.model.backbone, plan.model.weights, plan.model.mode) == (
        "mobilenet_v3_small",
        "imagenet",
        "feature",
    )
    assert plan.model.image_size == (224, 224) and plan.model.channels == 3
    assert plan.exp.dataset == "my-images" and plan.objective_params.labels_per_class is None


# ---- a backbone trained on one folder, used frozen on another: its weights file carries what it
# learnt. Stripes at six angles teach it orientation; the other folder's classes are the angles
# in between, with 5 labelled photos each.

SIDE = 32


def stripes(angle: float, rng) -> Image.Image:
    """A grating at `angle` degrees (± 5), of random frequency, phase and colours, with noise."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    turn = np.deg2rad(angle + rng.uniform(-5, 5))
    wave = np.sin(
        2 * np.pi * rng.uniform(1.5, 3) * (xx * np.cos(turn) + yy * np.sin(turn)) + rng.uniform(0, 6.3)
    )
    mix = (wave[..., None] + 1) / 2
    pixels = (
        mix * rng.integers(0, 256, 3)
        + (1 - mix) * rng.integers(0, 256, 3)
        + rng.normal(0, 12, (SIDE, SIDE, 3))
    )
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def stripes_folder(root, angles, per_class: int, seed: int):
    rng = np.random.default_rng(seed)
    for angle in angles:
        (root / f"{angle:03d}").mkdir(parents=True)
        for i in range(per_class):
            stripes(angle, rng).save(root / f"{angle:03d}" / f"{i:03d}.png")
    return root


def pretrained_weights(folder, path) -> None:
    """MobileNetV3Small trained from scratch on `folder` (plain Keras, as a user would elsewhere),
    its weights saved without the classifier."""
    files = sorted(folder.glob("*/*.png"))
    x = np.stack([np.asarray(Image.open(f), np.float32) for f in files])  # [0, 255]: what it takes
    classes = sorted({f.parent.name for f in files})
    y = np.array([classes.index(f.parent.name) for f in files])
    keras_loop.seed_everything(0)  # as the pipeline's runs: the same weights whatever ran before
    network = backbones.network("mobilenet_v3_small", (SIDE, SIDE, 3), None)
    for layer in network.layers:  # its momentum 0.999 needs thousands of steps to settle; these are few
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    images = keras.Input((SIDE, SIDE, 3))
    model = keras.Model(images, keras.layers.Dense(int(y.max()) + 1, activation="softmax")(network(images)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    keras_loop.build_state(model, (x[:1], y[:1]))  # else TensorFlow traces the train step twice
    model.fit(x, y, epochs=4, batch_size=32, shuffle=True, verbose=0)
    network.save_weights(path)


@pytest.mark.integration
def test_a_backbone_trained_on_another_folder_beats_the_same_network_from_scratch(project):
    from pipeline import cli
    from tests.helpers import edit_params
    from tests.models.test_transfer import runs_of

    pretrained_weights(
        stripes_folder(project / "source", range(0, 180, 30), 200, 1), project / "source.weights.h5"
    )
    stripes_folder(project / "data" / "raw" / "target", range(15, 180, 30), 60, 2)
    target = {"source": "image-folder", "path": "data/raw/target", "image_size": [SIDE, SIDE]}
    target |= {"color_mode": "rgb", "val_fraction": 0.2, "test_fraction": 0.3, "seed": 0}
    model = {"backbone": "mobilenet_v3_small", "image_size": [SIDE, SIDE], "head_dropout": 0.2}
    train = {"epochs": 30, "patience": 3, "learning_rate": 0.01}
    train |= {"fine_tune_learning_rate": 0.0001, "fine_tune_epochs": 0}
    runs = {
        "pretrained": ("feature", "source.weights.h5"),
        "scratch": ("scratch", None),
        "random": ("feature", None),
    }

    def change(params):
        params["data"]["target"] = target
        for name, (mode, weights) in runs.items():
            params["experiments"][name] = {
                "task": "stripes", "family": "transfer", "dataset": "target",
                "model": {**model, "mode": mode, "weights": weights}, "train": train,
                "objective": {"classes": [0, 1, 2, 3, 4, 5], "labels_per_class": 5},
            }  # fmt: skip

    edit_params(project, change)
    for name in runs:
        assert cli.main(["train", name, "--quiet"]) == 0
    accuracy = {r.info.run_name: r.data.metrics["test_accuracy"] for r in runs_of("stripes")}
    # learnt, not built in: the same network from scratch, or frozen with random weights, is near chance
    assert accuracy["pretrained"] >= max(accuracy["scratch"], accuracy["random"]) + 0.1, accuracy
