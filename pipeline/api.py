"""The pipeline as a Python API: what a notebook or a script calls (docs/api.md).

    import pipeline

    trained = pipeline.train("cnn-same", {"train.epochs": 5})  # one MLflow run, as the CLI trains it
    trained.metric, trained.value, trained.link                # headline metric, its value, the UI page
    trained.model.keras().summary()                            # the logged model, loaded safely
    pipeline.runs("digits-classification")                     # what `make report` shows, a DataFrame
    pipeline.load_model("digits-classifier")                   # a registered model's champion, or a run

Every call logs into the project's store as the CLI does (the project is PIPELINE_ROOT or the
working directory, the store MLFLOW_TRACKING_URI or its mlruns/), with the CLI's settings for the
call's span only (`quietly`), so it leaves the caller's process as it found it. Nothing heavy is
imported until a function needs it: importing `pipeline` imports neither TensorFlow nor MLflow.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

# --------------------------------------------------------------------------- the caller's process


def quietly(function):
    """A public function: run with the CLI's settings and quiet logs for the call's span
    (startup.quiet). MLFLOW_TRACKING_URI is put back as it was too: MLflow copies the URI it is
    given into the environment (mlflow.set_tracking_uri), where it would win over the project of a
    later call (another PIPELINE_ROOT)."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        from pipeline import startup

        with startup.quiet(), startup.environment(put_back=["MLFLOW_TRACKING_URI"]):
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
    pandas DataFrame, best first (run, the headline metric, the other test metrics, size, family,
    the params that differ; `best` marks the best by the task's headline metric, also in
    `.attrs["headline"]`). Empty when it has none."""
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
    """The model `name` names, loaded through pipeline.training.loading (only the forms the pipeline
    logs): a registered model at `alias` (the version the alias names now), an experiment of
    params.yaml (its latest finished run), a run id (6+ hex digits) or a models:/… / runs:/… URI.
    `.predict(x)` answers on arrays, `.keras()` / `.native()` give the model itself, `.pyfunc()`
    the model as MLflow serves it."""
    from pipeline.training import loading, resolve

    return loading.load(resolve.resolve(name, alias).uri)


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
        return loading.load(self.model_uri)

    def figures(self) -> list[str]:
        """The PNG files the run logged (training curves, confusion matrix, forecast, …)."""
        import mlflow

        listed = mlflow.MlflowClient().list_artifacts(self.run_id)
        return sorted(a.path for a in listed if a.path.endswith(".png"))

    def figure(self, name: str) -> Picture:
        """One of `figures()`, as the run logged it."""
        import mlflow

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


# --------------------------------------------------------------------------- text completion


def text_model(name: str):
    """(the run's params, the model loaded safely, its vocabulary) of what `name` names (as
    `load_model` resolves it: a text-completion experiment's latest finished run, a run id, …)."""
    import mlflow

    from pipeline.errors import UserError
    from pipeline.text import UNKNOWN, Vocabulary
    from pipeline.training import loading, resolve

    found = resolve.resolve(name)
    loaded = loading.load(found.uri)
    params = mlflow.MlflowClient().get_run(found.run_id).data.params if found.run_id else {}
    chars = loaded.class_names or []
    if "objective.window" not in params or not chars or chars[0] != UNKNOWN:
        raise UserError(f"model '{name}' is not a text-completion run's (its model reads no characters)")
    return params, loaded, Vocabulary(tuple(chars))


@quietly
def complete(
    prompt: str | Sequence[str],
    experiment: str,
    *,
    length: int = 200,
    temperature: float = 0.5,
    seed: int = 0,
) -> str | list[str]:
    """`prompt` continued by `length` characters of the latest run of a text-completion `experiment`
    (char-lstm, char-rnn, char-ngram), its model loaded safely. Each character is drawn
    from the model's odds sharpened by `temperature` (0: always the likeliest); the same seed draws
    the same text. A list of prompts gives a list of completions."""
    from pipeline import inference, startup
    from pipeline.text import complete as completed

    startup.quiet_tensorflow()
    params, loaded, vocabulary = text_model(experiment)
    model = loaded.keras() if loaded.form == "keras" else loaded
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    window = int(params["objective.window"])
    predict = inference.for_many_calls(model)
    made = completed(predict, vocabulary, prompts, length, window, temperature, seed)
    return made[0] if isinstance(prompt, str) else made


@quietly
def memory(experiment: str, sample: int = 2000):
    """How far back the latest run of a text-completion `experiment` remembers, on the test text:
    a pandas DataFrame of bits per character when it sees only the last m characters (at `sample`
    fixed positions), and on the closing brackets by how far back their opening bracket is
    (pipeline.objectives.next_character.memory)."""
    import pandas as pd

    from pipeline import config, data, startup
    from pipeline.objectives import next_character
    from pipeline.training import plan

    startup.quiet_tensorflow()
    _, loaded, _ = text_model(experiment)
    chosen = plan.make_plan(config.load_params(), experiment)
    dataset = data.load(chosen.exp.dataset)
    splits, _ = chosen.objective.prepare(dataset, chosen.train, chosen.objective_params)
    model = loaded.keras() if loaded.form == "keras" else loaded
    rows = next_character.memory(model, splits, chosen.objective_params, sample)
    return pd.DataFrame(rows).set_index("what")
