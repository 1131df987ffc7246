"""The three transfer experiments end to end (1-2 epochs), the saved model offline, and bad input."""

import shutil

import keras
import mlflow
import numpy as np
import pytest
import tensorflow_hub as hub

from pipeline import cli, data
from pipeline.training import tracking
from tests.helpers import cli_in_process, save_raw_module

QUICK = [
    "--quiet",
    "--set",
    "train.epochs=2",
    "--set",
    "train.fine_tune_epochs=1",
    "--set",
    "objective.labels_per_class=3",
]


def runs_of(task="digits-transfer"):
    tracking.configure()  # this test's store, even when no run was started in it
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(task)
    return client.search_runs([experiment.experiment_id]) if experiment else []


def hub_weights(model) -> dict:
    return {w.name: w.numpy() for w in model.get_layer("hub_module").weights}


def published_weights(root) -> dict:
    module = hub.load(str(root / "models/hub/digits-0-4"))
    return {hub_module_name(v): v.numpy() for v in module.variables}


def hub_module_name(variable) -> str:
    from pipeline.models.hub import _variable_name

    return _variable_name(variable)


@pytest.mark.slow
@pytest.mark.parametrize("mode, epochs", [("feature", 2), ("finetune", 3), ("scratch", 2)])
def test_experiment_end_to_end(transfer_project, mode, epochs):
    assert cli.main(["train", f"transfer-{mode}", *QUICK]) == 0
    (run,) = runs_of()
    assert run.info.status == "FINISHED" and run.info.run_name == f"transfer-{mode}"
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert tags["transfer_mode"] == mode and tags["hub_handle"] == "models/hub/digits-0-4"
    assert tags["model_family"] == "transfer" and tags["objective"] == "few_shot"
    assert params["objective.labels_per_class"] == "3" and params["data.train_examples"] == "15"
    assert params["needs"] == "['pretrain']"
    assert 0 <= metrics["test_accuracy"] <= 1 and metrics["test_loss"] > 0
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == list(range(epochs))  # fine-tuning continues the same curve

    model = mlflow.keras.load_model(f"runs:/{run.info.run_id}/model")
    published = published_weights(transfer_project)
    if mode == "scratch":
        assert "hub_module" not in [layer.name for layer in model.layers]
        kernel = model.get_layer("trunk").get_layer("conv1").kernel.numpy()
        assert not np.allclose(kernel, published["conv1_kernel"])  # random init, not the module
    else:
        weights = hub_weights(model)
        assert weights.keys() == published.keys()
        tuned = {name for name in weights if not np.array_equal(weights[name], published[name])}
        # frozen: the module exactly as published; fine-tuned: trainable weights moved, and batch
        # norm's statistics kept (the module runs in inference mode)
        assert tuned == (set() if mode == "feature" else {n for n in weights if "moving" not in n})


@pytest.mark.slow
def test_frozen_features_are_computed_once_and_train_the_same_head(transfer_project, monkeypatch):
    from pipeline import layout
    from pipeline.models import transfer

    assert cli.main(["train", "transfer-feature", *QUICK]) == 0
    cached = {p: p.stat().st_mtime_ns for p in layout.features().glob("*.npy")}
    assert len(cached) == 2  # the training and validation splits' features
    assert cli.main(["train", "transfer-feature", *QUICK]) == 0
    assert {p: p.stat().st_mtime_ns for p in layout.features().glob("*.npy")} == cached  # read back
    monkeypatch.setattr(transfer, "features_once", lambda params: False)  # the module in the loop
    assert cli.main(["train", "transfer-feature", *QUICK]) == 0
    cached_run, again, in_loop = sorted(runs_of(), key=lambda r: r.info.start_time)
    assert cached_run.data.metrics["test_accuracy"] == again.data.metrics["test_accuracy"]
    for name in ("test_accuracy", "test_loss", "val_loss", "loss"):
        assert in_loop.data.metrics[name] == pytest.approx(cached_run.data.metrics[name], rel=1e-4), name
    model = mlflow.keras.load_model(f"runs:/{cached_run.info.run_id}/model")  # the whole model is served
    assert "hub_module" in [layer.name for layer in model.layers] and model.input_shape == (None, 8, 8, 1)


@pytest.mark.slow
def test_logged_model_predicts_without_the_hub_directory(transfer_project):
    assert cli.main(["train", "transfer-finetune", *QUICK]) == 0
    (run,) = runs_of()
    shutil.rmtree(transfer_project / "models")  # the module the model was built from is gone
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    x = data.load("digits").examples("test")[0].read(slice(4))
    proba = np.asarray(model.predict(x))
    assert proba.shape == (4, 5) and np.allclose(proba.sum(axis=1), 1, atol=1e-3)


@pytest.mark.slow
def test_inputs_are_resized_and_converted_to_what_the_module_expects(transfer_project):
    save_raw_module(transfer_project / "rgb-module", input_shape=(16, 16, 3))
    changes = ["model.hub_handle=rgb-module", "model.image_size=[16, 16]", "model.channels=3"]
    args = [arg for change in changes for arg in ("--set", change)]
    assert cli.main(["train", "transfer-feature", *QUICK, *args]) == 0
    (run,) = runs_of()
    model = mlflow.keras.load_model(f"runs:/{run.info.run_id}/model")
    assert model.get_layer("resize").output.shape[1:] == (16, 16, 1)
    assert model.get_layer("to_channels").output.shape[1:] == (16, 16, 3)
    assert run.data.tags["hub_handle"] == "rgb-module"


def test_missing_module_is_one_line_and_names_make_train_pretrain(project, capsys):
    # in this process: the check needs the family, and so TensorFlow (tests/test_cli.py runs one
    # such error in a real process)
    result = cli_in_process(project, capsys, "train", "transfer-feature", "--quiet")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: hub_handle 'models/hub/digits-0-4': no such directory")


@pytest.mark.parametrize(
    "handle, make, problem",
    [
        ("not-a-model", lambda p: (p / "not-a-model").mkdir(), "not a SavedModel"),
        ("maps", lambda p: save_raw_module(p / "maps", rank=4), "not a feature vector"),
        (
            "big",
            lambda p: save_raw_module(p / "big", input_shape=(16, 16, 3)),
            "rejects images of shape (8, 8, 1)",
        ),
    ],
)
def test_bad_modules_start_no_run(project, capsys, handle, make, problem):
    make(project)
    assert cli.main(["train", "transfer-feature", "--set", f"model.hub_handle={handle}"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: hub_handle '{handle}'") and problem in error
    assert runs_of() == []  # checked before the run starts: nothing RUNNING, nothing FAILED


def test_scratch_needs_an_architecture(project):
    save_raw_module(project / "raw")
    assert cli.main(["train", "transfer-scratch", "--set", "model.hub_handle=raw"]) == 2
    assert runs_of() == []


# a keras.applications backbone in place of the hub module: MobileNetV3Small at 32x32 (the
# digits resized, grey repeated to RGB), built offline
BACKBONE = [
    *("--set", "model.hub_handle=null", "--set", "model.backbone=mobilenet_v3_small"),
    *("--set", "model.image_size=[32, 32]", "--set", "model.channels=null"),
]


@pytest.mark.integration
def test_a_backbone_run_logs_it_and_computes_its_frozen_features_once(project):
    from pipeline import layout

    random = [*BACKBONE, "--set", "model.weights=null"]
    assert cli.main(["train", "transfer-feature", *QUICK, *random]) == 0
    cached = {p: p.stat().st_mtime_ns for p in layout.features().glob("*.npy")}
    assert len(cached) == 2  # the training and validation splits' features
    assert cli.main(["train", "transfer-feature", *QUICK, *random]) == 0
    assert {p: p.stat().st_mtime_ns for p in layout.features().glob("*.npy")} == cached  # read back
    first, again = sorted(runs_of(), key=lambda r: r.info.start_time)
    assert first.data.metrics["test_accuracy"] == again.data.metrics["test_accuracy"]
    tags, params = first.data.tags, first.data.params
    assert tags["backbone"] == "mobilenet_v3_small" and tags["transfer_mode"] == "feature"
    assert "hub_handle" not in tags and params["model.hub_handle"] == "None"
    assert params["model.backbone"] == "mobilenet_v3_small" and params["model.weights"] == "None"
    assert params["model.image_size"] == "[32, 32]" and params["model.channels"] == "3"  # resolved
    model = mlflow.keras.load_model(f"runs:/{first.info.run_id}/model")  # the whole model is logged
    assert model.input_shape == (None, 8, 8, 1) and not model.get_layer("backbone").trainable


@pytest.mark.integration
def test_a_backbone_fine_tunes_its_weights_and_keeps_batch_norm(project):
    from pipeline.models import backbones

    start = backbones.network("mobilenet_v3_small", (32, 32, 3), None)
    start.save_weights(project / "start.weights.h5")
    weights = [*BACKBONE, "--set", "model.weights=start.weights.h5"]
    assert cli.main(["train", "transfer-finetune", *QUICK, *weights]) == 0
    (run,) = runs_of()
    assert run.data.params["model.weights"] == "start.weights.h5"
    tuned = mlflow.keras.load_model(f"runs:/{run.info.run_id}/model").get_layer("backbone")
    changed = {
        layer.name
        for layer, before in zip(tuned.layers, start.layers, strict=True)
        for a, b in zip(layer.weights, before.weights, strict=True)
        if not np.array_equal(a.numpy(), b.numpy())
    }
    norms = {layer.name for layer in tuned.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert changed and not changed & norms  # the convolutions trained, batch norm as loaded


def offline(fname=None, origin=None, **kwargs):  # what Keras' download raises without a network
    raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")


@pytest.mark.parametrize(
    "weights, problem",
    [
        ("imagenet", "error: model.weights imagenet: cannot download mobilenet_v3_small's ImageNet weights"),
        ("mine.weights.h5", "error: model.weights 'mine.weights.h5': no such file"),
    ],
)
def test_backbone_weights_that_cannot_be_had_start_no_run(project, capsys, monkeypatch, weights, problem):
    from keras.src.utils import file_utils

    monkeypatch.setattr(file_utils, "get_file", offline)  # tests never download
    result = cli_in_process(
        project, capsys, "train", "transfer-feature", *BACKBONE, "--set", f"model.weights={weights}"
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(problem)
    assert runs_of() == []  # checked before the run starts


def test_a_sandboxed_transfer_run_reads_the_module_a_sandboxed_pretrain_published(project, tmp_path):
    """Only when that module is there: else the handle's own (the project's module, a URL)."""
    from pipeline import config
    from pipeline.models import transfer
    from pipeline.training.plan import make_plan

    params = make_plan(config.load_params(), "transfer-feature").model
    assert transfer.FAMILY.sandboxed(params, tmp_path) == params  # nothing published in the sandbox
    (tmp_path / "models" / "hub" / "digits-0-4").mkdir(parents=True)
    moved = transfer.FAMILY.sandboxed(params, tmp_path)
    assert moved.hub_handle == str(tmp_path / "models" / "hub" / "digits-0-4")
    assert (moved.mode, moved.image_size, moved.channels, moved.weights) == (
        params.mode,
        params.image_size,
        params.channels,
        None,
    )
