"""Safe loading (pipeline/training/loading.py): predict and the gate load only what the pipeline
logs; a pickled model registered as champion never runs; tampered code is refused."""

import json
import os
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline import data
from pipeline.errors import UserError
from pipeline.models import pca
from pipeline.serving import follow, scoring
from pipeline.specs import AnomalySpec
from pipeline.training import artifacts, gate, loading
from tests.helpers import (
    CHAMPION_SETTINGS,
    REPO,
    aliases,
    assert_one_line_error,
    cli_in_process,
    edit_params,
    loaded,
    relocate_project,
    run_cli,
    train,
)

QUICK = CHAMPION_SETTINGS  # a version trained as conftest's `champions` were


class Trap(mlflow.pyfunc.PythonModel):
    """A model whose unpickling writes a file: what a hostile registered model could do instead."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "the pickle ran"))

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        return model_input


def register_trap(marker: Path) -> str:
    """A cloudpickle pyfunc registered as digits-classifier@champion; returns its version."""
    with mlflow.start_run():
        # explicit requirements: inferring them would load (and so run) the model in a subprocess
        signature = mlflow.models.infer_signature(np.zeros((1, 8, 8, 1), np.float32), np.zeros((1, 10)))
        info = mlflow.pyfunc.log_model(
            name="model", python_model=Trap(str(marker)), signature=signature, pip_requirements=["mlflow"]
        )
    version = mlflow.register_model(info.model_uri, "digits-classifier").version
    mlflow.MlflowClient().set_registered_model_alias("digits-classifier", "champion", version)
    assert not marker.exists()
    return str(version)


def image_folder(root: Path) -> Path:
    x, y = loaded(data.load("digits"), "test")
    for i in range(3):
        (root / str(y[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray((x[i, ..., 0] * 255).astype(np.uint8)).save(root / str(y[i]) / f"{i}.png")
    return root


@pytest.mark.integration  # predict in a real process, then the gate in this one
def test_a_pickled_champion_never_runs(project, tmp_path, capsys):
    """predict in a real process (refused before TensorFlow is imported); the gate's training in
    this one, which already has TensorFlow."""
    marker = tmp_path / "pwned"
    version = register_trap(marker)
    folder = image_folder(tmp_path / "images")
    refused = run_cli(project, "predict", "--input", str(folder), "--output", str(tmp_path / "out.csv"))
    assert_one_line_error(refused, "python_function with a pickled python_model (cloudpickle)", "is refused")
    # the gate meets the same champion: refused in one line, champion untouched
    trained = cli_in_process(project, capsys, "train", "cnn-same", "--quiet", *(f"--set={o}" for o in QUICK))
    assert_one_line_error(trained, f"the gate cannot score champion v{version} of digits-classifier")
    assert not marker.exists() and not (tmp_path / "out.csv").exists()
    champion = mlflow.MlflowClient().get_model_version_by_alias("digits-classifier", "champion")
    assert str(champion.version) == version


@pytest.mark.parametrize(
    "flag, env, missing", [(True, "0", "PIPELINE_ALLOW_UNSAFE_MODELS=1"), (False, "1", "--allow")]
)
def test_the_opt_in_needs_both_the_flag_and_the_variable(project, tmp_path, capsys, flag, env, missing):
    marker = tmp_path / "pwned"
    register_trap(marker)
    folder = image_folder(tmp_path / "images")
    args = ["predict", "--input", str(folder), *(["--allow-unsafe-model"] if flag else [])]
    refused = cli_in_process(project, capsys, *args, env={"PIPELINE_ALLOW_UNSAFE_MODELS": env})
    assert_one_line_error(refused, missing)
    assert not marker.exists()


def test_with_both_the_unsafe_model_is_really_loaded(project, tmp_path, capsys):
    marker = tmp_path / "pwned"
    register_trap(marker)
    folder = image_folder(tmp_path / "images")
    cli_in_process(  # in this process: the pickle runs here, as it would in the user's
        project,
        capsys,
        "predict",
        "--input",
        str(folder),
        "--allow-unsafe-model",
        env={"PIPELINE_ALLOW_UNSAFE_MODELS": "1"},
    )
    assert marker.read_text() == "the pickle ran"  # what the user opted in to


def logged_files(uri: str) -> set[str]:
    folder = Path(mlflow.artifacts.download_artifacts(uri))
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


# the airline model's seasonal MA(1) over 52 weeks is slow to fit, and every forecast window
# builds and filters a state-space model: loading is what is tested here, on about 70 weeks each
# of validation and test instead of 680
SMALL_SARIMAX = ["model.seasonal_order=[0, 1, 0, 52]"]
SHORT_CO2 = {"val_fraction": 0.03, "test_fraction": 0.03}


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment, form, overrides",
    [("naive", "code", []), ("sarimax", "code", SMALL_SARIMAX), ("svc", "sklearn", []), ("mlp", "keras", [])],
)
def test_logged_models_load_back_and_score_as_their_run(project, experiment, form, overrides):
    if experiment == "sarimax":
        edit_params(project, lambda params: params["data"]["co2"].update(SHORT_CO2))
    outcome = train(experiment, QUICK + overrides)
    uri = f"runs:/{outcome.run_id}/model"
    model = loading.load(uri)
    assert model.form == form
    assert not any(name.endswith((".pkl", ".pickle")) for name in logged_files(uri))  # nothing pickled
    plan = outcome.plan
    metrics, found = plan.objective.evaluate(model.arrays, outcome.splits, plan.objective_params)
    headline = plan.objective.headline
    assert metrics[headline] == outcome.metrics[headline]  # the same model, serialized without pickle
    assert model.metadata["data_hash"] == data.read_manifest(plan.exp.dataset).sha256


@pytest.mark.integration  # trains pca through the pipeline
def test_pca_answers_its_codes(project):
    outcome = train("pca")
    model = loading.load(f"runs:/{outcome.run_id}/model")
    assert model.form == "code" and "artifacts/pca.skops" in logged_files(f"runs:/{outcome.run_id}/model")
    x = outcome.splits.x_test.read(slice(4))
    codes = model.pyfunc().predict(x)
    assert codes.shape == (4, outcome.plan.objective_params.latent_dim)
    spec = AnomalySpec(x.shape[1:], codes.shape[1], outcome.plan.train.seed)
    refit = pca.build(outcome.plan.model, spec).fit(outcome.splits.x_train.load())  # the same fit again
    assert np.allclose(codes, refit.transform(x), atol=1e-6)


def local_copy(uri: str, to: Path) -> Path:
    shutil.copytree(mlflow.artifacts.download_artifacts(uri), to)
    return to


def rewrite_mlmodel(folder: Path, change) -> None:
    path = folder / "MLmodel"
    conf = yaml.safe_load(path.read_text())
    change(conf)
    path.write_text(yaml.safe_dump(conf))


@pytest.mark.integration  # trains and logs naive through the pipeline
def test_tampered_code_is_refused_before_it_runs(project, tmp_path):
    outcome = train("naive", QUICK)
    original = local_copy(f"runs:/{outcome.run_id}/model", tmp_path / "model")
    assert np.asarray(loading.load(str(original)).pyfunc().predict(outcome.splits.x_test[:2])).shape == (2, 4)

    edited = shutil.copytree(original, tmp_path / "edited")
    code = edited / "forecast_baselines.py"
    code.write_text(code.read_text() + "\nopen('pwned', 'w')\n")
    with pytest.raises(UserError, match="is no released version of pipeline.models.forecast_baselines"):
        loading.load(str(edited)).pyfunc()
    # even with the metadata's hash rewritten to match: the released versions decide
    record = {"module": "pipeline.models.forecast_baselines", "sha256": artifacts.sha256(code)}
    rewrite_mlmodel(edited, lambda c: c["metadata"]["pipeline"]["code"].update({code.name: record}))
    with pytest.raises(UserError, match="the project never shipped it"):
        loading.load(str(edited)).pyfunc()

    extra = shutil.copytree(original, tmp_path / "extra")
    (extra / "helper.py").write_text("print('hello')\n")
    with pytest.raises(UserError, match="code file helper.py has no sha256"):
        loading.load(str(extra)).pyfunc()

    linked = shutil.copytree(original, tmp_path / "linked")
    (linked / "requirements.txt").unlink()
    (linked / "requirements.txt").symlink_to("/etc/passwd")
    with pytest.raises(UserError, match="symlink"):
        loading.load(str(linked))

    swapped = shutil.copytree(original, tmp_path / "swapped")
    rewrite_mlmodel(swapped, lambda c: c["flavors"]["python_function"].update(loader_module="mlflow.sklearn"))
    with pytest.raises(
        UserError, match=r"python_function \(loader mlflow.sklearn\) is not one the pipeline logs"
    ):
        loading.load(str(swapped))
    assert not Path("pwned").exists() and not (project / "pwned").exists()


def test_keras_safe_mode_refuses_a_lambda_layer(project):
    import keras

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    with mlflow.start_run():
        info = mlflow.keras.log_model(model, name="model", pip_requirements=["keras"])
    loaded = loading.load(info.model_uri)
    assert loaded.form == "keras"
    with pytest.raises(UserError, match="safe mode"):
        loaded.predict(np.zeros((1, 3), np.float32))


def test_a_pickle_format_scikit_learn_model_is_refused(project):
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            fitted, name="model", serialization_format="cloudpickle", pip_requirements=["scikit-learn"]
        )
    with pytest.raises(
        UserError, match=r"flavor sklearn \(cloudpickle format\) is not one the pipeline logs"
    ):
        loading.load(info.model_uri)


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment, model_name, metric",
    [("cnn-same", "digits-classifier", "test_accuracy"), ("lstm", "co2-forecaster", "test_rmse")],
)
def test_the_gate_scores_the_served_champion_exactly_as_its_run_did(
    project, champions, experiment, model_name, metric
):
    relocate_project(champions, project)  # v1 of each, trained with QUICK and promoted, gates open
    assert aliases(model_name)["champion"] == "1" and loading.load(f"models:/{model_name}/1").form == "served"
    client = mlflow.MlflowClient()
    recorded = client.get_run(client.get_model_version(model_name, "1").run_id).data.metrics[metric]
    second = train(experiment, [*QUICK, "train.seed=7"])
    # the champion loaded back and re-evaluated by the gate gives its run's number bit for bit
    assert gate.score(model_name, "1", second.plan, second.splits) == recorded
    assert second.decision.champion == recorded and second.decision.champion_version == "1"
    assert os.environ.get("PIPELINE_ALLOW_UNSAFE_MODELS") is None


# --------------------------------------------------------------------------- earlier releases

# digits-classifier as commit 068cd6e registered it (cnn-same, filters [4, 8], dense 16, 10 epochs):
# its MLmodel, logged code files and .keras file, byte for byte
EARLIER = REPO / "tests" / "fixtures" / "digits-classifier-068cd6e"


def test_every_logged_module_is_a_released_version():
    released = loading.released_code()
    for module, path in loading.trusted_code().items():
        shown = path.relative_to(REPO).as_posix()
        assert artifacts.sha256(path) in released.get(module, ()), (
            f"{shown} changed: models logging it must keep loading once released, so append its hash: "
            f"sha256sum {shown} >> {loading.RELEASED.relative_to(REPO).as_posix()}"
        )


def upgraded(monkeypatch, folder: Path) -> None:
    """The installed model code as after an upgrade that changed every logged module (a comment
    added): a model's logged copies are then an earlier release's, not the installed files."""
    folder.mkdir()
    changed = {}
    for module, path in loading.trusted_code().items():
        changed[module] = folder / path.name
        changed[module].write_text(path.read_text() + "# changed by an upgrade\n")
    monkeypatch.setattr(loading, "trusted_code", lambda: changed)


def register_earlier(root: Path) -> str:
    """The fixture registered as digits-classifier v1, champion; returns its URI."""
    source = shutil.copytree(EARLIER, root / "digits-classifier-068cd6e")
    client = mlflow.MlflowClient()
    client.create_registered_model("digits-classifier")
    version = client.create_model_version("digits-classifier", str(source)).version
    client.set_registered_model_alias("digits-classifier", "champion", version)
    return f"models:/digits-classifier/{version}"


def test_a_model_of_an_earlier_release_loads_predicts_and_serves(project, monkeypatch, tmp_path):
    upgraded(monkeypatch, tmp_path / "installed")
    uri = register_earlier(tmp_path)
    loaded = loading.load(loading.pinned("models:/digits-classifier@champion"))
    assert loaded.form == "served" and loaded.uri == uri
    x, y = data.load("digits").examples("test", np.arange(60))
    x = x.load()
    classes = loaded.predict(x).argmax(axis=1)  # arrays: its Keras model in safe mode
    assert np.mean(classes == y) > 0.7  # it scored 0.88 on the whole test split when logged
    answers = loaded.pyfunc().predict([{"pixels": image.ravel().tolist()} for image in x[:8]])
    assert [a["class"] for a in answers] == [loaded.class_names[c] for c in classes[:8]]
    # served as the server serves it: loaded by version, warmed on its own input example, scored
    served = follow.load_version("digits-classifier", "1", follow.Settings("digits-classifier"))
    body = json.dumps({"dataframe_records": [{"pixels": image.ravel().tolist()} for image in x[:8]]})
    got = json.loads(scoring.score(served, body.encode(), scoring.Limits()))
    assert [a["class"] for a in got["predictions"]] == [a["class"] for a in answers]


def test_an_altered_or_unreleased_copy_of_a_release_is_refused(project, monkeypatch, tmp_path):
    upgraded(monkeypatch, tmp_path / "installed")
    altered = shutil.copytree(EARLIER, tmp_path / "altered")
    rules = altered / "artifacts" / "images.py"
    rules.write_text(rules.read_text() + "# one line more\n")
    record = {"artifacts/images.py": {"module": "pipeline.images", "sha256": artifacts.sha256(rules)}}
    rewrite_mlmodel(altered, lambda c: c["metadata"]["pipeline"]["code"].update(record))  # it agrees
    with pytest.raises(UserError, match=r"artifacts/images.py .* is no released version of pipeline.images"):
        loading.load(str(altered)).pyfunc()
    # the released versions are what keeps the earlier model loading: without them it is refused
    empty = tmp_path / "released.sha256"
    empty.write_text("# nothing released\n")
    monkeypatch.setattr(loading, "RELEASED", empty)
    with pytest.raises(UserError, match="the project never shipped it"):
        loading.load(str(EARLIER)).pyfunc()
