"""The throw-away project every benchmark works in: a folder of its own with a params.yaml and an
MLflow store, so your data and store are never touched.

    with scratch.project(params) as project:       # params: a dict, or None for a copy of yours
        subprocess.run([...], cwd=project.root, env=project.env())
        with project.active():                     # this process's project and store too
            ...

The folder is `<temp>/project`; its parent holds nothing else, room for what must be outside the
project (the soak's sentinel folder). Everything is removed at the end unless `keep`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from pipeline.config import project_root

REPO = Path(__file__).resolve().parents[1]  # this checkout: its Makefile and pipeline/
PLACES = ("PIPELINE_ROOT", "MLFLOW_TRACKING_URI")  # what points a process at a project and its store


@dataclasses.dataclass(frozen=True)
class Project:
    root: Path

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlruns' / 'mlflow.db'}"

    @property
    def code(self) -> Path:
        """Where its subprocesses import the pipeline from: its own copy, else this checkout."""
        return self.root if (self.root / "pipeline").is_dir() else REPO

    def env(self, **extra: str) -> dict[str, str]:
        """A subprocess's environment: this project, its store, its code first on the path."""
        path = os.pathsep.join(filter(None, [str(self.code), os.environ.get("PYTHONPATH")]))
        places = dict(zip(PLACES, (str(self.root), self.tracking_uri), strict=True))
        return {**os.environ, **places, "PYTHONPATH": path, **extra}

    @contextlib.contextmanager
    def active(self) -> Iterator[Project]:
        """This process's project and tracking store are this one until the block ends."""
        saved = {name: os.environ.get(name) for name in PLACES}
        os.environ.update({name: self.env()[name] for name in PLACES})
        try:
            yield self
        finally:
            for name, value in saved.items():
                os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


@contextlib.contextmanager
def project(params: dict | None = None, *, code: bool = False, keep: bool = False) -> Iterator[Project]:
    """A new project: `params` as its params.yaml (None: a copy of the current project's) and an
    empty mlruns/. `code`: with a copy of this checkout's pipeline/ and what make's rules read
    (pyproject.toml, requirements.lock, a venv stamp named `.venv-ready`), which it then runs."""
    base = Path(tempfile.mkdtemp(prefix="pipeline-scratch-"))
    root = base / "project"
    (root / "mlruns").mkdir(parents=True)
    if params is None:
        shutil.copy(project_root() / "params.yaml", root / "params.yaml")
    else:
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if code:
        shutil.copytree(REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "requirements.lock"):
            shutil.copy(REPO / name, root / name)
        # newer than the files just copied: else make's venv rule would `pip install -e` this
        # throw-away folder into the running venv
        (root / ".venv-ready").touch()
    try:
        yield Project(root)
    finally:
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
