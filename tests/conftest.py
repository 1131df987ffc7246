"""Shared fixtures: every test works in a throw-away project folder with its own MLflow store."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of params.yaml in a temp folder, used as the project root and tracking store."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.setenv("PIPELINE_ROOT", str(tmp_path))
    monkeypatch.delenv("PIPELINE_PARAMS", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    (tmp_path / "mlruns").mkdir()
    if "mlflow" in sys.modules:  # a URI set by an earlier test's run would win over the env
        sys.modules["mlflow"].set_tracking_uri(uri)
    return tmp_path


def edit_params(root: Path, change) -> dict:
    """Load the project's params.yaml, let `change(params)` edit it, write it back."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    change(params)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return params


def run_cli(
    root: Path, *args: str, timeout: int = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `python -m pipeline ...` as a user would, in a fresh process (`env` adds variables)."""
    env = {
        **os.environ,
        "PIPELINE_ROOT": str(root),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def published_module(tmp_path_factory):
    """`pretrain` trained once (small and short) in its own project; its hub module is reused."""
    from pipeline import train

    root = tmp_path_factory.mktemp("pretrained")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    (root / "mlruns").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIPELINE_ROOT", str(root))
        patch.delenv("PIPELINE_PARAMS", raising=False)
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
        patch.setattr(train, "PROGRESS", 0)
        run_id = train.run("pretrain", ["train.limit=300", "train.epochs=2"]).run_id
    return {"root": root, "module": root / "models" / "hub" / "digits-0-4", "run_id": run_id}


@pytest.fixture
def transfer_project(project, published_module):
    """A project whose default hub module (pretrain's output) is in place."""
    shutil.copytree(published_module["module"], project / "models" / "hub" / "digits-0-4")
    return project


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres_uri():
    """A throw-away PostgreSQL database on loopback (skipped where PostgreSQL is not installed)."""
    from tests import postgres

    with postgres.cluster(free_port()) as uri:
        yield uri


@contextlib.contextmanager
def serving(root: Path, command: str, *args: str, timeout: float = 120):
    """Run `python -m pipeline <command> --port P [args]` (ui or server) until the block ends; yields P."""
    import requests

    port = free_port()
    log = root / f"{command}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", command, "--port", str(port), *args],
            cwd=root,
            env={**os.environ, "PIPELINE_ROOT": str(root)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and process.poll() is None:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=5).ok:
                    break
            except requests.RequestException:  # not listening yet, or still starting
                time.sleep(0.5)
        else:
            output = log.read_text()[-3000:]
            pytest.fail(f"`pipeline {command}` did not answer within {timeout:.0f} s:\n{output}")
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited on its own
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray with 2 CPUs per test module (ray.init costs seconds); the commands join it."""
    from pipeline import scaleout

    started = scaleout.init(num_cpus=2)
    yield
    if started:
        scaleout.shutdown()
