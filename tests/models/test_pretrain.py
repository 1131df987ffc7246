"""pretrain publishes its trunk as a TF Hub reusable SavedModel: publish → hub.load round trip."""

import json

import keras
import mlflow
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from pipeline import data
from pipeline.models import pretrain


@pytest.mark.slow
def test_published_module_is_the_trained_trunk(published_module, monkeypatch):
    root, module_dir = published_module["root"], published_module["module"]
    monkeypatch.setenv("PIPELINE_ROOT", str(root))
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
    model = mlflow.keras.load_model(f"runs:/{published_module['run_id']}/model")
    trunk = pretrain.trunk(model)
    x = data.load("digits").examples("test")[0].read(slice(6))

    module = hub.load(str(module_dir))  # the TF Hub API, no Keras involved
    features = module(tf.constant(x), training=False).numpy()
    assert features.shape == (6, trunk.output.shape[-1])
    assert np.allclose(features, trunk(x, training=False).numpy(), atol=1e-5)
    assert module(tf.constant(x), training=True).shape == features.shape  # both variants traced
    assert len(module.variables) == len(trunk.variables)
    assert len(module.trainable_variables) == len(trunk.trainable_variables) < len(module.variables)
    assert list(module.regularization_losses) == []


@pytest.mark.integration  # reads published_module (pretrain trained once)
def test_module_folder_documents_its_contract_and_is_logged(published_module):
    module_dir = published_module["module"]
    readme = (module_dir / "README.md").read_text()
    assert "(batch, 8, 8, 1)" in readme and "[0, 1]" in readme and "(batch, 1024)" in readme
    architecture = json.loads((module_dir / pretrain.ARCHITECTURE).read_text())
    rebuilt = keras.models.model_from_json(json.dumps(architecture))
    assert rebuilt.output.shape[-1] == 1024
    leftovers = [p.name for p in module_dir.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # the staging copy was swapped in, nothing half-written remains
    client = mlflow.MlflowClient(f"sqlite:///{published_module['root'] / 'mlruns' / 'mlflow.db'}")
    run = client.get_run(published_module["run_id"])
    assert run.data.tags["hub_module"] == "models/hub/digits-0-4"
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "hub_module")}
    assert {"hub_module/saved_model.pb", "hub_module/README.md", "hub_module/variables"} <= logged


def test_a_sandboxed_pretrain_publishes_under_the_sandbox_only(project, tmp_path):
    import dataclasses

    from pipeline import config
    from pipeline.training.plan import make_plan

    params = make_plan(config.load_params(), "pretrain").model
    moved = pretrain.FAMILY.sandboxed(params, tmp_path)
    assert params.publish_dir == "models/hub/digits-0-4"
    assert moved.publish_dir == str(tmp_path / "models" / "hub" / "digits-0-4")
    absolute = dataclasses.replace(params, publish_dir="/elsewhere/module")
    assert pretrain.FAMILY.sandboxed(absolute, tmp_path).publish_dir == str(tmp_path / "elsewhere" / "module")
