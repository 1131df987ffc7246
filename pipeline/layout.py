"""Where the pipeline keeps its generated files: one owner for every path make, fan-out and the
tests agree on (build stamps, generated params, the retrain lock and journal, training backups,
the Python API's sandbox).

Templates are relative to the project root (the generated makefile uses them as they are); the
functions give absolute paths under `config.project_root()`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

from pipeline import atomic, config
from pipeline.config import project_root

BUILD = ".build"
MAKEFILE = f"{BUILD}/pipeline.mk"
STORE_STAMP = "mlruns/.initialized"  # `make store`: the tracking store's schema exists
STORE_ROOT = "mlruns/.root"  # the project folder the default store's paths were written for
STORE_ROOT_LOCK = "mlruns/.root.lock"  # held while the store is rewritten for a moved project
DATA_STAMP = BUILD + "/data/{name}.checked"  # `pipeline data <name>` ran with the current params
RUN_STAMP = BUILD + "/runs/{name}.done"  # the experiment was trained with its current params and code
TRAIN_QUEUE = f"{BUILD}/train-queue"  # the experiments `make train-all` found out of date, one per line
PARAMS_STAMP = BUILD + "/params/{section}/{name}.json"  # resolved params, rewritten only on change
RETRAIN_LOCK = f"{BUILD}/retrain.lock"  # held by a retrain cycle, and by a training's gate
RETRAIN_JOURNAL = BUILD + "/retrain/{model}.json"  # a retrain cycle's steps, until it is complete
BACKUPS = f"{BUILD}/backup"  # Keras BackupAndRestore folders (a killed run resumes)
RAY_RESULTS = f"{BUILD}/ray"  # Ray Tune's trial folders
FEATURES = f"{BUILD}/features"  # a frozen hub module's features of a split (transfer `mode: feature`)
SANDBOX = BUILD + "/sandbox/{session}"  # what a sandboxed run publishes (a notebook's pretrain), per process


def _absolute(relative: str) -> Path:
    return project_root() / relative


def store_stamp() -> Path:
    return _absolute(STORE_STAMP)


def store_root_marker(root: Path) -> Path:
    return root / STORE_ROOT


def store_root_lock(root: Path) -> Path:
    return root / STORE_ROOT_LOCK


def data_stamp(name: str) -> Path:
    return _absolute(DATA_STAMP.format(name=name))


def run_stamp(name: str) -> Path:
    return _absolute(RUN_STAMP.format(name=name))


def params_stamp(section: str, name: str) -> Path:
    return _absolute(PARAMS_STAMP.format(section=section, name=name))


def retrain_lock() -> Path:
    return _absolute(RETRAIN_LOCK)


def retrain_journal(model: str) -> Path:
    return _absolute(RETRAIN_JOURNAL.format(model=model))


def features() -> Path:
    return _absolute(FEATURES)


def backups() -> Path:
    return _absolute(BACKUPS)


# a session is a process: its pid (ended sessions' folders are removed) and this token (a reused pid
# never finds an ended session's files)
SESSION_TOKEN = secrets.token_hex(4)


def sandbox() -> Path:
    """This process's sandbox: where its sandboxed runs publish files for later ones (a notebook's
    `pretrain` its hub module, read by the same kernel's transfer runs), never where make's
    experiments read them. Made on first use; the folders of processes that have ended go then."""
    folder = _absolute(SANDBOX.format(session=f"{os.getpid()}-{SESSION_TOKEN}"))
    if not folder.exists():
        for other in folder.parent.glob("*-*"):
            pid = other.name.split("-")[0]
            if pid.isdigit() and not atomic.running(int(pid)):
                shutil.rmtree(other, ignore_errors=True)
        folder.mkdir(parents=True)
    return folder


def touch(path: Path) -> None:
    """Write a stamp (its folder created as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def _json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=list) + "\n"


def write_params_stamps(params: dict) -> dict:
    """Each dataset's and experiment's resolved params as make's prerequisites, rewritten only when
    they changed (so make sees a new mtime only on a real change); returns the resolved experiments."""
    for name, entry in params["data"].items():
        atomic.write_if_changed(params_stamp("data", name), _json(entry))
    resolved = {name: config.resolve_experiment(params, name) for name in config.experiment_names(params)}
    for name, exp in resolved.items():
        atomic.write_if_changed(params_stamp("experiments", name), _json(exp.raw))
    return resolved
