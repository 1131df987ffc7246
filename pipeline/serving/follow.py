"""The scoring server's model: one registered version loaded, the alias it came from followed, and
what it is asked compared with its training data.

`Follower` keeps the version an alias (default `champion`) names. A thread reads the alias every
`poll` seconds; when it has moved, the new version is loaded (pipeline/training/loading.py, then
one prediction on the model's own input example) and swapped in with one assignment. A request
takes `follower.current` once, when it starts, so it finishes on the version it started on; the
next request gets the new one. So the server answers with a newly promoted version at most
`poll` seconds plus the new version's loading time after the promotion (docs/serving.md). A
version that fails to load is reported in one line and not tried again until the alias moves;
meanwhile the server keeps answering with the version it has.

`Observer` folds each answered request's inputs into a drift window (monitoring.DriftWindow) and,
once per window, never per request, writes the comparison with the version's drift profile to a
run `serve-<model>` in the MLflow experiment `predictions` (one run per served version).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
import socket
import sys
import threading
import time
from typing import Any

import numpy as np

from pipeline import images, monitoring, secrets
from pipeline.errors import UserError, first_line
from pipeline.monitoring import reference
from pipeline.training import resolve, tracking

EXPERIMENT = "predictions"  # where the served versions' drift windows are written


def say(line: str) -> None:
    print(f"serve: {secrets.redact(line)}", flush=True)


@dataclasses.dataclass(frozen=True)
class Settings:
    """What `python -m pipeline serve` was asked (docs/serving.md)."""

    name: str  # the registered model
    alias: str = "champion"
    poll: float = 10.0  # seconds between two reads of the alias
    drift_seconds: float = 60.0  # one drift comparison per this many seconds of requests
    allow_unsafe: bool = False  # --allow-unsafe-model (with PIPELINE_ALLOW_UNSAFE_MODELS=1)
    said: str = ""  # how the user named the model (`SERVE_MODEL=x`), for the messages


@dataclasses.dataclass(eq=False)
class Served:
    """One registered version, loaded and checked: what a request is answered with."""

    name: str
    version: str
    run_id: str
    data_hash: str
    model: Any  # the pyfunc (raw records in, answers out)
    schema: Any  # its input schema: MLflow's protocol parser reads records with it
    observer: Observer | None  # None: no drift profile with its run
    loaded_at: float  # time.time() when it started answering
    seconds: float  # how long loading it took

    def identity(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "run_id": self.run_id}

    def headers(self) -> dict[str, str]:
        return {"X-Model-Name": self.name, "X-Model-Version": self.version, "X-Model-Run-Id": self.run_id}


def alias_version(name: str, alias: str) -> str | None:
    """The version `alias` names now; None when the model or the alias does not exist."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
            return None
        raise


def warm_up(model, example, label: str) -> None:
    """Predict the model's own input example (it must answer it), then its first record alone: with
    two batch sizes traced, TensorFlow relaxes the batch dimension, so no request pays a trace."""
    if example is None:
        return
    try:
        model.predict(example)
    except Exception as exc:  # noqa: BLE001 - whatever it is, this version cannot serve
        raise UserError(
            f"{label} fails on its own input example: {first_line(exc)}; retrain it "
            "(make train-<experiment>), or serve another version (--alias / ALIAS=)"
        ) from None
    if isinstance(example, list) and len(example) > 1:
        with contextlib.suppress(Exception):  # e.g. a forecaster's history: one record is too short
            model.predict(example[:1])


def load_version(name: str, version: str, settings: Settings) -> Served:
    """Load version `version` of `name` the safe way, and check it answers its own input example."""
    from pipeline.training import loading  # TensorFlow: imported once the server has its port

    started = time.perf_counter()
    loaded = loading.load(f"models:/{name}/{version}", settings.allow_unsafe)
    model = loaded.pyfunc()
    warm_up(model, loaded.mlmodel.load_input_example(str(loaded.folder)), f"{name} v{version}")
    observer = None
    try:
        profile = reference.of_model(loaded)
    except UserError as exc:
        say(f"{name} v{version}: drift not measured ({exc})")
        profile = None
    if profile is not None:
        config = loaded.mlmodel.flavors.get("python_function", {}).get("config") or {}
        observer = Observer(name, version, loaded.run_id, settings, profile, config)
    else:
        say(f"{name} v{version}: no drift profile in run {loaded.run_id}; requests are not compared")
    data_hash = str(loaded.metadata.get("data_hash", ""))
    took = time.perf_counter() - started
    return Served(
        name,
        version,
        loaded.run_id,
        data_hash,
        model,
        model.metadata.get_input_schema(),
        observer,
        time.time(),
        took,
    )


class Follower:
    """The version an alias names, kept current by a polling thread (see the module's docstring)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.current: Served | None = None
        self._refused: str | None = None  # a version that failed to load: not retried
        self._missing = False  # the alias is gone: said once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> Served:
        """The version the alias names now (before serving: a failure here stops the server)."""
        name, alias = self.settings.name, self.settings.alias
        version = alias_version(name, alias)
        if version is None:
            raise resolve.no_alias(name, alias, self.settings.said or f"model '{name}'")
        self.current = load_version(name, version, self.settings)
        return self.current

    def check(self) -> bool:
        """One read of the alias; swaps in the version it names when that moved. True: swapped."""
        name, alias = self.settings.name, self.settings.alias
        version = alias_version(name, alias)
        if version is None:
            if not self._missing:
                say(f"{name}@{alias} no longer exists; still answering with v{self.current.version}")
            self._missing = True
            return False
        self._missing = False
        if version in (self.current.version, self._refused):
            return False
        try:
            new = load_version(name, version, self.settings)
        except Exception as exc:  # noqa: BLE001 - refused or broken: keep serving what we have
            self._refused = version
            say(
                f"{name}@{alias} moved to v{version}, which cannot be served ({first_line(exc)}); "
                f"still answering with v{self.current.version}"
            )
            return False
        old, self.current = self.current, new  # one assignment: a request sees old or new, whole
        say(
            f"{name}@{alias} moved to v{version} (run {new.run_id[:8]}, loaded in {new.seconds:.1f} s): "
            f"answering with it now (was v{old.version})"
        )
        if old.observer is not None:
            old.observer.stop()  # writes its last window and ends its run
        return True

    def _follow(self) -> None:
        while not self._stop.wait(self.settings.poll):
            try:
                self.check()
            except Exception as exc:  # noqa: BLE001 - e.g. the store is unreachable: try again later
                where = f"{self.settings.name}@{self.settings.alias}"
                say(f"cannot read {where} ({first_line(exc)}); trying again")

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._follow, name="Follower", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.current is not None and self.current.observer is not None:
            self.current.observer.stop()


# --------------------------------------------------------------------------- drift of the requests


def as_rows(data) -> list[dict]:
    """Records as MLflow's parser gave them: a DataFrame, a list of records, or columns (`inputs`)."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data.to_dict("records")
    if isinstance(data, dict):
        columns = {k: list(v) if isinstance(v, list | np.ndarray) else [v] for k, v in data.items()}
        count = max((len(v) for v in columns.values()), default=0)
        return [{k: v[i] for k, v in columns.items() if i < len(v)} for i in range(count)]
    return [row for row in data if isinstance(row, dict)]


def image_inputs(rows: list[dict], config: dict) -> np.ndarray:
    """The images of answered records as the served classifier read them (the same image rules,
    pipeline/images.py, whose copy the model carries)."""
    shape = tuple(int(d) for d in config["input_shape"])
    formats = tuple(config.get("formats") or ()) or None
    max_pixels = int(config.get("max_pixels", images.MAX_PIXELS))
    found = []
    for row in rows:
        text = row.get("image")
        if isinstance(text, str):
            text = text.split(",", 1)[1] if text.startswith("data:") else text
            found.append(images.decode(base64.b64decode(text), shape, max_pixels, formats))
        else:
            found.append(np.asarray(row["pixels"], dtype=np.float32).reshape(shape))
    return np.stack(found)


def series_inputs(rows: list[dict], season: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(dates, values, new): a request's history, its last points judged against the season before
    them (at most a season of them); None when the history is not longer than a season."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    dates = pd.to_datetime(frame["date"].astype(str), utc=True).dt.tz_localize(None).dt.normalize()
    order = np.argsort(dates.to_numpy(), kind="stable")
    values = pd.to_numeric(frame["value"]).to_numpy(np.float64)[order]
    new = min(len(values) - season, season)
    return (dates.to_numpy()[order], values, new) if new >= 1 else None


class Observer:
    """A served version's requests, compared with its training data once per window."""

    def __init__(self, name: str, version: str, run_id: str, settings: Settings, profile, config: dict):
        self.name, self.version, self.model_run_id = name, version, run_id
        self.alias, self.profile, self.config = settings.alias, profile, config
        self.window = monitoring.DriftWindow(profile, self.write, settings.drift_seconds).start()
        self.run_id: str | None = None  # the run is created with the first window written
        self.windows = 0
        self._lock = threading.Lock()
        self._requests = 0
        self._failed = 0
        self._closed = False

    def add(self, data, answers) -> None:
        """Fold one answered request into the window (its inputs' statistics; no comparison, no I/O)."""
        if self._closed:
            return
        try:
            stats = self.stats(as_rows(data), answers)
        except Exception as exc:  # noqa: BLE001 - drift never costs an answer
            with self._lock:
                self._failed += 1
                first = self._failed == 1
            if first:
                say(f"{self.name} v{self.version}: a request's drift statistics failed ({first_line(exc)})")
            return
        with self._lock:
            self._requests += 1
        if stats is not None:
            self.window.add(stats)

    def stats(self, rows: list[dict], answers):
        if self.profile.KIND == "images":
            x = image_inputs(rows, self.config)
            names = [str(n) for n in self.config.get("class_names") or []]
            proba = None
            if names and isinstance(answers, list):
                proba = np.array([[a["probabilities"][n] for n in names] for a in answers], dtype=np.float64)
            return self.profile.stats(x, proba)
        found = series_inputs(rows, self.profile.lookback)
        return None if found is None else self.profile.stats(*found)

    def write(self, drift) -> None:
        """One window's comparison as metrics (step = window number) and drift.png on the run."""
        import mlflow
        from mlflow.entities import Metric

        client = mlflow.MlflowClient()
        if self.run_id is None:
            self.run_id = self.start_run(client)
        with self._lock:
            requests, self._requests = self._requests, 0
        self.windows += 1
        now = int(time.time() * 1000)
        values = {**drift.metrics, "serve_requests": float(requests)}
        client.log_batch(self.run_id, [Metric(k, float(v), now, self.windows) for k, v in values.items()])
        client.log_figure(self.run_id, drift.figure(), "drift.png")
        say(f"{self.name} v{self.version}, window {self.windows}: {drift.line()} in {requests} request(s)")

    def start_run(self, client) -> str:
        experiment_id = tracking.get_or_create_experiment(EXPERIMENT)
        run_name = f"serve-{self.name}"
        tracking.close_left_running([experiment_id], f"attributes.run_name = '{run_name}'")  # killed with -9
        tags = {
            "model.name": self.name,
            "model.version": self.version,
            "model.run_id": self.model_run_id,
            "serve.alias": self.alias,
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
        }
        return client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id

    def stop(self) -> None:
        """Write what the last window gathered and end the run (FINISHED)."""
        self._closed = True
        self.window.stop()
        if self.run_id is not None:
            import mlflow

            try:
                mlflow.MlflowClient().set_terminated(self.run_id, "FINISHED")
            except Exception as exc:  # noqa: BLE001 - shutting down: say it, go on
                print(f"serve: could not end run {self.run_id} ({first_line(exc)})", file=sys.stderr)
