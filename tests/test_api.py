"""The Python API (pipeline/api.py, docs/api.md): what it returns, that importing it is cheap, and
that a call leaves the caller's process as it found it."""

import gc
import logging
import os
import signal
import subprocess
import sys

import pytest

import pipeline
from pipeline import api
from pipeline.errors import UserError
from tests.helpers import point_at

SMALL = {"train.epochs": 1, "train.limit": 100}


def test_importing_pipeline_and_its_api_names_imports_no_tensorflow_or_mlflow():
    code = (
        "import sys, pipeline\n"
        "from pipeline import train, example, runs, load_model, link\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'mlflow', 'pandas'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


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
    """A caller's process state that a call would change: a logger's level and filter, variables the
    pipeline sets when they are unset, the collector's thresholds with nothing frozen, a SIGTERM
    handler. Put back after the test whatever happens."""
    mlflow_logger, root = logging.getLogger("mlflow"), logging.getLogger()
    saved = (mlflow_logger.level, list(root.filters), gc.get_threshold(), signal.getsignal(signal.SIGTERM))
    mlflow_logger.setLevel(logging.DEBUG)
    for name in ("MLFLOW_LOGGING_LEVEL", "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CALLER_VARIABLE", "kept")
    gc.unfreeze()
    gc.set_threshold(1234, 11, 12)
    signal.signal(signal.SIGTERM, handler)
    before = {
        "environ": environ(),
        "mlflow level": logging.DEBUG,
        "root filters": list(root.filters),
        "gc": (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()),
        "SIGTERM": handler,
    }
    yield before
    mlflow_logger.setLevel(saved[0])
    root.filters[:] = saved[1]
    gc.set_threshold(*saved[2])
    signal.signal(signal.SIGTERM, saved[3])


def assert_as_found(before: dict) -> None:
    assert environ() == before["environ"], "environment variables changed"
    assert logging.getLogger("mlflow").level == before["mlflow level"], "a logger's level changed"
    assert logging.getLogger().filters == before["root filters"], "the root logger's filters changed"
    assert (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()) == before["gc"], "gc changed"
    assert signal.getsignal(signal.SIGTERM) is before["SIGTERM"], "the SIGTERM handler changed"


def test_restored_undoes_each_change_a_call_makes(caller_state):
    import matplotlib

    backend = matplotlib.get_backend()
    with api.restored():
        os.environ["MLFLOW_LOGGING_LEVEL"] = "WARNING"
        del os.environ["CALLER_VARIABLE"]
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger().addFilter(logging.Filter("x"))
        gc.freeze()
        gc.set_threshold(700, 10, 10)
        gc.disable()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        matplotlib.use("svg")
    assert_as_found(caller_state)
    assert gc.isenabled()
    assert matplotlib.get_backend() == backend


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
    x_test = trained.outcome.splits.x_test[:3]
    assert trained.model.predict(x_test).shape == (3, 10)
    assert "training_curves.png" in trained.figures()
    assert trained.figure("confusion_matrix.png")._repr_png_().startswith(b"\x89PNG")

    table = pipeline.runs("digits-classification")  # what `make report` shows
    (row,) = table[table["run"] == "mlp"].to_dict("records")
    assert row["test_accuracy"] == round(trained.value, 4) and row["best"] == "★"
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


def test_load_model_loads_a_registered_model_by_alias_through_the_safe_loader(champions, monkeypatch):
    point_at(monkeypatch, champions)
    champion = pipeline.load_model("digits-classifier")
    assert champion.form == "served" and champion.version
    x = champion.keras().input_shape[1:]
    import numpy as np

    assert champion.predict(np.zeros((2, *x), np.float32)).shape == (2, 10)
    with pytest.raises(UserError, match="digits-classifier@nobody"):
        pipeline.load_model("digits-classifier", alias="nobody")
