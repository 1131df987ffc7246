"""The pipeline as a Python API: what a notebook or a script calls (docs/api.md).

    import pipeline

    trained = pipeline.train("cnn-same", {"train.epochs": 5})  # one MLflow run, sandboxed
    trained.metric, trained.value, trained.link                # headline metric, its value, the UI page
    trained.summary()                                          # the logged model's Keras summary
    pipeline.show("cnn-same")                                  # the Keras code of its family's model
    mine = pipeline.fit(my_keras_model, "cnn-same", name="my-cnn")  # your model, as a family's run
    pipeline.runs("digits-classification", sandbox=True)       # `make report`'s rows and yours
    pipeline.load_model("digits-classifier")                   # a registered model's champion, or a run

Every call logs into the project's store as the CLI does (the project is PIPELINE_ROOT or the
working directory, the store MLFLOW_TRACKING_URI or its mlruns/), with the CLI's settings for the
call's span only (`quietly`), so it leaves the caller's process as it found it. Nothing heavy is
imported until a function needs it: importing `pipeline` imports neither TensorFlow nor MLflow.
A training is sandboxed unless `sandbox=False` (training/run.py's RunOptions.sandbox): it
registers and promotes nothing, publishes only to this process's sandbox, and its runs are left
out of `make report` and of `runs(task)`; only the CLI and make targets change production.
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
def runs(task: str, sandbox: bool = False):
    """The latest finished run of each experiment of `task`, as `make report` tabulates them: a
    pandas DataFrame, best first (run, the headline metric, the other test metrics, size, family,
    the params that differ; `best` marks the best by the task's headline metric, also in
    `.attrs["headline"]`). Empty when it has none. Sandboxed runs (the API's trainings) are left
    out; `sandbox=True` adds the latest sandboxed run of each name beside them, marked `sandbox`."""
    import pandas as pd

    from pipeline.tools import report

    latest = report.task_runs(task_id(task), sandbox)
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

    def summary(self) -> None:
        """Keras' `model.summary()` of the model the run logged (an estimator: its repr)."""
        loaded = self.model
        if loaded.form in ("keras", "served"):
            loaded.keras().summary()
        else:
            print(loaded.native())


def as_overrides(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    """{"train.epochs": 5} or ["train.epochs=5"] → ["train.epochs=5"] (values as YAML reads them)."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    return list(overrides)


def changes(overrides, epochs: int | None, limit: int | None) -> list[str]:
    """The `--set` strings of a call: `epochs` and `limit` first (None keeping params.yaml's)."""
    short = {"train.epochs": epochs, "train.limit": limit}
    return as_overrides({k: v for k, v in short.items() if v is not None}) + as_overrides(overrides)


def trained(outcome, name: str) -> Trained:
    """What a training call returns, from the training core's Outcome."""
    from pipeline.tools import ui

    task, headline = outcome.plan.exp.task, outcome.plan.objective.headline
    return Trained(
        experiment=name,
        task=task,
        run_id=outcome.run_id,
        metric=headline,
        value=outcome.metrics.get(headline),
        metrics=dict(outcome.metrics),
        model_uri=outcome.model_uri,
        link=ui.experiment_link(ui.base_url(), task_id(task)),
        outcome=outcome,
    )


@quietly
def train(
    experiment: str,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    epochs: int | None = None,
    limit: int | None = None,
    verbose: int | str | None = 0,
    sandbox: bool = True,
) -> Trained:
    """Train one experiment of params.yaml: one MLflow run in its task. `overrides` as `--set`
    takes them: {"train.epochs": 5, "model.padding": "valid"}; `epochs` and `limit` (at most that
    many training examples) are short for train.epochs and train.limit, None keeping params.yaml's.
    `verbose`: Keras' fit verbosity (None: the CLI's default, progress bars on a terminal).
    Sandboxed (the default): nothing registered, published only to this process's sandbox, left
    out of reports. `sandbox=False` is `python -m pipeline train`: a registered model goes through
    the promotion gate."""
    from pipeline import config, startup
    from pipeline.training import plan

    planned = changes(overrides, epochs, limit)
    # name, dataset, family and train-section errors answer before TensorFlow's import
    plan.check_unimported(config.load_params(), experiment, planned)
    startup.quiet_tensorflow()
    from pipeline.training.run import RunOptions
    from pipeline.workflows import train_and_gate as workflow

    outcome = workflow.train(experiment, planned, RunOptions(verbose=verbose, sandbox=sandbox))
    return trained(outcome, experiment)


@quietly
def fit(
    model,
    experiment: str,
    name: str | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    epochs: int | None = None,
    limit: int | None = None,
    verbose: int | str | None = 0,
    sandbox: bool = True,
) -> Trained:
    """Train your own Keras `model` as `experiment`'s family would be (training/given.py): its
    data, objective and `train:` settings (`overrides`, `epochs`, `limit` as for `train`), one
    MLflow run in its task named `name` (default: the model's name), with the same callbacks,
    per-epoch metrics, evaluation, figures and logged model. An uncompiled model gets the
    experiment's optimizer and loss, a compiled one keeps its own; the metrics are the objective's.
    `model` may also be a function of the data's spec that builds it. Sandboxed as `train`; never
    registered. A model whose shapes do not fit the task is one line naming the expected shapes."""
    from pipeline import config, startup
    from pipeline.errors import UserError
    from pipeline.training import plan

    params = config.load_params()
    planned = changes(overrides, epochs, limit)
    plan.check_unimported(params, experiment, planned)
    named = name or getattr(model, "name", None) or getattr(model, "__name__", None)
    run_name = config.check_name(named, "pipeline.fit: name")
    if run_name in config.experiment_names(params):
        raise UserError(
            f"pipeline.fit: name '{run_name}' is an experiment of params.yaml; give your model its own "
            "name (name='my-cnn')"
        )
    startup.quiet_tensorflow()
    from pipeline.training import given, run

    options = run.RunOptions(run_name=run_name, verbose=verbose, resume=False, sandbox=sandbox)
    base = run.sandboxed(plan.make_plan(params, experiment, planned), options)  # what it reads, too
    return trained(run.run_plan(given.plan_for(base, model), options, params), run_name)


@quietly
def show(name: str):
    """The Keras code of an experiment's model (or a family's, by its name): its family's `build`
    and the model code it calls, as the training core runs it. Jupyter shows it as Python."""
    from pipeline import config, models, startup
    from pipeline.errors import UserError
    from pipeline.lecture import keras_view

    params = config.load_params()
    experiments = config.experiment_names(params)
    family = config.resolve_experiment(params, name).family if name in experiments else name
    if family not in models.FAMILIES:
        raise UserError(
            f"pipeline.show: '{name}' is neither an experiment of params.yaml nor a model family"
            f"{config.suggest(name, [*experiments, *models.FAMILIES])}"
        )
    startup.quiet_tensorflow()  # the family's module imports Keras: TensorFlow, quietly
    return keras_view.code(family)


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


def text_model(name: str | Trained):
    """(the run's params, the model loaded safely, its vocabulary) of what `name` names (as
    `load_model` resolves it: a text-completion experiment's latest finished run, a run id, …), or
    of a training's run (a `Trained`: the notebook's own, sandboxed)."""
    import mlflow

    from pipeline.errors import UserError
    from pipeline.text import UNKNOWN, Vocabulary
    from pipeline.training import loading, resolve

    name = name.run_id if isinstance(name, Trained) else name
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
    experiment: str | Trained,
    *,
    length: int = 200,
    temperature: float = 0.5,
    seed: int = 0,
) -> str | list[str]:
    """`prompt` continued by `length` characters of the latest run of a text-completion `experiment`
    (char-lstm, char-rnn, char-ngram; sandboxed runs left out) or of a training's run (a `Trained`,
    e.g. the notebook's own), its model loaded safely. Each character is drawn
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
def memory(experiment: str | Trained, sample: int = 2000):
    """How far back the latest run of a text-completion `experiment` (or a `Trained`'s run, as for
    `complete`) remembers, on the test text:
    a pandas DataFrame of bits per character when it sees only the last m characters (at `sample`
    fixed positions), and on the closing brackets by how far back their opening bracket is
    (pipeline.objectives.next_character.memory)."""
    import pandas as pd

    from pipeline import config, data, startup
    from pipeline.objectives import next_character
    from pipeline.training import plan

    startup.quiet_tensorflow()
    _, loaded, _ = text_model(experiment)
    name = experiment.outcome.plan.exp.name if isinstance(experiment, Trained) else experiment
    chosen = plan.make_plan(config.load_params(), name)
    dataset = data.load(chosen.exp.dataset)
    splits, _ = chosen.objective.prepare(dataset, chosen.train, chosen.objective_params)
    model = loaded.keras() if loaded.form == "keras" else loaded
    rows = next_character.memory(model, splits, chosen.objective_params, sample)
    return pd.DataFrame(rows).set_index("what")
