"""ImageNet networks from keras.applications as the transfer family's backbone (`model.backbone`).

Each is built without its classifier (`include_top=False`) and average-pooled to a feature
vector, with `model.weights`: `imagenet` (downloaded by Keras on first use and cached in
~/.keras/models), a weights file of the same network (`.weights.h5`, `.keras`, or Keras' own
`.h5` download), or null (random weights).

Each network's weights expect their own inputs: MobileNetV3 and EfficientNet rescale inside the
network and take values in [0, 255]; MobileNetV2 wants [-1, 1]; ResNet50 wants BGR minus the
ImageNet mean ("caffe"). Keras gives every network a `preprocess_input` from [0, 255] RGB (a no-op
for the first two). The pipeline's images are in [0, 1], so `preprocessed` scales them to [0, 255]
and applies that function inside the model: the logged and served model does it too, with Keras'
own layers and ops only (it loads without the pipeline's code).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import warnings
from collections.abc import Callable
from pathlib import Path

import keras
from keras import applications, layers

from pipeline.config import project_root
from pipeline.errors import UserError, first_line

BACKBONE = "backbone"  # the network's layer in a transfer model
WEIGHT_FILES = (".weights.h5", ".keras", ".h5")  # what keras.Model.load_weights reads


@dataclasses.dataclass(frozen=True)
class Network:
    build: Callable[..., keras.Model]  # the keras.applications constructor
    preprocess_input: Callable  # images in [0, 255], RGB → what its ImageNet weights expect


NETWORKS = {
    "mobilenet_v2": Network(applications.MobileNetV2, applications.mobilenet_v2.preprocess_input),
    "mobilenet_v3_small": Network(applications.MobileNetV3Small, applications.mobilenet_v3.preprocess_input),
    "mobilenet_v3_large": Network(applications.MobileNetV3Large, applications.mobilenet_v3.preprocess_input),
    "efficientnet_b0": Network(applications.EfficientNetB0, applications.efficientnet.preprocess_input),
    "resnet50": Network(applications.ResNet50, applications.resnet50.preprocess_input),
}


def preprocessed(images, name: str):
    """Images in [0, 1] → the inputs the network's weights expect (built-in layers and ops)."""
    return NETWORKS[name].preprocess_input(layers.Rescaling(255.0, name="to_0_255")(images))


def network(name: str, input_shape: tuple[int, int, int], weights: str | None) -> keras.Model:
    """The network without its classifier, average-pooled, with its weights; any failure (an
    offline download, a file of another network or size) is one line saying what to do."""
    source = weights_file(weights) if weights not in ("imagenet", None) else weights
    try:
        with warnings.catch_warnings():  # "weights for input shape (224, 224) will be loaded": intended
            warnings.simplefilter("ignore", UserWarning)
            built = NETWORKS[name].build(
                input_shape=input_shape, include_top=False, weights=source, pooling="avg"
            )
    except Exception as exc:  # Keras' download, file and shape errors
        raise UserError(failure(name, input_shape, weights, exc)) from None
    # one name in every transfer model (not the constructor's `name=`: EfficientNet names its
    # weights file after it)
    return keras.Model(built.input, built.output, name=BACKBONE)


def failure(name: str, input_shape, weights: str | None, exc: Exception) -> str:
    reason = first_line(exc)
    if weights == "imagenet" and "URL fetch failure" in reason:
        cache = Path(os.environ.get("KERAS_HOME", "~/.keras")) / "models"
        return (
            f"model.weights imagenet: cannot download {name}'s ImageNet weights ({reason}); run once on "
            f"a connected machine and copy its {cache} here, or set model.weights to a weights file"
        )
    if weights not in ("imagenet", None):
        return (
            f"model.weights '{weights}': not {name}'s weights at image_size {list(input_shape[:2])} "
            f"without its classifier ({reason})"
        )
    return f"model.backbone {name} at image_size {list(input_shape[:2])}: {reason}"


def weights_file(weights: str) -> str:
    """A weights file named in params.yaml (relative to the project root): a regular file, never
    followed through a symbolic link."""
    where = f"model.weights '{weights}'"
    if not weights.endswith(WEIGHT_FILES):
        raise UserError(f"{where}: expected imagenet, null or a weights file ({', '.join(WEIGHT_FILES)})")
    path = Path(weights).expanduser()
    path = path if path.is_absolute() else project_root() / path
    try:
        mode = path.lstat().st_mode
    except OSError:
        raise UserError(f"{where}: no such file ({path})") from None
    if stat.S_ISLNK(mode):
        raise UserError(f"{where}: a symbolic link; name the file itself ({path})")
    if not stat.S_ISREG(mode):
        raise UserError(f"{where}: not a regular file ({path})")
    return str(path)


def unfreeze(backbone: keras.Model) -> None:
    """Train the weights, batch norm's statistics kept (keras-io's fine-tuning recipe: a few
    examples would wreck them)."""
    backbone.trainable = True
    for layer in backbone.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False


def digest(backbone: keras.Model) -> str:
    """sha256 of the network's weights: what its frozen features depend on."""
    values = hashlib.sha256()
    for weight in backbone.weights:
        values.update(weight.path.encode() + b"\0" + keras.ops.convert_to_numpy(weight).tobytes())
    return values.hexdigest()
