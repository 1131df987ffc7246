"""A registered model works with MLflow's own scoring server: `mlflow models serve -m
models:/digits-classifier@champion --env-manager local` answers the documented payloads
(`dataframe_records`, `dataframe_split`, `inputs`) as `pipeline serve` does."""

import base64
import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from PIL import Image

from pipeline import data
from tests.helpers import free_port, point_at, relocate_project, serving

START = 180  # seconds `mlflow models serve` may take to answer /ping on two busy cores


def png(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray((image[..., 0] * 255).round().astype(np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


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
    x = data.load("digits").examples("test")[0].read(slice(6))
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
def test_mlflow_models_serve_answers_like_pipeline_serve(project, champions, monkeypatch):
    relocate_project(champions, project)  # a copy: `pipeline serve` writes drift runs to its store
    point_at(monkeypatch, project)
    bodies = payloads()
    uri = f"sqlite:///{project / 'mlruns' / 'mlflow.db'}"
    with serving(project, "serve", "digits-classifier", env={"MLFLOW_TRACKING_URI": uri}) as port:
        ours = {name: predictions(port, body) for name, body in bodies.items()}
    with mlflow_serving(project, "models:/digits-classifier@champion") as port:
        theirs = {name: predictions(port, body) for name, body in bodies.items()}
    for name in bodies:
        assert len(theirs[name]) == len(ours[name]) == 3, name
        for mine, other in zip(ours[name], theirs[name], strict=True):
            assert other["class"] == mine["class"], name
            assert other["probabilities"] == pytest.approx(mine["probabilities"], abs=1e-6), name
