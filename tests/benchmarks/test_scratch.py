"""The throw-away project every benchmark works in (benchmarks/scratch.py)."""

import os
import shutil

import yaml

from benchmarks import scratch


def test_a_scratch_project_is_apart_from_yours_and_gone_after(project):
    with scratch.project({"data": {}}) as made:
        root = made.root
        assert root != project and not root.is_relative_to(project)
        assert yaml.safe_load((root / "params.yaml").read_text()) == {"data": {}}
        assert (root / "mlruns").is_dir()
        env = made.env(EXTRA="1")
        assert env["PIPELINE_ROOT"] == str(root) and env["EXTRA"] == "1"
        assert env["MLFLOW_TRACKING_URI"] == f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
        assert env["PYTHONPATH"].split(os.pathsep)[0] == str(scratch.REPO)  # this checkout's code
        before = {k: os.environ.get(k) for k in scratch.PLACES}
        with made.active():
            assert os.environ["PIPELINE_ROOT"] == str(root)
        assert {k: os.environ.get(k) for k in scratch.PLACES} == before
    assert not root.exists() and not root.parent.exists()


def test_with_its_own_code_for_make_and_kept_when_asked(project):
    with scratch.project(code=True, keep=True) as made:
        root = made.root
        assert (root / "pipeline" / "cli.py").is_file() and not list(root.rglob("__pycache__"))
        assert (root / "params.yaml").read_bytes() == (project / "params.yaml").read_bytes()  # yours, copied
        # the venv stamp is newer than what make's venv rule depends on: no `pip install` of the copy
        stamp = (root / ".venv-ready").stat().st_mtime_ns
        assert stamp >= (root / "pyproject.toml").stat().st_mtime_ns
        assert made.env()["PYTHONPATH"].split(os.pathsep)[0] == str(root)
    assert root.exists()
    shutil.rmtree(root.parent)
