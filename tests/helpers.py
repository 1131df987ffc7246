"""Shared test helpers: the functions and constants tests import (fixtures are in tests/conftest.py)."""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The folder `name`, made by `build(folder)` once per test run: pytest-xdist's workers share
    one (the first to ask builds it while the others wait on a lock), so an expensive template (a
    trained champion) is not trained once per worker. Whoever uses it copies it or only reads it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above each worker's own
    folder = base / name
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed in another worker
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


def point_at(patch: pytest.MonkeyPatch, root: Path) -> None:
    """Make `root` this process's project and store (`patch` undoes it): the env the pipeline reads,
    and MLflow's own state that would otherwise win over it."""
    patch.setenv("PIPELINE_ROOT", str(root))
    patch.delenv("PIPELINE_PARAMS", raising=False)
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):  # mlflow.set_experiment sets the id
        patch.delenv(name, raising=False)
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    patch.setenv("MLFLOW_TRACKING_URI", uri)
    if "mlflow" in sys.modules:  # a URI set by an earlier test's run would win over the env
        sys.modules["mlflow"].set_tracking_uri(uri)
        # and so would the experiment an earlier test made active (an id of another store): which
        # test ran before depends on how pytest-xdist shares them out. MLflow has no public unset.
        patch.setattr(sys.modules["mlflow"].tracking.fluent, "_active_experiment_id", None)


def new_project(root: Path, empty_store: Path | None = None) -> Path:
    """params.yaml copied into `root` and an mlruns/ folder: empty (the first MLflow call creates
    the store, as on a user's first run), or with `empty_store`'s schema in place."""
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    (root / "mlruns").mkdir()
    if empty_store is not None:
        shutil.copy(empty_store, root / "mlruns" / "mlflow.db")
    return root


def train(name: str, overrides: list[str] | None = None, **options):
    """One experiment as `make train-<name>` runs it (gate included), without progress output.

    `options` are RunOptions fields (e.g. dataset=, log_outputs=False)."""
    from pipeline.training.run import RunOptions
    from pipeline.workflows import train_and_gate

    return train_and_gate.train(name, overrides, RunOptions(**{"verbose": 0, **options}))


def write_batch(folder, x, labels, ready=True):
    """A batch folder of PNGs, one sub-folder per label; `ready`: with its READY file (uploaded)."""
    from PIL import Image

    for i, (image, label) in enumerate(zip(x, labels, strict=True)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        pixels = (image[..., 0] * 255).round().astype("uint8")
        Image.fromarray(pixels).save(folder / str(label) / f"{i}.png")
    if ready:
        (folder / "READY").touch()
    return folder


def incoming(project, batch, dataset="digits"):
    return project / "data" / "incoming" / dataset / batch


def consumed(project, batch, dataset="digits"):
    return project / "data" / "consumed" / dataset / batch


def quarantined(project, dataset="digits"):
    return project / "data" / "quarantine" / dataset


def digits_batch(project, name, start, n=20, ready=True):
    """A batch of `n` digits from the validation split (never trained on by the champion)."""
    from pipeline import data

    x, y = loaded(data.load("digits"), "val")
    return write_batch(incoming(project, name), x[start : start + n], y[start : start + n], ready)


def loaded(dataset, split: str):
    """(x, y) of a split, its images read whole as floats (streams.Rows.load): inputs for a test."""
    x, y = dataset.examples(split)
    return x.load(), y


def as_floats(dataset, split: str):
    """A stored image split as float32 values, computed here from the uint8 file (what the models'
    readers must give)."""
    import numpy as np

    return np.asarray(dataset.arrays[f"x_{split}"]).astype(np.float32) / np.float32(dataset.divisor)


def files_of(folder):
    """{relative path: bytes} of the regular files under `folder` (links not followed)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def aliases(model="digits-classifier"):
    import mlflow

    found = mlflow.MlflowClient().get_registered_model(model)
    return {alias: str(version) for alias, version in found.aliases.items()}


def relocate_project(template: Path, root: Path) -> None:
    """Copy a project folder (params, data, store, artifacts) made in `template` into `root` and let
    the pipeline make its store `root`'s, as it does for a user's moved project
    (pipeline/training/store_root.py)."""
    from pipeline.training import store_root

    shutil.copytree(template, root, dirs_exist_ok=True)
    store_root.follow(root)


def png_header_only(path, width, height):
    """A tiny PNG whose header claims width x height (a decompression bomb's first bytes)."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    path.write_bytes(PNG_SIGNATURE + chunks)
    return path


def write_heic(path: Path, pixels) -> Path:
    """A phone's photo format: uint8 RGB pixels (height, width, 3) as an HEIC file, by pillow-heif."""
    import pillow_heif
    from PIL import Image

    pillow_heif.from_pillow(Image.fromarray(pixels)).save(path, quality=95)
    return path


def smooth_photo(height: int, width: int, seed: int = 0):
    """uint8 RGB pixels of a colour gradient (what lossy formats keep within a level or two)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    planes = [np.sin(3 * xx + 2 * yy + phase) for phase in rng.uniform(0, 6, 3)]
    return ((np.stack(planes, axis=-1) + 1) * 127.5).astype(np.uint8)


def weeks_after(dataset, n, start=1):
    """n weekly (date, value) rows continuing the series; `start` 2 skips a week."""
    last, value = dataset.arrays["dates_test"][-1], dataset.arrays["values_test"][-1]
    return [(last + 7 * k, round(float(value) + 0.05 * k, 2)) for k in range(start, start + n)]


def write_series_batch(project, batch, rows, name="weeks.csv"):
    folder = project / "data" / "incoming" / "co2" / batch
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("date,value\n" + "".join(f"{d},{v}\n" for d, v in rows))
    (folder / "READY").touch()  # uploaded: the batch counts at once
    return folder


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# `serving(..., env=ONE_WORKER)`: one web worker; MLflow's default (4) is for a team's load and
# would only cost start-up CPU here
ONE_WORKER = {"MLFLOW_WORKERS": "1"}


@contextlib.contextmanager
def serving(root: Path, command: str, *args: str, timeout: float = 120, env: dict[str, str] | None = None):
    """Run `python -m pipeline <command> --port P [args]` (ui or server) until the block ends; yields
    P. `env` adds variables."""
    import requests

    port = free_port()
    log = root / f"{command}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", command, "--port", str(port), *args],
            cwd=root,
            env={**os.environ, "PIPELINE_ROOT": str(root), **(env or {})},
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


def assert_plots_draw(artifacts: dict, folder: Path) -> None:
    """An objective's artifacts are texts and figures, and every figure draws as a PNG (titled as
    the run titles it)."""
    from matplotlib.figure import Figure

    from pipeline import plots

    for name, item in artifacts.items():
        assert isinstance(item, str | Figure), name
        if isinstance(item, Figure):
            plots.title(item, "a run")
            item.savefig(folder / name)
            assert (folder / name).read_bytes().startswith(PNG_SIGNATURE), name


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[-1]


STUB = """#!/bin/sh
# Stands in for the venv's python: records trainings instead of running them, runs the rest.
# `train-all --queue FILE` (what make train-all runs) trains the queued names and stamps them.
if [ "$1" = "-m" ] && [ "$2" = "pipeline" ] && [ "$3" = "train" ]; then echo "TRAINED $4"; exit 0; fi
if [ "$1" = "-m" ] && [ "$2" = "pipeline" ] && [ "$3" = "train-all" ]; then
  queue=$(echo "$@" | sed -n 's/.*--queue \\([^ ]*\\).*/\\1/p')
  for name in $(cat "$queue"); do
    echo "TRAINED $name"; mkdir -p .build/runs; touch .build/runs/$name.done
  done
  rm -f "$queue"; exit 0
fi
if [ "$1" = "-m" ] && [ "$2" = "pipeline" ] && [ "$3" = "transfer-curve" ]; then echo "CURVE"; exit 0; fi
if [ "$1" = "-m" ] && [ "$2" = "pipeline" ] && [ "$3" = "predict" ]; then
  shift 3; for arg in "$@"; do echo "ARG $arg"; done; exit 0
fi
exec {python} "$@"
"""


def make(root: Path, *args: str) -> subprocess.CompletedProcess:
    python = root / "python-stub"
    if not python.exists():
        python.write_text(STUB.format(python=sys.executable))
        python.chmod(0o755)
    return subprocess.run(
        ["make", "-f", str(REPO / "Makefile"), f"PY={python}", "VENV_STAMP=.venv-ready", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": os.environ["PYTHONPATH"],
            "PIPELINE_ROOT": str(root),
            "HOME": str(root),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}",
        },
    )


def raw_features_class():
    """A reusable-SavedModel feature module in raw TensorFlow (a tf.Module, no Keras)."""
    import tensorflow as tf

    class RawFeatures(tf.Module):
        """A reusable-SavedModel feature module in raw TensorFlow: training=True adds a visible offset."""

        # the format's attributes must be saved with the module: plain tracked lists here, in place
        # of tf.Module's computed (and unsaved) properties of the same names
        variables = trainable_variables = None

        def __init__(self, input_shape, features=4, rank=2):
            super().__init__()
            size = math.prod(input_shape)
            self.kernel = tf.Variable(
                tf.random.stateless_normal([size, features], seed=[1, 2]), name="dense/kernel"
            )
            self.bias = tf.Variable(tf.zeros([features]), name="dense/bias")
            self.offset = tf.Variable(tf.fill([features], 100.0), trainable=False, name="offset")
            self.rank = rank
            self.variables = [self.kernel, self.bias, self.offset]
            self.trainable_variables = [self.kernel, self.bias]
            self.regularization_losses = [
                tf.function(lambda: 0.5 * tf.reduce_sum(self.kernel**2), input_signature=[])
            ]

        @tf.function
        def __call__(self, images, training=False):
            flat = tf.reshape(images, [tf.shape(images)[0], -1])
            out = flat @ self.kernel + self.bias
            if training:
                out = out + self.offset
            return out if self.rank == 2 else tf.reshape(out, [-1, 1, 1, out.shape[-1]])

    return RawFeatures


def save_raw_module(path, input_shape=(8, 8, 1), features=4, rank=2):
    import tensorflow as tf

    module = raw_features_class()(input_shape, features, rank)
    spec = tf.TensorSpec([None, *input_shape], tf.float32)
    for training in (False, True):
        module.__call__.get_concrete_function(spec, training=training)
    tf.saved_model.save(module, str(path))
    return path


def cli_in_process(
    root: Path, capsys, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m pipeline ...` run by `pipeline.cli.main` in this process, in `root` (`env` adds
    variables): the exit code and output run_cli gives, without a fresh process paying TensorFlow's
    import again. Where an error can only come after that import, a bad-input test uses this; one
    real-process test per guarantee (run_cli) keeps checking the process itself."""
    from pipeline import cli

    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        code = cli.main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["python", "-m", "pipeline", *args], code, out, err)


CHAMPION_SETTINGS = ["train.limit=300", "train.epochs=2"]  # what `champions` trains with


# a real headless browser: Debian's chromium and chromium-driver (.ci/run installs them). Skipped
# where they are missing, except in CI (CI set, as .ci/run runs): there the `browser` fixture fails.
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
NO_CHROMIUM = "Chromium not found: apt-get install chromium chromium-driver"
needs_chromium = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER) and not IN_CI, reason=NO_CHROMIUM)
