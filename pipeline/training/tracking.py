"""MLflow: where runs go, experiments created race-free, a run context that never stays RUNNING,
and what every run logs besides its model (params, dataset, per-epoch metrics).

Default store: sqlite:///<project>/mlruns/mlflow.db with artifacts under mlruns/artifacts/.
MLFLOW_TRACKING_URI overrides it (another SQLite file, or http://host:port of `mlflow server`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from typing import Any

from pipeline import atomic, secrets, startup
from pipeline.config import project_root
from pipeline.errors import require
from pipeline.training import store_root

# MLflow's dataset digest column holds 36 characters; the full sha256 goes in the data_hash tag.
DIGEST_CHARS = 36
MAX_PARAM_CHARS = 6000
# MLflow's settings for a run, set for its span where unset (a user's value wins)
RUN_ENVIRONMENT = {
    # MLflow samples system metrics every 10 s by default, so a run shorter than that records
    # none; one sample a second gives a 5-second run four or five
    "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1",
    # per-epoch metrics are logged asynchronously (off the training thread). With a
    # buffer, MLflow's queue waits on the run's end instead of polling once a second: ending the
    # run flushes at once, and the epochs of the last second go to the store in one batch
    "MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS": "1",
}


def default_uri() -> str:
    return f"sqlite:///{project_root() / 'mlruns' / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def shown_uri() -> str:
    """The tracking URI as printed and logged: its password hidden (pipeline/secrets.py)."""
    return secrets.redact(tracking_uri())


def uses_default_store() -> bool:
    return tracking_uri() == default_uri()


def configure() -> str:
    """Point MLflow at the store; creates mlruns/ for the default one, rewritten first for this
    folder when the project was moved or copied (training/store_root.py)."""
    import mlflow

    uri = tracking_uri()
    if uri.startswith("postgresql"):  # MLflow's SQL store over psycopg2
        require("psycopg2", extra="postgres", feature="a postgresql:// tracking URI")
    if uses_default_store():
        (project_root() / "mlruns").mkdir(exist_ok=True)
        old = store_root.follow(project_root())
        if old is not None:
            print(f"mlruns/: the project moved from {old}; its store now names this folder", file=sys.stderr)
    mlflow.set_tracking_uri(uri)
    return uri


def system_metrics() -> bool:
    """Whether runs record MLflow's system metrics (`system/...`: CPU, memory, disk, network, GPU
    when pynvml finds one): yes, unless MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=false. Sampled as
    RUN_ENVIRONMENT says."""
    from mlflow.environment_variables import MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING as enabled

    return enabled.get() if enabled.is_set() else True


def get_or_create_experiment(name: str) -> str:
    """Experiment id for `name`; safe when several processes create it at once."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    location = None
    if uses_default_store():
        location = (project_root() / "mlruns" / "artifacts" / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        experiment = client.get_experiment_by_name(name)  # another process won the race
        if experiment is None:
            raise
        return experiment.experiment_id


def init_store(experiments: list[str]) -> str:
    """Create (or upgrade) the store's schema and the experiments once, before parallel writers."""
    uri = configure()
    for name in experiments:
        get_or_create_experiment(name)
    return uri


# "true" on a sandboxed run (the Python API's, training/run.py's RunOptions.sandbox): left out of
# what production reads (reports, the latest run of an experiment)
SANDBOX_TAG = "sandbox"


def sandboxed(run) -> bool:
    return run.data.tags.get(SANDBOX_TAG) == "true"


def latest_run(task: str, run_name: str | None = None, order_by: str = "attributes.start_time DESC"):
    """The first FINISHED run of the MLflow experiment `task` (named `run_name`, when given) by
    `order_by` (default: the latest), sandboxed runs left out, or None."""
    import mlflow

    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(task)
    named = f" and attributes.run_name = '{run_name}'" if run_name else ""
    query = f"attributes.status = 'FINISHED'{named}"
    token = None
    while found:  # a page at a time: a notebook may have left many sandboxed runs on top
        page = client.search_runs(
            [found.experiment_id], query, order_by=[order_by], max_results=100, page_token=token
        )
        chosen = next((run for run in page if not sandboxed(run)), None)
        if chosen is not None or not page.token:
            return chosen
        token = page.token
    return None


@functools.cache  # once per process: train-all's workers train many runs of one checkout
def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True, text=True, timeout=5
        )
        commit = out.stdout.strip()
        if out.returncode != 0 or not commit:
            return "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=project_root(),
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class StoppedEarly(BaseException):
    """Raised inside a run by what stopped it on purpose (a sweep's scheduler): the run ends FINISHED
    with tag sweep.stopped_early=true, at once, before anything else of it runs.

    A BaseException, so no `except Exception` on the way (Keras, TensorFlow) swallows it.
    """


def _raise_on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def close_left_running(
    experiment_ids: list[str],
    where: str,
    status: str = "KILLED",
    reason: str = "its process died without ending the run",
    dead_only: bool = True,
) -> list[str]:
    """End with `status` (tag `killed_reason`) the RUNNING runs `where` selects (an MLflow search
    filter); dead_only: only those whose process on this host is gone (kill -9), never a live one's.
    The one place runs left RUNNING are closed; returns their ids."""
    import mlflow

    client = mlflow.MlflowClient()
    query = f"attributes.status = 'RUNNING' and {where}"
    closed = []
    for run in client.search_runs(experiment_ids, filter_string=query, max_results=10000):
        tags = run.data.tags
        mine = tags.get("host") == socket.gethostname() and tags.get("pid", "").isdigit()
        if dead_only and not (mine and not atomic.running(int(tags["pid"]))):
            continue
        client.set_tag(run.info.run_id, "killed_reason", reason)
        client.set_terminated(run.info.run_id, status)
        closed.append(run.info.run_id)
    return closed


@contextlib.contextmanager
def start_run(task: str, run_name: str, tags: dict[str, str], description: str = ""):
    """An MLflow run that ends FINISHED, or FAILED/KILLED on any exception or SIGTERM (FINISHED and
    tagged when it was stopped early on purpose: StoppedEarly). RUN_ENVIRONMENT and the SIGTERM
    handler hold for the run's span only.

    Started while another run is active, it is nested under that one (a sweep's child run).
    """
    with startup.environment(RUN_ENVIRONMENT):
        with _run(task, run_name, tags, description) as run:
            yield run


@contextlib.contextmanager
def _run(task: str, run_name: str, tags: dict[str, str], description: str):
    import mlflow

    configure()
    experiment_id = get_or_create_experiment(task)
    close_left_running([experiment_id], f"attributes.run_name = '{run_name}'")
    tags = {**tags, "host": socket.gethostname(), "pid": str(os.getpid())}
    # signal handlers belong to the main thread (a Ray Tune trial trains in a worker thread)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_on_sigterm) if main else None
    try:
        run = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=run_name,
            tags=tags,
            description=description or None,
            nested=mlflow.active_run() is not None,
            log_system_metrics=system_metrics(),
        )
        try:
            yield run
        except StoppedEarly:
            mlflow.set_tag("sweep.stopped_early", "true")
            mlflow.end_run("FINISHED")
            raise
        except KeyboardInterrupt:
            mlflow.end_run("KILLED")
            raise
        except BaseException:
            mlflow.end_run("FAILED")
            raise
        mlflow.end_run("FINISHED")
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def log_params(params: dict[str, Any]) -> None:
    import mlflow

    items = {k: _param_value(v) for k, v in params.items()}
    keys = list(items)
    for i in range(0, len(keys), 100):  # MLflow takes at most 100 params per batch
        mlflow.log_params({k: items[k] for k in keys[i : i + 100]})


def _param_value(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    return str(value)[:MAX_PARAM_CHARS]


def log_dataset(dataset, features, targets=None, context: str = "training") -> None:
    """Log a dataset input (mlflow.data) whose digest is the manifest's content hash, and the image
    files data prep skipped as unreadable (`max_unreadable`), if any.

    MLflow records the features' and targets' schema and size, never their values: images read on
    use (data.streams.Rows) are described by an array of their shape that holds no data."""
    import mlflow
    import numpy as np

    from pipeline.data import streams

    features, targets = (
        v if v is None or isinstance(v, np.ndarray) else streams.shape_only(v) for v in (features, targets)
    )
    log_unreadable(dataset)
    with warnings.catch_warnings():
        # a local path matches MLflow's two local-artifact source types, both the same class
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        data = mlflow.data.from_numpy(
            features=features,
            targets=targets,
            source=str(dataset.path),
            name=dataset.name,
            digest=dataset.sha256[:DIGEST_CHARS],
        )
    try:
        mlflow.log_input(data, context=context)
    except mlflow.exceptions.MlflowException:
        # sibling runs started at once (make -j2) both insert the task's dataset row and one
        # violates the unique constraint; a second try finds the row (a real error raises again)
        time.sleep(0.5)
        mlflow.log_input(data, context=context)


UNREADABLE_ARTIFACT = "data/unreadable.csv"


def log_unreadable(dataset) -> None:
    """A folder dataset's skipped files: tag `data_unreadable` (their count) and, when there are
    any, the artifact data/unreadable.csv (file, reason) as the manifest lists them."""
    import csv
    import io

    import mlflow

    skipped = dataset.manifest.unreadable
    if skipped is None:  # not an image folder
        return
    mlflow.set_tag("data_unreadable", str(len(skipped)))
    if skipped:
        table = io.StringIO()
        writer = csv.DictWriter(table, ["file", "reason"], extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(skipped)
        mlflow.log_text(table.getvalue(), UNREADABLE_ARTIFACT)


def epoch_logger():
    """A Keras callback logging each epoch's metrics to the active run (step = epoch)."""
    import keras
    import mlflow

    def log_epoch(epoch: int, logs: dict | None) -> None:
        if logs:
            mlflow.log_metrics({k: float(v) for k, v in logs.items()}, step=epoch, synchronous=False)

    return keras.callbacks.LambdaCallback(on_epoch_end=log_epoch)


def epoch_texts(texts):
    """A Keras callback logging text artifacts after each epoch: `texts(model)` gives {name: text};
    each file holds every epoch's text so far, under an `epoch N` heading."""
    import keras
    import mlflow

    logged: dict[str, str] = {}

    def log_texts(epoch: int, logs: dict | None) -> None:
        for name, text in texts(callback.model).items():
            logged[name] = logged.get(name, "") + f"epoch {epoch + 1}\n{text}\n"
            mlflow.log_text(logged[name], name)

    callback = keras.callbacks.LambdaCallback(on_epoch_end=log_texts)
    return callback
