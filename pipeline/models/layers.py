"""Layers Keras does not ship that the lecture names: min pooling.

Registered with Keras' serialisation (package "pipeline"), so a model using them saves to a
`.keras` file and loads again once this module is imported (as `pipeline.models.hub` does for
its HubLayer): `import pipeline.models.layers` before `keras.saving.load_model` or
`mlflow.pyfunc.load_model`.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="pipeline")
class MinPooling2D(keras.layers.MaxPooling2D):
    """The smallest value of each pooling window: min(x) = -max(-x).

    Same arguments and output shape as MaxPooling2D; padding="same" pads with +inf for the min,
    as MaxPooling2D pads with -inf for the max, so a padded cell never wins.
    """

    def call(self, inputs):
        return -super().call(-inputs)
