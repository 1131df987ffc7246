"""The shape of each family's `model:` section (and transfer's extra `train:` keys).

Declared here rather than in the family modules, which import Keras: `pipeline train` checks an
experiment's keys against them (pipeline.models.FAMILIES) before TensorFlow loads, so a misspelt
key answers at once. Each family module imports its own as `Params`; the knobs are explained in
the family's docstring.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Literal

from pipeline.config import TrainParams
from pipeline.errors import UserError

Activation = Literal["relu", "tanh", "gelu", "elu"]
Padding = Literal["same", "valid", "full"] | int | tuple[int, int]
Pair = int | tuple[int, int]  # one number for both directions, or (rows, cols) = (height, width)


@dataclasses.dataclass(frozen=True)
class MlpParams:
    hidden_units: tuple[int, ...]  # one Dense layer per entry
    activation: Literal["relu", "tanh", "sigmoid", "gelu", "elu"]
    dropout: float  # after every hidden layer


@dataclasses.dataclass(frozen=True)
class Augment:
    """`model.augment:` random changes to each training image (pipeline/models/augment.py); a knob
    left out (or 0, `none`) adds no layer."""

    flip: Literal["horizontal", "vertical", "horizontal_and_vertical", "none"] = "none"
    rotation: float = 0.0  # turn by up to this share of a full turn either way (0.05: ±18°)
    zoom: float = 0.0  # zoom in or out by up to this share of the height and width
    translation: float = 0.0  # shift by up to this share of the height and width
    contrast: float = 0.0  # scale the contrast by a random factor in [1 - contrast, 1 + contrast]


# image families' optional `model.augment:` (keyword-only: subclasses add required knobs after it)
AUGMENT = dataclasses.field(default=None, kw_only=True)


@dataclasses.dataclass(frozen=True)
class CnnParams:
    """Every knob has a default (`family: cnn` alone is a good network for a folder of photos); the
    `auto` ones are chosen from the data when the run starts and logged with the value used
    (pipeline/models/cnn.py: resolve)."""

    filters: tuple[int, ...] = (32, 64, 128)  # one Conv2D per entry
    kernel_size: Pair = 3  # (rows, cols) = (height, width)
    strides: Pair = 1  # (rows, cols) = (height, width)
    padding: Padding = "same"
    activation: Activation = "relu"
    batch_norm: bool = True  # BatchNormalization between each Conv2D and its activation
    pooling: Literal["max", "min", "avg", "none"] = "max"
    pool_size: int = 2
    pool_every: int = 1  # pool after every n-th Conv2D (0: once, after the last)
    dropout: float = 0.3  # before the dense head and before the output
    dense_units: int = 128
    # auto: 1 - 4/steps an epoch, between 0.5 and Keras' 0.99 (from 400 steps): about a quarter epoch
    bn_momentum: float | Literal["auto"] = "auto"
    # auto: stride-2 Conv2D blocks (twice the filters, at most 256) until the map is at most 8x8
    extra_blocks: int | Literal["auto"] = "auto"
    # auto: flatten a map of at most 4x4 positions, else average it (GlobalAveragePooling2D)
    head: Literal["auto", "flatten", "average"] = "auto"
    # random changes to the training images (null: none); auto: flips and turns for images 32 px
    # or larger, none for smaller ones (digits)
    augment: Augment | Literal["auto"] | None = dataclasses.field(default="auto", kw_only=True)


@dataclasses.dataclass(frozen=True)
class PretrainParams(CnnParams):
    publish_dir: str = dataclasses.field(
        kw_only=True
    )  # where the hub module is written (relative to the project root)


# keras.applications networks the transfer family offers (pipeline/models/backbones.py builds them)
Backbone = Literal["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "resnet50"]
BACKBONE_INPUT = (224, 224, 3)  # what each was trained on at ImageNet: the default image_size, channels


@dataclasses.dataclass(frozen=True)
class TransferParams:
    """Exactly one of `hub_handle` and `backbone`; a backbone's image_size and channels default to
    what it was trained on (resolved here, so the run logs the values it used)."""

    mode: Literal["feature", "finetune", "scratch"]
    head_dropout: float  # before the new classification head
    hub_handle: str | None = None  # a TF Hub URL or a directory holding a reusable SavedModel
    backbone: Backbone | None = None  # or a keras.applications ImageNet network
    # backbone: imagenet (downloaded once by Keras), a .weights.h5/.keras/.h5 file, or null (random)
    weights: str | None = "imagenet"
    image_size: tuple[int, int] | None = None  # (height, width) the network takes
    channels: int | None = None  # channels the network takes (1 grey, 3 RGB)
    augment: Augment | None = AUGMENT  # random changes to the training images (null: none)

    def __post_init__(self):
        if (self.hub_handle is None) == (self.backbone is None):
            raise UserError(
                "model: give exactly one of hub_handle (a TF Hub module) and backbone "
                f"(a keras.applications network: {', '.join(typing.get_args(Backbone))})"
            )
        if self.hub_handle is not None:
            if self.image_size is None or self.channels is None:
                raise UserError(
                    "model.image_size and model.channels: required with hub_handle (what the module "
                    "takes, e.g. [224, 224] and 3)"
                )
            if self.weights not in ("imagenet", None):  # the default, or resolved already
                raise UserError("model.weights: for model.backbone only (a hub module brings its own)")
            object.__setattr__(self, "weights", None)
            return
        if self.channels not in (None, BACKBONE_INPUT[2]):
            raise UserError(f"model.channels: {self.backbone} takes 3 (RGB; grey images are repeated)")
        object.__setattr__(self, "image_size", self.image_size or BACKBONE_INPUT[:2])
        object.__setattr__(self, "channels", BACKBONE_INPUT[2])
        if self.mode == "scratch":  # the architecture alone, trained end to end
            object.__setattr__(self, "weights", None)


@dataclasses.dataclass(frozen=True)
class TransferTrainParams(TrainParams):
    fine_tune_learning_rate: float  # mode finetune: the second phase's learning rate
    fine_tune_epochs: int  # mode finetune: at most this many epochs of the second phase


@dataclasses.dataclass(frozen=True)
class AutoencoderParams:
    architecture: Literal["dense", "conv"]
    hidden_units: tuple[int, ...]  # dense: encoder Dense layers (the decoder mirrors them)
    filters: tuple[int, ...]  # conv: one stride-2 Conv2D per entry (the decoder mirrors them)
    activation: Activation
    noise: float  # stddev of the Gaussian input noise while training (0 = plain autoencoder)


@dataclasses.dataclass(frozen=True)
class RecurrentParams:
    units: tuple[int, ...]  # one LSTM (or SimpleRNN) layer per entry (stacked)
    dropout: float  # on each recurrent layer's inputs


@dataclasses.dataclass(frozen=True)
class CharRecurrentParams:
    cell: Literal["rnn", "lstm", "gru"]  # SimpleRNN (no gates) | LSTM | GRU
    units: tuple[int, ...]  # one recurrent layer per entry (stacked)
    embedding_dim: int  # each character's learned vector
    dropout: float  # on each recurrent layer's inputs


@dataclasses.dataclass(frozen=True)
class NgramParams:
    max_order: int  # the longest n-gram counted; the order used is chosen on the validation split


@dataclasses.dataclass(frozen=True)
class DenseWindowParams:
    units: tuple[int, ...]  # one Dense layer per entry
    activation: Activation
    dropout: float  # after every hidden layer


@dataclasses.dataclass(frozen=True)
class SvcParams:
    C: float
    kernel: Literal["rbf", "linear", "poly", "sigmoid"]
    gamma: float | Literal["scale", "auto"]


@dataclasses.dataclass(frozen=True)
class LogregParams:
    C: float  # inverse regularisation strength: smaller = simpler weights
    max_iter: int  # the solver's iterations at most


@dataclasses.dataclass(frozen=True)
class PcaParams:
    whiten: bool  # scale the components to unit variance (changes retrieval distances only)


@dataclasses.dataclass(frozen=True)
class IsolationForestParams:
    n_estimators: int
    max_samples: int | float | Literal["auto"]  # images per tree: a count, a share, or "auto" = min(256, n)
    max_features: float  # share of the pixels each tree sees


@dataclasses.dataclass(frozen=True)
class SarimaxParams:
    order: tuple[int, int, int]  # (p, d, q)
    seasonal_order: tuple[int, int, int, int]  # (P, D, Q, s)
    simple_differencing: bool


@dataclasses.dataclass(frozen=True)
class NoParams:
    """No knobs: `model: {}` (the naive forecasts; seasonal-naive's season is the objective's)."""
