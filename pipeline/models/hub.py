"""TF Hub modules in Keras 3: resolve a handle with tensorflow_hub, wrap the module as a layer.

A hub module here is a TF2 SavedModel in the "reusable SavedModel" format: a callable
`__call__(inputs, training=False)` plus `variables`, `trainable_variables` and (optionally)
`regularization_losses` — what published image feature-vector modules provide, whether written
with Keras or in raw TensorFlow (a `tf.Module`).

Why not the ready-made wrappers (as of TF 2.21 / Keras 3.15 / tensorflow-hub 0.16):
`hub.KerasLayer` is a tf_keras (Keras 2) layer and cannot join a Keras 3 model, and
`keras.layers.TFSMLayer` never passes `training` to the module and fails to fine-tune with a
momentum optimizer because the restored variable names keep their `:0` suffix. `HubLayer` shares
the module's variables under sanitised names, passes `training` through, and saves the module
inside the `.keras` file, so a trained model reloads without the hub directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import weakref
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import tensorflow_hub as hub

from pipeline import inference, layout
from pipeline.config import project_root
from pipeline.errors import UserError, first_line

ARCHIVED_MODULE = "module"  # folder of the module inside the .keras file's assets


def is_url(handle: str) -> bool:
    return handle.startswith(("https://", "http://", "gs://"))


def resolve(handle: str) -> str:
    """A handle (URL or directory) → a local SavedModel directory.

    URLs are downloaded and cached by tensorflow_hub (in TFHUB_CACHE_DIR when set); a relative
    directory is relative to the project root.
    """
    if not isinstance(handle, str) or not handle:
        raise UserError(f"hub_handle {handle!r}: expected a URL or a directory")
    if is_url(handle):
        try:
            path = hub.resolve(handle)
        except Exception as exc:  # network, HTTP or archive errors: one line, no traceback
            raise UserError(f"hub_handle '{handle}': cannot fetch the module ({first_line(exc)})") from None
    else:
        local = Path(handle).expanduser()
        local = local if local.is_absolute() else project_root() / local
        if not local.exists():
            raise UserError(f"hub_handle '{handle}': no such directory ({local})")
        path = hub.resolve(str(local))
    if not tf.saved_model.contains_saved_model(path):
        raise UserError(f"hub_handle '{handle}': not a SavedModel (no saved_model.pb in {path})")
    return str(path)


def load(handle: str, path: str | None = None):
    """Load a fresh copy of the module (its own variables) and check the reusable format."""
    path = path or resolve(handle)
    try:
        module = hub.load(path)
    except Exception as exc:
        raise UserError(f"hub_handle '{handle}': cannot load the SavedModel ({first_line(exc)})") from None
    if not callable(module) or not hasattr(module, "variables"):
        raise UserError(
            f"hub_handle '{handle}': not a reusable SavedModel (needs a callable __call__ and `variables`)"
        )
    return module


def probe(module, handle: str, input_shape: tuple[int, ...]) -> int:
    """Call the module once on zeros; returns its feature size or names what it rejects."""
    x = tf.zeros((1, *input_shape), tf.float32)
    try:
        out = module(x, training=False)
    except Exception as exc:  # no matching signature, wrong rank or size, ...
        raise UserError(
            f"hub_handle '{handle}': the module rejects images of shape {tuple(x.shape[1:])} "
            f"(set model.image_size / model.channels to what it expects): {first_line(exc)}"
        ) from None
    if isinstance(out, dict | list | tuple) or len(out.shape) != 2:
        shape = (
            {k: tuple(v.shape) for k, v in out.items()}
            if isinstance(out, dict)
            else getattr(out, "shape", out)
        )
        raise UserError(
            f"hub_handle '{handle}': the module returns {shape}, not a feature vector (batch, features)"
        )
    return int(out.shape[-1])


def _variable_name(variable) -> str:
    # Keras names may not hold '/' or ':' (an optimizer builds slot names from them)
    return re.sub(r"[^A-Za-z0-9_.-]", "_", variable.name.split(":")[0])


@keras.saving.register_keras_serializable(package="pipeline")
class HubLayer(keras.layers.Layer):
    """A TF Hub module (reusable SavedModel) as a Keras 3 layer, frozen or trainable.

        features = HubLayer("models/hub/digits-0-4", input_shape=(8, 8, 1))(images)

    `trainable=False` freezes the module; the module is then always called with training=False
    (batch-norm statistics stay as published). A trainable layer passes Keras' `training` on,
    unless `inference_only=True`: the keras-io fine-tuning recipe, weights trained but batch norm
    (and dropout) kept in inference mode. (Calling the layer with an explicit training=False in a
    functional model is not enough: Keras 3 passes the outer model's `training` to every layer.)
    The module's variables are the layer's weights (shared, not copied), so the optimizer
    updates the module itself; saving the model stores the module inside the `.keras` file.
    """

    def __init__(
        self,
        handle: str,
        input_shape,
        output_dim: int | None = None,
        trainable: bool = False,
        inference_only: bool = False,
        **kwargs,
    ):
        defer = kwargs.pop("_defer", False)
        super().__init__(trainable=trainable, **kwargs)
        self.handle = handle
        self.inference_only = inference_only
        self.module_input_shape = tuple(input_shape)
        self.output_dim = output_dim
        self._module = None
        self._module_path = None
        self._pending_values = None
        if not defer:
            self._attach(resolve(handle))

    def _attach(self, path: str) -> None:
        """Load the module from `path` and track its variables as this layer's weights."""
        module = load(self.handle, path)
        dim = probe(module, self.handle, self.module_input_shape)
        if self.output_dim is not None and dim != self.output_dim:
            raise UserError(
                f"hub_handle '{self.handle}': the module now returns {dim} features, not {self.output_dim}"
            )
        self.output_dim, self._module, self._module_path = dim, module, path
        # a module without `trainable_variables` keeps each variable's own flag
        trainable = {id(v) for v in getattr(module, "trainable_variables", module.variables) if v.trainable}
        self._tracker.unlock()  # a built layer is locked; loading a .keras file attaches late
        for variable in module.variables:
            self._track_variable(
                keras.Variable(
                    initializer=variable,  # the TF backend wraps the module's own tf.Variable
                    trainable=id(variable) in trainable,
                    dtype=variable.dtype,
                    shape=variable.shape,
                    name=_variable_name(variable),
                )
            )
        self._tracker.lock()
        if self._pending_values is not None:  # weights read from a .keras file before its module
            for variable, value in zip(self.variables, self._pending_values, strict=True):
                variable.assign(value)
            self._pending_values = None
        self.built = True

    @property
    def module_path(self) -> str | None:
        """The SavedModel folder the module was loaded from."""
        return self._module_path

    def build(self, input_shape):
        if tuple(input_shape[1:]) != self.module_input_shape:
            raise UserError(
                f"hub_handle '{self.handle}': the layer gets inputs of shape {tuple(input_shape[1:])}, "
                f"configured for {self.module_input_shape}"
            )
        # a layer read from a .keras file gets its module from the file's assets (load_assets),
        # never from the handle, which may be gone or hold a newer, different module by now
        self.built = True

    def call(self, inputs, training=None):
        if self._module is None:
            raise RuntimeError(
                f"HubLayer '{self.name}': module '{self.handle}' is not loaded (a layer made from its "
                "config alone has none; load the model with keras.saving.load_model)"
            )
        outputs = self._module(inputs, training=bool(training) and self.trainable and not self.inference_only)
        if self.trainable:
            for loss in getattr(self._module, "regularization_losses", []):
                self.add_loss(loss())
        return outputs

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def compute_output_spec(self, inputs, training=None):
        return keras.KerasTensor((inputs.shape[0], self.output_dim), dtype="float32")

    def get_config(self):
        return {
            **super().get_config(),
            "handle": self.handle,
            "input_shape": list(self.module_input_shape),
            "output_dim": self.output_dim,
            "inference_only": self.inference_only,
        }

    @classmethod
    def from_config(cls, config):
        # the module arrives with the saved assets (load_assets); the handle may be long gone
        return cls(**config, _defer=True)

    # ---- self-contained saving: the module's graph goes with the model, weights as usual

    def save_assets(self, dir_path):
        shutil.copytree(self._module_path, os.path.join(dir_path, ARCHIVED_MODULE))

    def load_assets(self, dir_path):
        # keep a private copy: Keras deletes its temporary assets folder after loading
        # (saving the model again copies it back in), removed with the layer
        copy = tempfile.mkdtemp(prefix="hub-module-")
        weakref.finalize(self, shutil.rmtree, copy, ignore_errors=True)
        shutil.copytree(os.path.join(dir_path, ARCHIVED_MODULE), copy, dirs_exist_ok=True)
        self._attach(copy)

    def load_own_variables(self, store):
        values = [np.asarray(store[str(i)]) for i in range(len(store.keys()))]
        if self._module is None:
            self._pending_values = values  # applied once load_assets brings the module
            return
        for variable, value in zip(self.variables, values, strict=True):
            variable.assign(value)


# ---- a frozen module's features, computed once per split

FEATURE_BATCH = 256  # images through the module at a time


def module_digest(path: str) -> str:
    """sha256 of a module's files (relative paths and bytes): what its features depend on."""
    digest = hashlib.sha256()
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(os.fsencode(file.relative_to(path)) + b"\0")
        with open(file, "rb") as handle:
            while chunk := handle.read(2**20):
                digest.update(chunk)
    return digest.hexdigest()


def data_digest(x) -> str:
    """What the images are: a stored split's own fingerprint, else the sha256 of the array."""
    if hasattr(x, "fingerprint"):
        return x.fingerprint()
    x = np.ascontiguousarray(x)
    return hashlib.sha256(f"{x.dtype.str}|{x.shape}|".encode() + x.tobytes()).hexdigest()


def cached_features(extractor: keras.Model, x, scope: str) -> np.ndarray:
    """`extractor`'s outputs (a frozen module's features) for the images `x`, computed a batch at a
    time on first use and kept in .build/features/, keyed by `scope` (the module's digest and the
    settings that shape its inputs) and the images' digest; read back memory-mapped."""
    key = hashlib.sha256(f"{scope}|{data_digest(x)}".encode()).hexdigest()[:32]
    path = layout.features() / f"{key}.npy"
    if path.exists():
        return np.load(path, mmap_mode="r")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        out, start = None, 0
        for images in inference.pieces(x, FEATURE_BATCH, nbytes=None):  # read a batch at a time
            part = np.asarray(extractor.predict_on_batch(images), np.float32)
            if out is None:
                out = np.lib.format.open_memmap(tmp, "w+", np.float32, (len(x), *part.shape[1:]))
            out[start : start + len(part)] = part
            start += len(part)
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")
