"""The pipeline as a Python API: what a notebook or a script calls (docs/api.md).

    import pipeline

    trained = pipeline.train("cnn-same", {"train.epochs": 5})  # one MLflow run, as the CLI trains it
    trained.metric, trained.value, trained.link                # headline metric, its value, the UI page
    trained.model.keras().summary()                            # the logged model, loaded safely
    pipeline.runs("digits-classification")                     # what `make report` shows, a DataFrame
    pipeline.load_model("digits-classifier")                   # a registered model by alias (champion)

Every call logs into the project's store as the CLI does (the project is PIPELINE_ROOT or the
working directory, the store MLFLOW_TRACKING_URI or its mlruns/) and leaves the caller's process
as it found it (`restored`). Nothing heavy is imported until a function needs it: importing
`pipeline` imports neither TensorFlow nor MLflow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

# --------------------------------------------------------------------------- the caller's process


def logger_states() -> dict[str, tuple]:
    """Every logger that exists now: level, filters, handlers, propagate, disabled."""
    loggers = [logging.getLogger()] + [
        x for x in logging.root.manager.loggerDict.values() if isinstance(x, logging.Logger)
    ]
    return {x.name: (x, x.level, list(x.filters), list(x.handlers), x.propagate, x.disabled) for x in loggers}


def restore_loggers(states: dict[str, tuple]) -> None:
    for logger, level, filters, handlers, propagate, disabled in states.values():
        logger.setLevel(level)
        logger.filters[:] = filters
        logger.handlers[:] = handlers
        logger.propagate, logger.disabled = propagate, disabled


def restore_environ(saved: dict[str, str]) -> None:
    for name in [n for n in os.environ if n not in saved]:
        del os.environ[name]
    for name, value in saved.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def signal_handlers() -> dict[signal.Signals, Any]:
    """The Python-level handlers of every catchable signal (only the main thread may set them)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {
        s: signal.getsignal(s) for s in signal.valid_signals() if s not in (signal.SIGKILL, signal.SIGSTOP)
    }


def restore_signals(saved: dict[signal.Signals, Any]) -> None:
    for number, handler in saved.items():
        if handler is not None and signal.getsignal(number) is not handler:
            signal.signal(number, handler)


def matplotlib_backend() -> str | None:
    """pyplot's backend, when matplotlib is imported and has chosen one."""
    if "matplotlib" not in sys.modules:
        return None
    return sys.modules["matplotlib"].get_backend(auto_select=False)


@contextlib.contextmanager
def restored() -> Iterator[None]:
    """Undo what a call changes in the caller's process: environment variables, every existing
    logger's level, filters and handlers, the garbage collector (enabled, thresholds, frozen
    objects), signal handlers and pyplot's backend (the pipeline draws with Agg).

    Not undone (docs/api.md): the seeds a run sets and TensorFlow's op determinism."""
    environ, loggers, handlers = dict(os.environ), logger_states(), signal_handlers()
    collector = (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count())
    backend = matplotlib_backend()
    try:
        yield
    finally:
        restore_environ(environ)
        restore_loggers(loggers)
        restore_signals(handlers)
        enabled, threshold, frozen = collector
        if not frozen and gc.get_freeze_count():
            gc.unfreeze()
        gc.set_threshold(*threshold)
        (gc.enable if enabled else gc.disable)()
        if backend is not None and matplotlib_backend() != backend:
            sys.modules["matplotlib"].use(backend)


def quietly(function):
    """A public function: run inside `restored()`, with the CLI's quiet library logs."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        from pipeline import startup

        with restored():
            startup.quiet_logs()
            return function(*args, **kwargs)

    return call


# --------------------------------------------------------------------------- the store


def task_id(task: str) -> str:
    """The MLflow experiment id of a task; UserError naming the known ones when it has no runs."""
    import mlflow

    from pipeline.errors import UserError
    from pipeline.training import tracking

    tracking.configure()
    found = mlflow.MlflowClient().get_experiment_by_name(task)
    if found is None:
        known = sorted(e.name for e in mlflow.search_experiments() if e.name != "Default")
        raise UserError(
            f"no task '{task}' in {tracking.shown_uri()}; known: {', '.join(known) or 'none yet'}"
        )
    return found.experiment_id


@quietly
def link(task: str) -> str:
    """The task's runs in the MLflow UI (`make ui`'s link, or the tracking server's)."""
    from pipeline.tools import ui

    return ui.experiment_link(ui.base_url(), task_id(task))


@quietly
def runs(task: str):
    """The latest finished run of each experiment of `task`, as `make report` tabulates them: a
    pandas DataFrame (run, family, test metrics, size, the params that differ; `best` marks the
    best by the task's headline metric, also in `.attrs["headline"]`). Empty when it has none."""
    import pandas as pd

    from pipeline.tools import report

    latest = report.task_runs(task_id(task))
    if latest.empty:
        return pd.DataFrame()
    table, headline, _ = report.task_table(latest)
    table.attrs["headline"] = headline
    return table


@quietly
def load_model(name: str, alias: str = "champion"):
    """The registered model `name` at `alias`, loaded through pipeline.training.loading (only the
    forms the pipeline logs; the version the alias names now). `.predict(x)` answers on arrays,
    `.keras()` / `.native()` give the model itself, `.pyfunc()` the model as MLflow serves it."""
    from pipeline.training import loading

    return loading.load(loading.pinned(f"models:/{name}@{alias}"))


# --------------------------------------------------------------------------- training


@dataclasses.dataclass(frozen=True)
class Picture:
    """A PNG a run logged; Jupyter shows it inline."""

    name: str
    png: bytes = dataclasses.field(repr=False)

    def _repr_png_(self) -> bytes:
        return self.png


@dataclasses.dataclass(eq=False)
class Trained:
    """One experiment trained: its MLflow run, headline metric, model and UI page."""

    experiment: str
    task: str
    run_id: str
    metric: str  # the task's headline metric, e.g. test_accuracy
    value: float | None
    metrics: dict[str, float]
    model_uri: str | None  # the logged model (runs:/… or models:/…)
    link: str  # the task's runs in the MLflow UI
    outcome: Any = dataclasses.field(repr=False)  # pipeline.training.run.Outcome

    @functools.cached_property
    def model(self):
        """The logged model, loaded as `load_model` loads one (pipeline.training.loading)."""
        from pipeline.training import loading

        if self.model_uri is None:
            raise LookupError(f"run {self.run_id} logged no model")
        with restored():
            return loading.load(self.model_uri)

    def figures(self) -> list[str]:
        """The PNG files the run logged (training curves, confusion matrix, forecast, …)."""
        import mlflow

        with restored():
            listed = mlflow.MlflowClient().list_artifacts(self.run_id)
        return sorted(a.path for a in listed if a.path.endswith(".png"))

    def figure(self, name: str) -> Picture:
        """One of `figures()`, as the run logged it."""
        import mlflow

        with restored():
            path = mlflow.artifacts.download_artifacts(run_id=self.run_id, artifact_path=name)
        with open(path, "rb") as handle:
            return Picture(name, handle.read())


def as_overrides(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """{"train.epochs": 5} or ["train.epochs=5"] → ["train.epochs=5"] (values as YAML reads them)."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    return list(overrides)


@quietly
def train(
    experiment: str,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    epochs: int | None = None,
    limit: int | None = None,
    verbose: int | str | None = 0,
) -> Trained:
    """Train one experiment of params.yaml as `python -m pipeline train` does: one MLflow run in its
    task, a registered model through the promotion gate. `overrides` as `--set` takes them:
    {"train.epochs": 5, "model.padding": "valid"}; `epochs` and `limit` (at most that many
    training examples) are short for train.epochs and train.limit, None keeping params.yaml's.
    `verbose`: Keras' fit verbosity (None: the CLI's default, progress bars on a terminal)."""
    from pipeline import config, startup
    from pipeline.tools import ui
    from pipeline.training import plan

    short = {"train.epochs": epochs, "train.limit": limit}
    changes = as_overrides({k: v for k, v in short.items() if v is not None}) + as_overrides(overrides)
    # name, dataset, family and train-section errors answer before TensorFlow's import
    plan.check_unimported(config.load_params(), experiment, changes)
    startup.quiet_tensorflow()
    from pipeline.training.run import RunOptions
    from pipeline.workflows import train_and_gate as workflow

    outcome = workflow.train(experiment, changes, RunOptions(verbose=verbose))
    task, headline = outcome.plan.exp.task, outcome.plan.objective.headline
    return Trained(
        experiment=experiment,
        task=task,
        run_id=outcome.run_id,
        metric=headline,
        value=outcome.metrics.get(headline),
        metrics=dict(outcome.metrics),
        model_uri=outcome.model_uri,
        link=ui.experiment_link(ui.base_url(), task_id(task)),
        outcome=outcome,
    )


# --------------------------------------------------------------------------- the lecture's examples


@dataclasses.dataclass(eq=False)
class Worked:
    """One worked example of the lecture, computed and logged as a run of the experiment `lecture`."""

    name: str
    title: str
    numbers: dict[str, Any]  # what `python -m pipeline lecture NAME --json` prints: at least `output`
    figure: Any = dataclasses.field(repr=False)  # the matplotlib figure the run logged
    run_id: str
    link: str  # the `lecture` experiment's runs in the MLflow UI


@quietly
def example(name: str, **settings: Any) -> Worked:
    """Compute one of the lecture's worked examples (`python -m pipeline lecture --help` lists
    them), log it as `make lecture` does and return its numbers and figure. `settings` go to the
    example's function (gradient-step's `learning_rate`)."""
    from pipeline import startup

    startup.quiet_tensorflow()  # the examples are Keras layers: TensorFlow, without its start-up lines
    from pipeline.lecture import examples, run
    from pipeline.tools import ui

    (chosen,) = run.chosen([name])
    worked = examples.EXAMPLES[chosen](**settings)
    figure = run.figure_of(worked)
    run_id = run.log(worked, figure)
    link = ui.experiment_link(ui.base_url(), task_id(run.TASK))
    return Worked(chosen, worked.title, worked.numbers, figure, run_id, link)
