"""The training core: one experiment → one MLflow run → an outcome.

    data → model → fit → evaluate → log

`run()` trains one experiment of params.yaml (a `Plan`) inside one MLflow run and returns what
came out of it. It applies no promotion gate: callers that register models decide (see
pipeline/workflows/train_and_gate.py and retrain.py). How it runs is one `RunOptions` value.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras
import mlflow

from pipeline import config, data, inference, layout, plots
from pipeline.data import streams
from pipeline.models import fit_with_loop
from pipeline.specs import ClassifierSpec, Splits
from pipeline.training import artifacts, keras_loop, registry, tracking
from pipeline.training.gate import Decision
from pipeline.training.plan import Plan, make_plan, params_to_log, run_tags


def default_verbosity() -> int | str:
    """Keras progress bars on a terminal, one line per epoch in logs (make -j, cron)."""
    return "auto" if sys.stdout.isatty() else 2


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How one run is made; the defaults are `python -m pipeline train <experiment>`."""

    dataset: Any = None  # a data.Dataset replacing the prepared one (retrain's candidate version)
    run_name: str | None = None  # default: the experiment's name
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)  # extra run tags
    log_outputs: bool = True  # False: params, tags and metrics only (no figures, model, published files)
    resume: bool = True  # resume from / leave a BackupAndRestore backup (False: sweep trials)
    verbose: int | str | None = None  # Keras' fit verbosity; None: default_verbosity()
    callbacks: tuple[keras.callbacks.Callback, ...] = ()  # added to every fit (a sweep's Tune reporter)
    # (plan, model, splits, dataset) → {artifact path: text}: files logged beside a registered model,
    # before it is registered (the workflows pass monitoring's drift profile: reference.for_run)
    extra_artifacts: Callable[[Plan, Any, Splits, Any], Mapping[str, str]] | None = None
    # register the model (register_as) at the end of the run; False: the caller registers
    # `Outcome.model_uri` later (retrain commits the data version first)
    register: bool = True
    # a sandboxed run (the Python API's default) registers nothing, publishes its files to this
    # process's sandbox (layout.sandbox(), where the family reads them back) and is tagged
    # tracking.SANDBOX_TAG, so reports and make leave it out; only the CLI and make train unsandboxed
    sandbox: bool = False


@dataclasses.dataclass(frozen=True)
class Outcome:
    plan: Plan
    run_id: str
    metrics: dict[str, float]
    model_version: str | None  # registered version, when the experiment has register_as
    splits: Any = dataclasses.field(default=None, repr=False, compare=False)  # the data it was scored on
    decision: Decision | None = None  # the promotion gate's, when a caller applied it
    problem: str = ""  # what the run solves (its `problem` tag): runs are compared within one
    best_epoch: int | None = None  # Keras runs: the epoch (1-based) whose weights were kept
    model_uri: str | None = None  # the logged model (runs:/… or models:/…), when outputs were logged
    quality_warning: str | None = None  # what looks wrong with the model (the run's tag), if anything


def backup_dir(plan: Plan, dataset) -> Path:
    """Where BackupAndRestore keeps the last completed epoch: a killed run resumes from it.

    Keyed by the resolved params and the data, so a changed experiment never resumes a stale one.
    """
    key = f"{plan.exp.name}-{plan.exp.fingerprint()[:12]}-{dataset.sha256[:12]}"
    return layout.backups() / key


def train_model(plan: Plan, model, splits: Splits, dataset, options: RunOptions, backup: Path | None):
    """Keras families go through the core's loop (or their own `fit` hook); estimators `.fit(x, y)`
    on whole arrays. Images (streams.Rows) and text (corpus.Windows) train from their stream."""
    if plan.family.kind == "estimator":
        plan.family.fit_estimator(model, streams.floats(splits.x_train), splits.y_train, splits.validation)
        return None
    # the family's callbacks first: what they add to an epoch's logs, the epoch logger logs
    extra = plan.family.callbacks(plan.model, splits.x_train, splits.y_train)
    callbacks = (*extra, tracking.epoch_logger(), *options.callbacks)
    objective = plan.objective
    if objective.epoch_artifacts is not None and options.log_outputs:  # e.g. completions, each epoch
        texts = objective.epoch_artifacts
        callbacks += (tracking.epoch_texts(lambda model: texts(model, splits, plan.objective_params)),)
    verbose = default_verbosity() if options.verbose is None else options.verbose

    def loop(model, extra=(), inputs=None, **kwargs):
        x, validation = splits.x_train, splits.validation
        if inputs is not None:  # the family's model takes what `inputs` makes of the images
            x = x.features(inputs(x))
            validation = validation and (validation[0].features(inputs(validation[0])), validation[1])
        return keras_loop.fit(
            model,
            (x, splits.y_train, validation),
            plan.train,
            objective.loss,
            objective.keras_metrics(),
            verbose=verbose,
            callbacks=(*callbacks, *extra),
            streamed=dataset.manifest.streamed,
            **kwargs,
        )

    if not uses_default_fit(plan):  # a family's own phases: no backup across them
        return plan.family.fit(model, plan.model, plan.train, loop)
    return keras_loop.fit_resumable(lambda extra: loop(model, extra), backup)


def strategy_of(plan: Plan):
    """The device strategy of a Keras family's `train.strategy`; estimators have none (the default)."""
    return keras_loop.distribution(plan.train.strategy if plan.family.kind == "keras" else "default")


def uses_default_fit(plan: Plan) -> bool:
    return plan.family.fit is fit_with_loop


def evaluate(plan: Plan, model, splits: Splits, history) -> tuple[dict, dict]:
    """Test metrics, the model's size and training length, and the artifacts that explain them."""
    found: dict = {"model_summary.txt": artifacts.model_summary(model)}
    size = plan.family.count_params(model)
    if isinstance(model, keras.Model) or size is not None:
        found["layer_params.csv"] = artifacts.layer_table(model, size)
    metrics, evaluation = plan.objective.evaluate(model, splits, plan.objective_params)
    if history:
        found["training_curves.png"] = plots.training_curves(history, "training curves")
        metrics["epochs_trained"] = len(history["loss"])
        metrics["epochs_to_converge"] = keras_loop.epochs_to_converge(history)
    if size is not None:
        metrics["model_params"] = size
    found.update(evaluation)
    return metrics, found


def resolved(plan: Plan, spec, splits: Splits) -> tuple[Plan, Any]:
    """The plan with the family's data-dependent choices made (e.g. cnn's `auto` knobs), and the
    spec with the steps an epoch: the run builds with, and logs, these params."""
    if isinstance(spec, ClassifierSpec) and plan.family.kind == "keras":
        spec = dataclasses.replace(
            spec, steps_per_epoch=math.ceil(len(splits.x_train) / plan.train.batch_size)
        )
    return dataclasses.replace(plan, model=plan.family.resolve(plan.model, spec)), spec


def quality_warning(plan: Plan, metrics: dict, history, splits: Splits) -> str | None:
    """The objective's warning about the trained model, printed as one line and set as the run's
    tag `quality_warning`."""
    if plan.objective.warning is None:
        return None
    kept = {k: v[best_epoch(history) - 1] for k, v in history.items()} if history else None
    warning = plan.objective.warning(metrics, kept, splits)
    if warning:
        mlflow.set_tag("quality_warning", warning)
        print(f"{mlflow.active_run().info.run_name}: warning: {warning}", file=sys.stderr, flush=True)
    return warning


def model_metadata(plan: Plan, splits: Splits, dataset) -> dict:
    """What the logged model says about itself (MLmodel's metadata)."""
    metadata = {"experiment": plan.exp.name, "data_hash": dataset.sha256}
    if plan.register_as:
        metadata["model_name"] = plan.register_as
    if splits.class_names:
        metadata["class_names"] = list(splits.class_names)
    metadata["trained_on"] = trained_on(plan, splits, dataset)
    return metadata


def trained_on(plan: Plan, splits: Splits, dataset) -> dict:
    """What the model learnt from, which `predict` compares its inputs with: the dataset, its source
    and classes, the shape fed to the model and, for images, their size and colour mode as fed and
    as the source files were (`native_size`: recorded by image-folder prep; the other image sources
    store images as their source holds them)."""
    shape = [int(n) for n in streams.shape_only(splits.x_train).shape[1:]]  # images or arrays alike
    facts = {"dataset": dataset.name, "source": dataset.manifest.source, "input_shape": shape}
    if splits.class_names:
        facts["classes"] = len(splits.class_names)
    if dataset.kind == "images" and len(shape) == 3:
        color = shape[2] == 3
        facts.update(image_size=shape[:2], color_mode="rgb" if color else "grayscale")
        native = dataset.manifest.native_size
        if native is None and dataset.manifest.source != "image-folder":  # unknown for an older prep
            native = {"median": shape[:2], "min": shape[:2], "max": shape[:2], "color_share": float(color)}
        if native:
            facts["native_size"] = native
    return facts


def log_model(plan: Plan, model, splits: Splits, dataset):
    """The run's MLflow model: a registered Keras model as its objective serves it (raw inputs in,
    answers in the task's terms), any other as its family says; returns ModelInfo."""
    metadata = model_metadata(plan, splits, dataset)
    served = plan.objective.served
    if plan.register_as and served is not None and plan.family.kind == "keras":
        return artifacts.log_served(served, model, splits, dataset, metadata)
    example = next(inference.pieces(splits.x_test, rows=5))
    output = (plan.family.logged.output or plan.objective.predict)(model, example)
    return artifacts.log_model(plan.family, model, example, output, metadata)


def log_outputs(plan: Plan, model, splits: Splits, dataset, found: dict, label: str):
    """Tables, figures, the MLflow model, and what the family publishes; returns ModelInfo."""
    artifacts.log_artifacts(found, label)
    info = log_model(plan, model, splits, dataset)
    published = plan.family.publish(model, plan.model)  # e.g. pretrain's hub module
    if published is not None:
        mlflow.log_artifacts(str(published.folder), published.artifact_path)
    return info


def run(name: str, overrides: list[str] | None = None, options: RunOptions | None = None) -> Outcome:
    """Train and evaluate one experiment of params.yaml in one MLflow run.

    Inside an active run (the transfer learning curve, a sweep) the run is nested under it.
    """
    params = config.load_params()
    return run_plan(make_plan(params, name, overrides), options or RunOptions(), params)


def sandboxed(plan: Plan, options: RunOptions) -> Plan:
    """The plan a run trains: a sandboxed run's family publishes and reads in the sandbox."""
    if not options.sandbox:
        return plan
    return dataclasses.replace(plan, model=plan.family.sandboxed(plan.model, layout.sandbox()))


def run_plan(plan: Plan, options: RunOptions, params: dict | None = None) -> Outcome:
    """`run` for a plan made already (`params`: params.yaml as read for it), e.g. one whose model
    the caller built (training/given.py)."""
    keras_loop.split_cpu()  # before TensorFlow's first op
    plan = sandboxed(plan, options)
    exp = plan.exp
    dataset = options.dataset or data.load(exp.dataset, params)
    splits, spec = plan.objective.prepare(dataset, plan.train, plan.objective_params)
    plan.family.check(plan.model, spec)  # a model that cannot work on this data, a missing module
    plan, spec = resolved(plan, spec, splits)
    if plan.family.kind == "estimator":  # fitted and scored on whole arrays: bounded, refused beyond
        for x in (splits.x_train, splits.x_test):
            streams.require_in_memory(x)

    started = time.perf_counter()
    run_name = options.run_name or exp.name
    tags = {**run_tags(plan, dataset, tracking.git_commit()), **options.tags}
    if options.sandbox:
        tags[tracking.SANDBOX_TAG] = "true"
    strategy = strategy_of(plan)
    logged = params_to_log(plan, dataset, len(splits.x_train))
    if plan.family.kind == "keras":
        logged["train.num_replicas"] = strategy.num_replicas_in_sync
    with tracking.start_run(exp.task, run_name, tags, exp.description) as active:
        tracking.log_params(logged)
        tracking.log_dataset(dataset, splits.x_train, splits.y_train, context="training")
        keras_loop.seed_everything(plan.train.seed)
        with strategy.scope():  # variables (weights, optimizer state) are mirrored on every replica
            model = plan.family.build(plan.model, spec)
            backup = backup_dir(plan, dataset) if options.resume else None
            history = train_model(plan, model, splits, dataset, options, backup)
        metrics, found = evaluate(plan, model, splits, history)
        metrics["train_seconds"] = time.perf_counter() - started
        mlflow.log_metrics(metrics)
        warning = quality_warning(plan, metrics, history, splits)
        model_info = None
        if options.log_outputs:
            if plan.register_as and options.extra_artifacts:
                found.update(options.extra_artifacts(plan, model, splits, dataset))
            model_info = log_outputs(plan, model, splits, dataset, found, f"{run_name} ({exp.task})")
        run_id = active.info.run_id
        version = None
        if plan.register_as and model_info and options.register and not options.sandbox:
            version = registry.register(model_info.model_uri, plan.register_as, run_id)
    return Outcome(
        plan,
        run_id,
        metrics,
        version,
        splits,
        None,
        tags["problem"],
        best_epoch(history),
        model_uri=model_info.model_uri if model_info else None,
        quality_warning=warning,
    )


def best_epoch(history: dict[str, list[float]] | None) -> int | None:
    """The epoch EarlyStopping kept (lowest val_loss, else loss), counted from 1."""
    if not history:
        return None
    losses = history.get("val_loss") or history.get("loss") or []
    return int(min(range(len(losses)), key=losses.__getitem__)) + 1 if losses else None
