"""The Keras loop every network trains with: seeded, EarlyStopping with the best weights restored,
TerminateOnNaN, BackupAndRestore (a killed run resumes), and the device strategy.

Nothing here talks to MLflow: the run passes its epoch logger in as a callback.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import keras
import tensorflow as tf

from pipeline.errors import PipelineError


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


def fit(
    model: keras.Model,
    data: tuple,
    train,
    loss,
    metrics,
    *,
    verbose: int | str = 0,
    callbacks: tuple = (),
    learning_rate: float | None = None,
    epochs: int | None = None,
    initial_epoch: int = 0,
    keep_compiled: bool = False,
    streamed: bool = False,
) -> dict[str, list[float]]:
    """Compile and fit on `data` = (x, y, validation): arrays, or with `streamed` a stream of
    images or text (data.streams.Rows, data.corpus.Windows: see `inputs`); returns the history.

    Raises PipelineError when the loss diverges. `train.batch_size` is per replica: the model's
    strategy (built in its scope) sets the global batch. `keep_compiled`: a model its builder
    compiled keeps its optimizer and loss (pipeline.fit); only `metrics` are the run's.
    """
    batch_size = train.batch_size * model.distribute_strategy.num_replicas_in_sync
    optimizer = make_optimizer(train.optimizer, learning_rate or train.learning_rate)
    if keep_compiled:
        optimizer, loss = model.optimizer, model.loss or loss
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    monitor = "val_loss" if data[2] is not None else "loss"
    fed = inputs(*data, batch_size, train.seed, streamed)
    build_state(model, fed["x"].element_spec if streamed else keras.tree.map_structure(first, data[:2]))
    history = model.fit(
        **fed,
        epochs=initial_epoch + (epochs or train.epochs),
        initial_epoch=initial_epoch,
        verbose=verbose,
        callbacks=[
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=train.patience, restore_best_weights=True
            ),
            keras.callbacks.TerminateOnNaN(),
            *callbacks,
        ],
    ).history
    losses = history.get("loss", [])
    if losses and not math.isfinite(losses[-1]):
        raise PipelineError(
            f"training diverged: loss is {losses[-1]} at epoch {initial_epoch + len(losses)} "
            f"(try a lower train.learning_rate than {learning_rate or train.learning_rate})"
        )
    return history


def build_state(model: keras.Model, batch) -> None:
    """Create the optimizer's and the metrics' variables before fit traces its train step (Keras
    does so itself only under a distribution strategy): variables created inside the first trace
    make TensorFlow trace the step twice. `batch`: one batch, or its specs (shapes and dtypes)."""
    with model.distribute_strategy.scope():
        model._symbolic_build(data_batch=batch)  # Keras' own build, as its fit runs it under a strategy


def first(array):
    return None if array is None else array[:1]


def inputs(x, y, validation, batch_size: int, seed: int, streamed: bool) -> dict:
    """What Keras' fit reads: images and text (`streamed`: data.streams.Rows or values computed from
    them, data.corpus.Windows) as their own tf.data stream, shuffled with the run's seed (small or
    large, one path); arrays (tables, a series' windows) as arrays, batched and shuffled by Keras."""
    if not streamed:
        return {"x": x, "y": y, "validation_data": validation, "batch_size": batch_size, "shuffle": True}
    if validation is not None:
        x_val, y_val = validation
        validation = steady(x_val.dataset(batch_size, targets=y_val))
    stream = steady(x.dataset(batch_size, shuffle=seed, targets=y))
    # shuffle=False: Keras would only warn that a stream shuffles itself
    return {"x": stream, "validation_data": validation, "shuffle": False}


def steady(stream: tf.data.Dataset) -> tf.data.Dataset:
    """`stream` with tf.data's autotuning off: its model thread can hold up the end of an epoch's
    iterator (Keras makes one per epoch for training and one for validation) for a second or more,
    while these streams do the same small work every batch (docs/benchmarks.md, "the stream")."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return stream.with_options(options)


# "converged": the loss is within this share of the best loss the run reached
CONVERGED_WITHIN = 0.10


def epochs_to_converge(history: dict[str, list[float]]) -> int:
    """The first epoch (counted from 1) whose validation loss (training loss without a validation
    split) is within 10 % of the run's best: how fast a model gets there, unlike epochs_trained,
    which also counts EarlyStopping's patience."""
    losses = history.get("val_loss") or history["loss"]
    finite = [loss for loss in losses if math.isfinite(loss)]
    if not finite:
        return len(losses)
    best = min(finite)
    limit = best + CONVERGED_WITHIN * abs(best)
    return next(epoch for epoch, loss in enumerate(losses, start=1) if loss <= limit)


def backup_seconds() -> float:
    """How often a run's backup is written: at most once per PIPELINE_BACKUP_SECONDS (default 10)."""
    try:
        return max(0.0, float(os.environ.get("PIPELINE_BACKUP_SECONDS", "10")))
    except ValueError:
        raise PipelineError("PIPELINE_BACKUP_SECONDS must be a number of seconds") from None


class ThrottledBackup(keras.callbacks.BackupAndRestore):
    """Keras' BackupAndRestore, writing at the end of an epoch only when `every` seconds have passed
    since the last write: a killed run loses at most that much training, and a short run does not
    pay for a weights file every epoch."""

    def __init__(self, backup_dir: str, every: float, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.every, self.last = every, time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if time.monotonic() - self.last >= self.every:
            super().on_epoch_end(epoch, logs)
            self.last = time.monotonic()

    def on_train_begin(self, logs=None):
        # Keras falls back to the previous checkpoint when a kill tore the weights file (OSError),
        # not when it tore the epoch file written right after them: that one fails to parse as
        # JSON. Same fallback here; with no whole previous checkpoint, start over.
        latest = Path(self._training_metadata_path)
        if latest.exists() and backed_up_epoch(latest) is None:
            previous = Path(self._prev_training_metadata_path)
            weights = Path(self._prev_weights_path)
            if backed_up_epoch(previous) is not None and weights.exists():
                shutil.copyfile(weights, self._weights_path)
                shutil.copyfile(previous, latest)
            else:
                shutil.rmtree(self.backup_dir)
        super().on_train_begin(logs)


def backed_up_epoch(path: Path) -> int | None:
    """The epoch a backup's metadata file names; None when it is missing or torn."""
    try:
        epoch = json.loads(path.read_text())["epoch"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return epoch if isinstance(epoch, int) else None


def fit_resumable(fit_once, backup: Path | None) -> dict[str, list[float]]:
    """`fit_once(callbacks)` with a backup in `backup`: a killed run resumes from its last backed-up
    epoch. double_checkpoint keeps the previous backup too, so a kill -9 while the latest is being
    written falls back to it instead of failing on a torn file."""
    if backup is None:
        return fit_once(())
    callbacks = (ThrottledBackup(str(backup), backup_seconds(), double_checkpoint=True),)
    try:
        return fit_once(callbacks)
    except OSError:
        if not backup.exists():
            raise
        # killed while writing the very first backup: nothing to resume from, start over
        shutil.rmtree(backup)
        return fit_once(callbacks)


STRATEGIES: dict[tuple[str, ...], tf.distribute.Strategy] = {}


def distribution(strategy: str) -> tf.distribute.Strategy:
    """`train.strategy: mirrored`: one replica per visible GPU, else per logical CPU device, all in
    this process (the callbacks, hence MLflow logging, run once in it). Others: the default."""
    if strategy != "mirrored":
        return tf.distribute.get_strategy()
    devices = tuple(
        d.name for d in tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    )
    # one strategy per process: a second MirroredStrategy's collective ops collide with the first's
    # (a shape mismatch in CollectiveReduceV2 when two runs share a process: train-all, retrain, Ray)
    if devices not in STRATEGIES:
        STRATEGIES[devices] = tf.distribute.MirroredStrategy(list(devices))
    return STRATEGIES[devices]
