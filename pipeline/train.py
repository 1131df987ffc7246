"""The training core shared by every model family: data → model → fit → evaluate → log.

`run()` trains one experiment of params.yaml inside one MLflow run; `fit()` is the Keras loop
every network uses (seeded, EarlyStopping with best weights restored, TerminateOnNaN, per-epoch
metrics to MLflow, Keras progress bars).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import os
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import keras
import mlflow
import numpy as np
import tensorflow as tf

from pipeline import config, data, models, plots, registry, tracking
from pipeline.config import SeedParams, TrainParams, parse_section
from pipeline.errors import PipelineError, UserError

# Keras progress bars on a terminal, one line per epoch in logs (make -j, cron); --quiet sets 0.
PROGRESS: int | str = "auto" if sys.stdout.isatty() else 2
# Callbacks every `fit` adds, e.g. a sweep trial's report to Ray Tune (see `extra_callbacks`).
EXTRA_CALLBACKS: tuple = ()


@contextlib.contextmanager
def extra_callbacks(*callbacks: keras.callbacks.Callback):
    """Add Keras callbacks to every `fit` inside the block (families' own `fit` hooks included)."""
    global EXTRA_CALLBACKS
    previous = EXTRA_CALLBACKS
    EXTRA_CALLBACKS = (*previous, *callbacks)
    try:
        yield
    finally:
        EXTRA_CALLBACKS = previous


def split_cpu() -> None:
    """PIPELINE_LOGICAL_CPUS=N splits the CPU into N logical devices (tests of `strategy: mirrored`
    on a machine without GPUs). TensorFlow accepts this only before it initialises its devices."""
    count = int(os.environ.get("PIPELINE_LOGICAL_CPUS") or 0)
    if count < 2:
        return
    (cpu,) = tf.config.list_physical_devices("CPU")
    if len(tf.config.get_logical_device_configuration(cpu) or []) == count:
        return  # done by an earlier run in this process
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        raise PipelineError(
            "PIPELINE_LOGICAL_CPUS must be set before TensorFlow starts: set it for a fresh process"
        ) from None


def seed_everything(seed: int) -> None:
    """Same seed → same weights, same shuffles, same metrics (deterministic TF ops on CPU)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    return keras.optimizers.get({"class_name": name, "config": {"learning_rate": learning_rate}})


def log_epoch(epoch: int, logs: dict | None) -> None:
    if logs:
        mlflow.log_metrics({k: float(v) for k, v in logs.items()}, step=epoch)


def fit(
    model: keras.Model,
    x,
    y,
    validation,
    params: TrainParams,
    loss,
    metrics,
    *,
    learning_rate: float | None = None,
    epochs: int | None = None,
    initial_epoch: int = 0,
    callbacks: tuple = (),
) -> dict[str, list[float]]:
    """Compile and fit; returns the Keras history. Raises PipelineError when the loss diverges.

    `params.batch_size` is per replica: the model's strategy (built in its scope) sets the global batch.
    """
    model.compile(
        optimizer=make_optimizer(params.optimizer, learning_rate or params.learning_rate),
        loss=loss,
        metrics=metrics,
    )
    monitor = "val_loss" if validation is not None else "loss"
    history = model.fit(
        x,
        y,
        validation_data=validation,
        epochs=initial_epoch + (epochs or params.epochs),
        initial_epoch=initial_epoch,
        batch_size=params.batch_size * model.distribute_strategy.num_replicas_in_sync,
        shuffle=True,
        verbose=PROGRESS,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=params.patience, restore_best_weights=True
            ),
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.LambdaCallback(on_epoch_end=log_epoch),
            *callbacks,
            *EXTRA_CALLBACKS,
        ],
    ).history
    losses = history.get("loss", [])
    if losses and not math.isfinite(losses[-1]):
        raise PipelineError(
            f"training diverged: loss is {losses[-1]} at epoch {initial_epoch + len(losses)} "
            f"(try a lower train.learning_rate than {learning_rate or params.learning_rate})"
        )
    return history


def layer_table(model: keras.Model) -> str:
    """CSV of every layer's parameters; Conv2D/Dense rows also show the formula's count."""
    rows = ["layer,type,output_shape,params,expected_params"]
    for layer in model.layers:
        expected = ""
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            in_channels = layer.input.shape[-1]
            expected = (kh * kw * in_channels + int(layer.use_bias)) * layer.filters
        elif isinstance(layer, keras.layers.Dense):
            expected = (layer.input.shape[-1] + int(layer.use_bias)) * layer.units
        shape = "x".join(str(d) for d in layer.output.shape[1:])
        rows.append(f"{layer.name},{type(layer).__name__},{shape},{layer.count_params()},{expected}")
    return "\n".join(rows) + "\n"


def model_summary(model) -> str:
    if isinstance(model, keras.Model):
        lines: list[str] = []
        model.summary(print_fn=lambda line, *a, **k: lines.append(line), line_length=100)
        return "\n".join(lines) + "\n"
    return f"{model!r}\n"


# Types our scikit-learn baselines use that skops does not trust by default (all from numpy/sklearn).
SKOPS_TRUSTED = [
    "numpy.reshape",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
]


def log_model(model, x_example: np.ndarray, predictions: np.ndarray, metadata: dict | None = None):
    """Log the model as an MLflow model with a signature; returns MLflow's ModelInfo."""
    signature = mlflow.models.infer_signature(x_example, predictions)
    if isinstance(model, keras.Model):
        # explicit requirements: MLflow's inference would re-import the model in a subprocess
        return mlflow.keras.log_model(
            model,
            name="model",
            signature=signature,
            metadata=metadata,
            pip_requirements=[f"tensorflow=={tf.__version__}", f"keras=={keras.__version__}"],
        )
    # like the networks, the pyfunc returns class probabilities
    return log_sklearn_model(model, signature, metadata, pyfunc_predict_fn="predict_proba")


def log_sklearn_model(model, signature, metadata: dict | None, trusted: tuple[str, ...] = (), **kwargs):
    """A scikit-learn model (skops format) with pinned requirements; returns MLflow's ModelInfo."""
    import sklearn

    return mlflow.sklearn.log_model(
        model,
        name="model",
        signature=signature,
        metadata=metadata,
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}"],
        skops_trusted_types=[*SKOPS_TRUSTED, *trusted],
        **kwargs,
    )


def log_artifacts(artifacts: dict) -> None:
    for name, item in artifacts.items():
        if isinstance(item, str):
            mlflow.log_text(item, name)
        else:  # a matplotlib figure
            mlflow.log_figure(item, name)
            plots.plt.close(item)


@dataclasses.dataclass
class Plan:
    """An experiment resolved and validated against its family's and objective's schemas."""

    exp: config.Experiment
    family: ModuleType
    objective: ModuleType
    model: Any
    train: Any
    objective_params: Any
    register_as: str | None = None  # registered model name (MLflow registry), if opted in
    gate: Any = None  # its promotion rule (registry.Gate)


@dataclasses.dataclass(frozen=True)
class Outcome:
    run_id: str
    metrics: dict[str, float]
    model_version: str | None  # registered version, when the experiment has register_as
    decision: dict[str, Any] | None  # the promotion gate's record, when it ran


def make_plan(params: dict, name: str, overrides: list[str] | None = None) -> Plan:
    """Resolve one experiment and check every key before any data is read or run started."""
    exp = config.resolve_experiment(params, name, overrides)
    where = f"experiments.{name}"
    family = models.get(exp.family, f"{where}.")
    objective = importlib.import_module(f"pipeline.{family.OBJECTIVE}")
    model_params = parse_section(family.Params, exp.model, f"{where}.model")
    default_schema = TrainParams if family.KIND == "keras" else SeedParams
    train_schema = getattr(family, "TrainParams", default_schema)
    drop = frozenset(f.name for f in dataclasses.fields(TrainParams))
    train_params = parse_section(train_schema, exp.train, f"{where}.train", drop_unknown=drop)
    extra = dict(exp.extra)
    objective_params = None
    if hasattr(objective, "Params"):  # the `objective:` section, e.g. forecasting's horizon
        objective_params = parse_section(objective.Params, extra.pop("objective", None), f"{where}.objective")
    register_as, gate = extra.pop("register_as", None), None
    if register_as is not None:
        if not isinstance(register_as, str) or not register_as:
            raise UserError(f"{config.PARAMS_FILE}: {where}.register_as must be a model name")
        gate = registry.gate_for(params, register_as)
    if extra:
        key = sorted(extra)[0]
        known = [*config.EXPERIMENT_KEYS, "objective", "register_as"]
        raise UserError(f"{config.PARAMS_FILE}: unknown key '{where}.{key}'{config.suggest(key, known)}")
    return Plan(exp, family, objective, model_params, train_params, objective_params, register_as, gate)


def params_to_log(plan: Plan, dataset, splits) -> dict[str, Any]:
    """Every resolved hyperparameter, named as in params.yaml (model.*, train.*, data.*, ...)."""
    sections = ("model.", "train.", "objective.")  # logged below from the validated values
    logged = {
        k: v
        for k, v in config.flatten(plan.exp.raw).items()
        if k != "description" and not k.startswith(sections)
    }
    logged.update({f"model.{k}": v for k, v in dataclasses.asdict(plan.model).items()})
    logged.update({f"train.{k}": v for k, v in dataclasses.asdict(plan.train).items()})
    if plan.objective_params is not None:
        logged.update({f"objective.{k}": v for k, v in dataclasses.asdict(plan.objective_params).items()})
    logged.update({f"data.{k}": v for k, v in dataset.manifest["params"].items() if k != "source"})
    logged.update({"data.source": dataset.manifest["source"], "data.train_examples": len(splits.x_train)})
    # sibling runs of the same task log the same param names, so the UI's columns line up
    for name in sibling_params(plan) - set(logged):
        logged[name] = "n/a"
    return logged


def sibling_params(plan: Plan) -> set[str]:
    params = config.load_params()
    names: set[str] = set()
    for other in config.experiment_names(params):
        exp = config.resolve_experiment(params, other)
        if exp.task == plan.exp.task and other != plan.exp.name:
            names |= {k for k in config.flatten(exp.raw) if k.startswith(("model.", "objective."))}
    return names


def run_tags(plan: Plan, dataset) -> dict[str, str]:
    tags = {
        "model_family": plan.exp.family,
        "dataset": plan.exp.dataset,
        "git_commit": tracking.git_commit(),
        "data_hash": dataset.sha256,
        "objective": plan.family.OBJECTIVE,
    }
    if hasattr(plan.family, "tags"):  # e.g. transfer learning's hub_handle and transfer_mode
        tags.update(plan.family.tags(plan.model))
    return tags


def distribution(plan: Plan) -> tf.distribute.Strategy:
    """`train.strategy: mirrored`: one replica per visible GPU, else per logical CPU device, all in
    this process (the callbacks, hence MLflow logging, run once in it). Others: the default."""
    if getattr(plan.train, "strategy", "default") != "mirrored":  # scikit-learn baselines have none
        return tf.distribute.get_strategy()
    devices = tuple(
        d.name for d in tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    )
    # one strategy per process: a second MirroredStrategy's collective ops collide with the first's
    # (a shape mismatch in CollectiveReduceV2 when two runs share a process: train-all, retrain, Ray)
    if devices not in STRATEGIES:
        STRATEGIES[devices] = tf.distribute.MirroredStrategy(list(devices))
    return STRATEGIES[devices]


STRATEGIES: dict[tuple[str, ...], tf.distribute.Strategy] = {}


def backup_dir(plan: Plan, dataset) -> Path:
    """Where BackupAndRestore keeps the last completed epoch: a killed run resumes from it.

    Keyed by the resolved params and the data, so a changed experiment never resumes a stale one.
    """
    key = f"{plan.exp.name}-{plan.exp.fingerprint()[:12]}-{dataset.sha256[:12]}"
    return config.project_root() / ".build" / "backup" / key


def train_model(plan: Plan, model, splits, backup: Path | None = None) -> dict[str, list[float]] | None:
    """Keras families go through `fit` (or their own `fit` hook); baselines through `.fit(x, y)`."""
    if plan.family.KIND != "keras":
        model.fit(splits.x_train, splits.y_train)
        return None
    if hasattr(plan.family, "fit"):  # e.g. two-phase fine-tuning
        return plan.family.fit(model, splits, plan.train, plan.objective)
    objective = plan.objective

    def fit_with_backup():
        # double_checkpoint keeps the previous epoch's backup too: a kill -9 while the latest is
        # being written falls back to it instead of failing on a torn HDF5 file
        callbacks = (keras.callbacks.BackupAndRestore(str(backup), double_checkpoint=True),) if backup else ()
        return fit(
            model,
            splits.x_train,
            splits.y_train,
            splits.validation,
            plan.train,
            objective.LOSS,
            objective.METRICS,
            callbacks=callbacks,
        )

    try:
        return fit_with_backup()
    except OSError:
        if backup is None or not backup.exists():
            raise
        # killed while writing the very first backup: nothing to resume from, start over
        shutil.rmtree(backup)
        return fit_with_backup()


def run(
    name: str,
    overrides: list[str] | None = None,
    *,
    dataset=None,
    gate: bool = True,
    extra_tags: dict[str, str] | None = None,
    run_name: str | None = None,
    log_outputs: bool = True,
    resume: bool = True,
) -> Outcome:
    """Train and evaluate one experiment of params.yaml in one MLflow run.

    `dataset` replaces the prepared one (retrain's candidate version); with `gate=False` a
    registered model stays a challenger (retrain applies the gate after committing its data).
    Inside an active run (e.g. the transfer learning curve) the run is nested under it;
    `log_outputs=False` logs params, tags and metrics only: no figures, model or published files.
    `resume=False` neither resumes from nor leaves a BackupAndRestore backup (sweep trials: two
    trials with the same config may run at once, and a trial stopped early must not be resumed).
    """
    split_cpu()  # before TensorFlow's first op
    params = config.load_params()
    plan = make_plan(params, name, overrides)
    exp, family, objective = plan.exp, plan.family, plan.objective
    dataset = dataset or data.load(exp.dataset, params)
    splits, spec = objective.prepare(dataset, plan.train, plan.objective_params)
    if hasattr(family, "check"):  # a model that cannot work on this data (or a missing hub module)
        family.check(plan.model, spec)

    started = time.perf_counter()
    tags = {**run_tags(plan, dataset), **(extra_tags or {})}
    strategy = distribution(plan)
    logged = params_to_log(plan, dataset, splits)
    if family.KIND == "keras":
        logged["train.num_replicas"] = strategy.num_replicas_in_sync
    with tracking.start_run(exp.task, run_name or name, tags, exp.description) as active:
        tracking.log_params(logged)
        tracking.log_dataset(dataset, splits.x_train, splits.y_train, context="training")
        seed_everything(plan.train.seed)
        with strategy.scope():  # variables (weights, optimizer state) are mirrored on every replica
            model = family.build(plan.model, spec)
            history = train_model(plan, model, splits, backup_dir(plan, dataset) if resume else None)
        artifacts: dict = {"model_summary.txt": model_summary(model)}
        if isinstance(model, keras.Model):
            artifacts["layer_params.csv"] = layer_table(model)
        if history:
            artifacts["training_curves.png"] = plots.training_curves(history, f"{name} ({exp.task})")
            mlflow.log_metric("epochs_trained", len(history["loss"]))
        metrics, evaluation = objective.evaluate(model, splits)
        artifacts.update(evaluation)
        metrics["train_seconds"] = time.perf_counter() - started
        mlflow.log_metrics(metrics)
        model_info = None
        if log_outputs:
            log_artifacts(artifacts)
            example = splits.x_test[:5]
            metadata = {"class_names": splits.class_names} if hasattr(splits, "class_names") else None
            logger = getattr(family, "log_model", None) or log_model
            model_info = logger(model, example, objective.predict(model, example), metadata=metadata)
            if hasattr(family, "publish"):  # e.g. pretrain's hub module, which later stages load
                family.publish(model, plan.model)
        else:
            plots.plt.close("all")
        run_id = active.info.run_id
        version = (
            registry.register(model_info.model_uri, plan.register_as, run_id)
            if plan.register_as and model_info
            else None
        )
    headline = objective.HEADLINE
    print(
        f"{run_name or name}: {headline} {metrics[headline]:.4f} · run {run_id} · "
        f"{metrics['train_seconds']:.1f} s · experiment '{exp.task}' at {tracking.tracking_uri()}"
    )
    decision = None
    if version and gate:
        decision = registry.apply_gate(
            plan.register_as, version, run_id, plan.gate, metrics, objective, splits
        )
        print(f"{plan.register_as} v{version}: {decision['gate.decision']} ({decision['gate.reason']})")
    return Outcome(run_id, metrics, version, decision)
