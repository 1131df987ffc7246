"""The scoring server, `python -m pipeline serve MODEL`, tested as the real server process: MLflow's
scoring protocol, the model named in every answer, a promoted version followed without a restart,
one-line 4xx errors, loopback by default, and drift written once per window, never per request.
MLflow's own scoring server (`mlflow models serve`) answers the documented payloads as it does."""

import base64
import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import psutil
import pytest
import requests
from PIL import Image

from pipeline import cli, data
from pipeline.training import loading
from tests.helpers import (
    CHAMPION_SETTINGS,
    REPO,
    assert_one_line_error,
    edit_params,
    free_port,
    make,
    point_at,
    relocate_project,
    run_cli,
    serving,
    train,
)

QUICK = CHAMPION_SETTINGS  # a version trained as conftest's `champions` were
POLL = 1  # --poll of the tests: seconds between two reads of the alias
LOADING = 10  # what loading a new version may take on busy cores
START = 180  # seconds `mlflow models serve` may take to answer /ping on two busy cores


def png(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray((image[..., 0] * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def champion():
    """digits-classifier's champion (v1) in the current project: a copy of `champions`."""
    return mlflow.MlflowClient().get_model_version_by_alias("digits-classifier", "champion")


@pytest.fixture
def classifier(project, champions):
    """This test's own copy of the champions (digits-classifier and co2-forecaster v1, trained
    once per test run with QUICK's settings, gates open): the test moves aliases, adds
    versions or counts drift runs in it."""
    relocate_project(champions, project)
    return champion()


@pytest.fixture(scope="module")
def served(tmp_path_factory, champions):
    """One copy of the champions and one `serve` of digits-classifier, shared by the tests that only
    send it requests: a server start imports TensorFlow and loads the model. (Tests that move the
    alias or count drift runs keep their own copy: `classifier`.)"""
    root = tmp_path_factory.mktemp("served")
    relocate_project(champions, root)
    with pytest.MonkeyPatch.context() as patch:
        point_at(patch, root)
        version = champion()
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    with serving(root, "serve", "digits-classifier", env={"MLFLOW_TRACKING_URI": uri}) as port:
        yield types.SimpleNamespace(root=root, port=port, classifier=version)


@pytest.fixture
def shared(served, monkeypatch):
    """`served`, with this process pointed at its store (for the in-process comparisons)."""
    point_at(monkeypatch, served.root)
    return served


def digits(n: int) -> np.ndarray:
    return data.load("digits").examples("test")[0].read(slice(n))


def named(answer, version: str, run_id: str) -> None:
    """The answer names the model in its headers (and, for predictions, in its body)."""
    assert answer.headers["X-Model-Name"] == "digits-classifier"
    assert answer.headers["X-Model-Version"] == version
    assert answer.headers["X-Model-Run-Id"] == run_id
    if answer.ok and "predictions" in answer.json():
        assert answer.json()["model"] == {"name": "digits-classifier", "version": version, "run_id": run_id}


@pytest.mark.slow
def test_the_server_answers_as_the_model_does_in_process(shared):
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    x = digits(6)
    records = [{"image": png(image)} for image in x[:3]] + [
        {"pixels": image.ravel().tolist()} for image in x[3:]
    ]
    expected = loading.load("models:/digits-classifier/1").pyfunc().predict(records)
    pixels = pd.DataFrame({"pixels": [image.ravel().tolist() for image in x[3:]]})
    port, classifier = shared.port, shared.classifier
    url = f"http://127.0.0.1:{port}"
    version = requests.get(f"{url}/version", timeout=10).json()
    assert version["name"] == "digits-classifier" and version["version"] == "1"
    assert version["run_id"] == classifier.run_id and version["alias"] == "champion"
    assert version["data_hash"] == data.read_manifest("digits").sha256
    for path in ("/ping", "/health"):
        named(requests.get(f"{url}{path}", timeout=10), "1", classifier.run_id)
    for body in ({"dataframe_records": records}, {"inputs": records}):
        answer = requests.post(f"{url}/invocations", json=body, timeout=60)
        assert answer.status_code == 200, answer.text
        named(answer, "1", classifier.run_id)
        got = answer.json()["predictions"]
        assert [a["class"] for a in got] == [a["class"] for a in expected]
        for mine, theirs in zip(got, expected, strict=True):
            assert mine["probabilities"] == pytest.approx(theirs["probabilities"], abs=1e-6)
    split = {"dataframe_split": pixels.to_dict(orient="split")}
    answer = requests.post(f"{url}/invocations", json=split, timeout=60)
    assert [a["class"] for a in answer.json()["predictions"]] == [a["class"] for a in expected[3:]]
    # MLflow's own client speaks to it as to `mlflow models serve`
    response = ScoringServerClient("127.0.0.1", port).invoke(pixels)
    assert [a["class"] for a in response["predictions"]] == [a["class"] for a in expected[3:]]
    listening = {c.laddr.ip for c in psutil.net_connections("tcp") if c.laddr and c.laddr.port == port}
    assert listening == {"127.0.0.1"}  # loopback unless --host says otherwise


@contextlib.contextmanager
def mlflow_serving(root: Path, model: str):
    """`mlflow models serve` of `model` on a free loopback port until the block ends; yields the port.
    The venv's bin first on PATH, as MLflow starts its web server from there."""
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
    }
    command = ["mlflow", "models", "serve", "-m", model, "--env-manager", "local"]
    log = root / "mlflow-serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START
        while True:
            assert process.poll() is None, f"mlflow models serve exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no answer within {START} s:\n{log.read_text()[-3000:]}"
            try:
                if requests.get(f"http://127.0.0.1:{port}/ping", timeout=5).ok:
                    break
            except requests.RequestException:  # not listening yet
                time.sleep(0.5)
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def payloads() -> dict[str, dict]:
    """The three payloads MLflow's scoring protocol documents, three digits each."""
    x = digits(6)
    images = [{"image": png(image)} for image in x[:3]]
    pixels = pd.DataFrame({"pixels": [image.ravel().tolist() for image in x[3:]]})
    return {
        "dataframe_records": {"dataframe_records": images},
        "dataframe_split": {"dataframe_split": pixels.to_dict(orient="split")},
        "inputs": {"inputs": images},
    }


def predictions(port: int, body: dict) -> list[dict]:
    answer = requests.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


@pytest.mark.slow
def test_mlflow_models_serve_answers_like_pipeline_serve(shared):
    """`mlflow models serve -m models:/digits-classifier@champion --env-manager local` beside the
    shared `pipeline serve` of the same store (it only reads the model)."""
    bodies = payloads()
    ours = {name: predictions(shared.port, body) for name, body in bodies.items()}
    with mlflow_serving(shared.root, "models:/digits-classifier@champion") as port:
        theirs = {name: predictions(port, body) for name, body in bodies.items()}
    for name in bodies:
        assert len(theirs[name]) == len(ours[name]) == 3, name
        for mine, other in zip(ours[name], theirs[name], strict=True):
            assert other["class"] == mine["class"], name
            assert other["probabilities"] == pytest.approx(mine["probabilities"], abs=1e-6), name


def slow_body(head: bytes, tail: bytes, release: threading.Event):
    yield head
    release.wait(120)
    yield tail


@pytest.mark.slow
def test_a_promoted_version_answers_within_the_bound_and_requests_finish_on_theirs(project, classifier):
    edit_params(project, lambda p: p["retrain"]["gates"]["digits-classifier"].update(margin=1.0))
    second = train("cnn-same", [*QUICK, "train.seed=7"])  # v2, challenger only: promoted below
    assert not second.decision.promoted
    body = json.dumps({"dataframe_records": [{"pixels": image.ravel().tolist()} for image in digits(4)]})
    with serving(project, "serve", "digits-classifier", "--poll", str(POLL)) as port:
        url = f"http://127.0.0.1:{port}/invocations"
        release, answers = threading.Event(), []
        headers = {"Content-Type": "application/json"}
        started = threading.Thread(
            target=lambda: answers.append(
                requests.post(
                    url, data=slow_body(body[:20].encode(), body[20:].encode(), release), headers=headers
                )
            )
        )
        started.start()  # a request in flight: its body is still arriving when the alias moves
        time.sleep(1)
        mlflow.MlflowClient().set_registered_model_alias(
            "digits-classifier", "champion", second.model_version
        )
        moved = time.monotonic()
        # asked until v2 answers (each answer comes from v1 or v2, never an error), which must
        # happen within the bound docs/serving.md states: --poll plus loading
        while True:
            answer = requests.post(url, data=body, headers=headers, timeout=60)
            assert answer.status_code == 200, answer.text
            if answer.headers["X-Model-Version"] == "2" or time.monotonic() - moved > POLL + LOADING:
                break
            named(answer, "1", classifier.run_id)
            time.sleep(0.2)
        named(answer, "2", second.run_id)
        release.set()
        started.join(60)
        assert answers[0].status_code == 200, answers[0].text
        named(answers[0], "1", classifier.run_id)  # started on v1, finished on v1
    log = (project / "serve.log").read_text()
    assert "digits-classifier@champion moved to v2" in log and "Traceback" not in log


def chunks(size: int):
    piece = b" " * 2**20
    for _ in range(size // len(piece)):
        yield piece


def bad_requests(x: np.ndarray) -> list:
    """(what, request arguments, status, a fragment of the one-line message)."""
    json_type = {"Content-Type": "application/json"}
    many = [{"pixels": x[0].ravel().tolist()}] * 10_000
    return [
        ("not JSON", {"data": b"{'image': nope", "headers": json_type}, 400, "the body is not JSON"),
        ("not the protocol", {"json": {"records": []}}, 400, "give exactly one of dataframe_records"),
        (
            "not an image",
            {"json": {"inputs": [{"image": base64.b64encode(b"GIF89a..").decode()}]}},
            400,
            "record 0: 'image' not an image (PNG or JPEG or HEIF)",
        ),
        (
            "not base64",
            {"json": {"dataframe_records": [{"image": "%%%"}]}},
            400,
            "'image' is not valid base64",
        ),
        (
            "wrong shape",
            {"json": {"dataframe_records": [{"pixels": [0.5] * 10}]}},
            400,
            "record 0: 'pixels' must be 64 finite numbers",
        ),
        ("no records", {"json": {"dataframe_records": []}}, 400, "no records with 'image'"),
        (
            "malformed split",
            {"json": {"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}},
            400,
            "dataframe_split",
        ),
        ("10,000 images", {"json": {"dataframe_records": many}}, 413, "10000 records; at most 1000"),
        (
            "declared oversize",
            {"data": b"x" * (17 * 2**20), "headers": json_type},
            413,
            "at most 16777216 bytes",
        ),
        ("chunked oversize", {"data": chunks(17 * 2**20), "headers": json_type}, 413, "over 16777216 bytes"),
        ("text", {"data": b"1,2,3", "headers": {"Content-Type": "text/csv"}}, 415, "send JSON"),
    ]


@pytest.mark.slow
def test_bad_requests_get_one_line_4xx_and_the_server_keeps_serving(shared):
    x = digits(2)
    port, classifier = shared.port, shared.classifier
    url = f"http://127.0.0.1:{port}"
    for what, arguments, status, fragment in bad_requests(x):
        answer = requests.post(f"{url}/invocations", timeout=60, **arguments)
        assert answer.status_code == status, (what, answer.text)
        assert set(answer.json()) == {"error_code", "message"}, what
        assert fragment in answer.json()["message"], (what, answer.text)
        assert "\n" not in answer.json()["message"] and "Traceback" not in answer.text
        named(answer, "1", classifier.run_id)
    for method, path, status in (("get", "/nowhere", 404), ("get", "/invocations", 405)):
        answer = getattr(requests, method)(f"{url}{path}", timeout=10)
        assert answer.status_code == status and set(answer.json()) == {"error_code", "message"}
    good = requests.post(
        f"{url}/invocations", json={"inputs": [{"pixels": x[1].ravel().tolist()}]}, timeout=60
    )
    assert good.status_code == 200  # still serving
    assert "Traceback" not in (shared.root / "serve.log").read_text()


@pytest.mark.slow
def test_what_cannot_be_served_is_one_line_before_serving(project, capsys):
    # the first two in this process (the CLI's own handler); the last as a real process: exit code 2
    # and no traceback at the process level
    no_alias = "registered model 'digits-classifier' has no version with alias 'champion'"
    for args, fragment in (
        (["digits-classifier", "--port", str(free_port())], no_alias),
        (["no such/model"], "serve 'no such/model' is not"),
        (["cnn-valid", "--port", str(free_port())], "add `register_as: cnn-valid` to experiments.cnn-valid"),
    ):
        assert cli.main(["serve", *args]) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert err[-1].startswith("error: ") and fragment in err[-1] and "Traceback" not in "\n".join(err)
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(
            run_cli(project, "serve", "digits-classifier", "--port", str(port)),
            f"cannot listen on 127.0.0.1:{port}",
        )


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_serve_passes_the_names_as_typed(project):
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy(REPO / name, project / name)
    (project / ".venv-ready").touch()  # stands in for the installed .venv
    (project / "mlruns" / ".initialized").touch()
    done = make(project, "serve", "SERVE_MODEL=it's $HOME", "PORT=" + str(free_port()))
    assert done.returncode == 2, done.stdout + done.stderr
    assert 'error: SERVE_MODEL="it\'s $HOME" is not a registered model name' in done.stderr


def drift_runs(name: str) -> pd.DataFrame:
    experiment = mlflow.get_experiment_by_name("predictions")
    return mlflow.search_runs(
        [experiment.experiment_id], filter_string=f"attributes.run_name = 'serve-{name}'"
    )


@pytest.mark.slow
def test_requests_are_compared_with_the_training_data_once_per_window(project, classifier):
    inverted = [{"pixels": (1 - image).ravel().tolist()} for image in digits(30)]
    with serving(project, "serve", "digits-classifier", "--drift-seconds", "3") as port:
        url = f"http://127.0.0.1:{port}/invocations"
        started = time.monotonic()
        for i in range(0, 30, 3):  # ten requests of three inverted digits
            assert requests.post(url, json={"dataframe_records": inverted[i : i + 3]}, timeout=60).ok
        elapsed = time.monotonic() - started
    runs = drift_runs("digits-classifier")
    assert len(runs) == 1 and runs["status"][0] == "FINISHED"  # the last window is written at the stop
    assert runs["tags.model.version"][0] == "1" and runs["tags.model.run_id"][0] == classifier.run_id
    run_id, client = runs["run_id"][0], mlflow.MlflowClient()
    windows = client.get_metric_history(run_id, "drift_score")
    assert 1 <= len(windows) <= elapsed / 3 + 2 < 10  # per window, never per request
    assert sum(m.value for m in client.get_metric_history(run_id, "serve_requests")) == 10
    assert sum(m.value for m in client.get_metric_history(run_id, "drift_examples")) == 30
    assert max(m.value for m in windows) > 0.5  # inverted digits are not the training data
    assert "drift.png" in {a.path for a in client.list_artifacts(run_id)}


@pytest.mark.slow
def test_the_forecaster_is_served_with_its_dates(project, classifier):  # co2-forecaster v1 too
    ds = data.load("co2")
    dates = np.concatenate([ds.arrays[f"dates_{s}"] for s in ("train", "val", "test")])[-150:]
    values = np.concatenate([ds.arrays[f"values_{s}"] for s in ("train", "val", "test")])[-150:]
    records = [{"date": str(d), "value": float(v)} for d, v in zip(dates, values, strict=True)]
    expected = loading.load("models:/co2-forecaster/1").pyfunc().predict(records)
    with serving(project, "serve", "co2-forecaster", "--drift-seconds", "600") as port:
        answer = requests.post(
            f"http://127.0.0.1:{port}/invocations", json={"dataframe_records": records}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Model-Name"] == "co2-forecaster"
        got = answer.json()["predictions"]
        assert [a["date"] for a in got] == list(expected["date"])
        assert [a["value"] for a in got] == pytest.approx(list(expected["value"]), abs=1e-6)
        short = requests.post(
            f"http://127.0.0.1:{port}/invocations", json={"inputs": records[-10:]}, timeout=60
        )
        assert short.status_code == 400 and "the model reads 104 W-SAT steps" in short.json()["message"]
    (run_id,) = drift_runs("co2-forecaster")["run_id"]  # the one window, written at the stop
    history = mlflow.MlflowClient().get_metric_history(run_id, "drift_examples")
    assert [m.value for m in history] == [52]  # the request's last season judged against the one before
