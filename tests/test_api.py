"""The Python API (pipeline/api.py, docs/api.md): what it returns, that importing it is cheap and
changes nothing, and that a call leaves the caller's process as it found it."""

import gc
import logging
import os
import signal
import subprocess
import sys

import pytest

import pipeline
from pipeline import api, startup
from pipeline.errors import UserError
from tests.helpers import point_at, relocate_project

SMALL = {"train.epochs": 1, "train.limit": 100}


def test_importing_pipeline_and_its_api_imports_nothing_heavy_and_changes_nothing():
    code = (
        "import os, signal, sys\n"
        "state = lambda: (dict(os.environ), [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)])\n"
        "before = state()\n"
        "import pipeline, pipeline.api\n"
        "from pipeline import train, example, runs, load_model, link\n"
        "heavy = {'tensorflow', 'keras', 'mlflow', 'pandas', 'matplotlib'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy), state() == before)"
    )
    env = {k: v for k, v in os.environ.items() if k not in startup.ENVIRONMENT}  # as a fresh kernel's
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[] True"


def test_a_name_outside_the_api_is_an_attribute_error_and_modules_still_import():
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        pipeline.trian  # noqa: B018
    from pipeline import config  # a module of the package, not an API name

    assert config.project_root


def environ() -> dict[str, str]:
    """The environment, less pytest's own note of the test's phase."""
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


def handler(signum, frame):  # a caller's own handler
    pass


@pytest.fixture
def caller_state(monkeypatch):
    """A notebook's process state that a call could change: TensorFlow, Keras and MLflow imported
    already (their own import-time settings are not the pipeline's), pyplot on another backend, a
    logger's level and filters, none of the variables the pipeline sets for a call, the collector's
    thresholds, a SIGTERM handler. Put back after the test whatever happens."""
    import keras  # noqa: F401
    import matplotlib
    import matplotlib.pyplot as plt
    import mlflow  # noqa: F401

    mlflow_logger, tensorflow_logger = logging.getLogger("mlflow"), logging.getLogger("tensorflow")
    saved = (
        mlflow_logger.level,
        gc.get_threshold(),
        signal.getsignal(signal.SIGTERM),
        matplotlib.get_backend(),
    )
    mlflow_logger.setLevel(logging.DEBUG)
    for name in (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_LOGGING_LEVEL",
        "VERBOSE",
        "PIPELINE_VERBOSE",
        *startup.ENVIRONMENT,
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLER_VARIABLE", "kept")
    gc.set_threshold(1234, 11, 12)
    signal.signal(signal.SIGTERM, handler)
    plt.switch_backend("svg")
    before = {
        "environ": environ(),
        "mlflow level": logging.DEBUG,
        "tensorflow filters": list(tensorflow_logger.filters),
        "gc": (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()),
        "SIGTERM": handler,
    }
    yield before
    mlflow_logger.setLevel(saved[0])
    gc.set_threshold(*saved[1])
    signal.signal(signal.SIGTERM, saved[2])
    plt.switch_backend(saved[3])


def assert_as_found(before: dict) -> None:
    import matplotlib.pyplot as plt

    assert environ() == before["environ"], "environment variables changed"
    assert logging.getLogger("mlflow").level == before["mlflow level"], "a logger's level changed"
    assert logging.getLogger("tensorflow").filters == before["tensorflow filters"], (
        "a logger's filters changed"
    )
    assert (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()) == before["gc"], "gc changed"
    assert signal.getsignal(signal.SIGTERM) is before["SIGTERM"], "the SIGTERM handler changed"
    assert plt.get_backend() == "svg" and not plt.get_fignums(), "pyplot changed"


def test_a_calls_settings_hold_for_the_call_only(caller_state):
    retracing = logging.makeLogRecord({"msg": "5 out of the last 5 calls triggered tf.function retracing"})

    @api.quietly
    def call(fail: bool):
        assert os.environ["MLFLOW_LOGGING_LEVEL"] == "WARNING" and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
        assert logging.getLogger("mlflow").level == logging.WARNING
        assert not logging.getLogger("tensorflow").filter(retracing)  # chatter off
        os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///elsewhere.db"  # as mlflow.set_tracking_uri does
        if fail:
            raise UserError("bad input")
        return "done"

    assert call(False) == "done"
    assert_as_found(caller_state)
    with pytest.raises(UserError):
        call(True)
    assert_as_found(caller_state)
    assert logging.getLogger("tensorflow").filter(retracing)


@pytest.mark.integration  # trains mlp in-process
def test_train_returns_the_run_its_headline_and_its_model_and_leaves_the_process_as_found(
    project, caller_state
):
    trained = pipeline.train("mlp", SMALL)
    assert_as_found(caller_state)

    import mlflow

    run = mlflow.get_run(trained.run_id)
    assert run.info.run_name == "mlp" and run.info.status == "FINISHED"
    assert (trained.task, trained.metric) == ("digits-classification", "test_accuracy")
    assert trained.value == run.data.metrics["test_accuracy"] == trained.metrics["test_accuracy"]
    experiment_id = run.info.experiment_id
    assert (
        trained.link == f"http://127.0.0.1:5000/#/experiments/{experiment_id}?workflowType=machine_learning"
    )
    x_test = trained.outcome.splits.x_test.read(slice(3))
    assert trained.model.predict(x_test).shape == (3, 10)
    assert "training_curves.png" in trained.figures()
    assert trained.figure("confusion_matrix.png")._repr_png_().startswith(b"\x89PNG")

    assert pipeline.runs("digits-classification").empty  # what `make report` shows: no sandboxed run
    table = pipeline.runs("digits-classification", sandbox=True)
    (row,) = table[table["run"] == "mlp"].to_dict("records")
    assert row["test_accuracy"] == round(trained.value, 4) and row["best"] == "★" and row["sandbox"] == "yes"
    assert table.attrs["headline"] == "test_accuracy"


def test_overrides_as_a_mapping_or_as_set_strings_and_the_short_keywords():
    assert api.as_overrides({"model.hidden_units": [8], "model.padding": "valid", "train.limit": None}) == [
        "model.hidden_units=[8]",
        'model.padding="valid"',
        "train.limit=null",
    ]
    assert api.as_overrides(["train.epochs=2"]) == ["train.epochs=2"]


def test_a_bad_name_is_one_line_before_anything_is_trained(project):
    with pytest.raises(UserError, match="unknown experiment 'cnn-sam'.*cnn-same"):
        pipeline.train("cnn-sam")
    with pytest.raises(UserError, match="no task 'nothing'"):
        pipeline.runs("nothing")
    with pytest.raises(UserError, match="unknown example 'conv'"):
        pipeline.example("conv")


def test_example_returns_its_numbers_and_the_figure_it_logged(project):
    import mlflow
    from matplotlib.figure import Figure

    worked = pipeline.example("conv-valid")
    assert worked.numbers["output"] == [[19, 25], [37, 43]]
    assert isinstance(worked.figure, Figure) and worked.figure.axes
    run = mlflow.get_run(worked.run_id)
    assert run.info.run_name == "conv-valid"
    assert "conv-valid.png" in {a.path for a in mlflow.MlflowClient().list_artifacts(worked.run_id)}
    assert worked.link.endswith(f"/#/experiments/{run.info.experiment_id}?workflowType=machine_learning")
    faster = pipeline.example("gradient-step", learning_rate=0.05)
    assert faster.numbers["learning_rate"] == 0.05


@pytest.mark.integration
def test_load_model_loads_a_registered_model_by_alias_through_the_safe_loader(champions, monkeypatch):
    point_at(monkeypatch, champions)
    champion = pipeline.load_model("digits-classifier")
    assert champion.form == "served" and champion.version
    x = champion.keras().input_shape[1:]
    import numpy as np

    assert champion.predict(np.zeros((2, *x), np.float32)).shape == (2, 10)
    with pytest.raises(UserError, match="'digits-classifier' has no version with alias 'nobody'"):
        pipeline.load_model("digits-classifier", alias="nobody")
    # what else a name may be: an experiment (its latest finished run), the run id the training line prints
    for name in ("cnn-same", champion.run_id[:8]):
        assert pipeline.load_model(name).run_id == champion.run_id


def registry_state(name: str) -> tuple[list[str], dict]:
    import mlflow

    client = mlflow.MlflowClient()
    versions = sorted(v.version for v in client.search_model_versions(f"name = '{name}'"))
    return versions, dict(client.get_registered_model(name).aliases)


@pytest.mark.integration
def test_an_api_training_is_sandboxed_and_the_production_row_stays(project, champions):
    """A registered experiment trained through the API: no version, no alias moved, tagged, left
    out of runs(task) (the production run stays its row) and shown beside it with sandbox=True."""
    import mlflow

    relocate_project(champions, project)
    before = registry_state("digits-classifier")
    production = pipeline.runs("digits-classification")
    trained = pipeline.train("cnn-same", SMALL)
    assert trained.outcome.model_version is None and trained.outcome.decision is None
    assert registry_state("digits-classifier") == before
    assert mlflow.get_run(trained.run_id).data.tags["sandbox"] == "true"
    assert pipeline.runs("digits-classification").equals(production)
    both = pipeline.runs("digits-classification", sandbox=True)
    assert sorted(zip(both["run"], both["sandbox"], strict=True)) == [("cnn-same", ""), ("cnn-same", "yes")]
    assert list(both["test_accuracy"]).count(production["test_accuracy"].iloc[0]) >= 1


@pytest.mark.integration
def test_fit_trains_your_model_as_the_experiments_family_would(project):
    import keras
    import mlflow
    from keras import layers

    model = keras.Sequential(
        [layers.Conv2D(4, 3, activation="relu"), layers.Flatten(), layers.Dense(10, "softmax")]
    )
    mine = pipeline.fit(model, "cnn-valid", name="tiny-cnn", epochs=2, limit=100)
    run = mlflow.get_run(mine.run_id)
    assert run.info.run_name == "tiny-cnn" and mine.task == "digits-classification"
    assert run.data.tags["model_family"] == "own" and run.data.tags["sandbox"] == "true"
    params = run.data.params
    assert (
        params["experiment"] == "cnn-valid"
        and params["family"] == "own"
        and params["train.optimizer"] == "adam"
    )
    assert params["data.train_examples"] == "100" and params["model.padding"] == "n/a"
    history = mlflow.MlflowClient().get_metric_history(mine.run_id, "val_accuracy")
    assert (
        len(history) == 2
        and "test_accuracy" in mine.metrics
        and mine.metrics["model_params"] == model.count_params()
    )
    assert {"training_curves.png", "confusion_matrix.png"} <= set(mine.figures())
    assert mine.model.predict(mine.outcome.splits.x_test.read(slice(0, 2))).shape == (2, 10)
    assert "tiny-cnn" in set(pipeline.runs("digits-classification", sandbox=True)["run"])

    compiled = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(10, "softmax")])
    compiled.compile(optimizer=keras.optimizers.SGD(0.05), loss="sparse_categorical_crossentropy")
    optimizer = compiled.optimizer
    fitted = pipeline.fit(compiled, "cnn-valid", name="sgd-linear", epochs=1, limit=100)
    assert compiled.optimizer is optimizer  # its own, kept
    params = mlflow.get_run(fitted.run_id).data.params
    assert params["train.optimizer"] == "SGD" and float(params["train.learning_rate"]) == pytest.approx(0.05)
    assert "test_accuracy" in fitted.metrics  # the objective's metrics


def test_fit_refuses_a_model_that_does_not_fit_the_task_in_one_line_before_any_run(project):
    import keras
    import mlflow
    from keras import layers

    flat = keras.Sequential([keras.Input((64,)), layers.Dense(10, "softmax")])
    with pytest.raises(
        UserError, match=r"takes inputs of shape \(64,\).*\(8, 8, 1\).*keras.Input\(shape=\(8, 8, 1\)\)"
    ):
        pipeline.fit(flat, "cnn-valid", name="flat")
    five = keras.Sequential([keras.Input((8, 8, 1)), layers.Flatten(), layers.Dense(5, "softmax")])
    with pytest.raises(UserError, match=r"gives \(5,\).*needs \(10,\).*Dense\(10, activation=\"softmax\"\)"):
        pipeline.fit(five, "cnn-valid", name="five")
    with pytest.raises(UserError, match="'cnn-same' is an experiment of params.yaml"):
        pipeline.fit(five, "cnn-valid", name="cnn-same")
    with pytest.raises(UserError, match="'svc' trains a svc estimator"):
        pipeline.fit(five, "svc", name="five")
    assert not mlflow.search_runs(search_all_experiments=True, output_format="list")


def test_show_gives_the_keras_code_of_an_experiments_family(project):
    code = pipeline.show("cnn-same")
    text = code._repr_markdown_()
    assert text.startswith("**the `cnn` family's model") and "```python" in text
    assert all(part in code.source for part in ("def build(", "layers.Conv2D(", "def conv_layers("))
    assert "def check(" not in code.source and "def resolve(" not in code.source  # not the model
    assert "layers.LSTM(" in pipeline.show("lstm").source  # a family by its name
    assert "cnn.build(params, spec)" in pipeline.show("pretrain").source
    with pytest.raises(UserError, match="'cnn-sme' is neither.*did you mean 'cnn-same'"):
        pipeline.show("cnn-sme")
