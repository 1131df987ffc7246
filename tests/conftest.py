"""Shared fixtures: every test works in a throw-away project folder with its own MLflow store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


def run_cli(root: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python -m pipeline ...` as a user would, in a fresh process."""
    env = {
        **os.environ,
        "PIPELINE_ROOT": str(root),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
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
