"""The network of `python -m benchmarks photos`' `backbone` config, trained without pipeline code.

    python -m benchmarks.bare_backbone --data DIR --out backbone.weights.h5 --image-size 64 64

MobileNetV3Small (keras.applications: random weights, no classifier, average-pooled) with a
softmax head, trained from scratch on DIR (a sub-folder per class: an `other` folder of
benchmarks/photo_folders.py, none of the photos' classes) as keras-io trains an image classifier:
`image_dataset_from_directory` (85 % to train, 15 % to stop early), flips and turns, Adam,
EarlyStopping on the validation loss. MobileNetV3 takes values in [0, 255], as the folder is read
(and as the pipeline feeds it). Batch norm's momentum is 0.9: Keras' MobileNetV3 has 0.999, a
window of about a thousand steps, more than this training has. The network's weights, without the
head, go to --out (what the transfer family's `model.weights` reads); its validation accuracy to
--out + ".json".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bare_backbone", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a folder with a sub-folder per class")
    p.add_argument("--out", required=True, help="the weights file written (.weights.h5)")
    p.add_argument("--image-size", type=int, nargs=2, required=True, metavar=("HEIGHT", "WIDTH"))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import keras
    import tensorflow as tf
    from keras import layers

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    train, val = keras.utils.image_dataset_from_directory(
        args.data,
        image_size=tuple(args.image_size),
        batch_size=args.batch_size,
        validation_split=0.15,
        subset="both",
        seed=args.seed,
    )
    classes = len(train.class_names)
    network = keras.applications.MobileNetV3Small(
        input_shape=(*args.image_size, 3), include_top=False, weights=None, pooling="avg"
    )
    for layer in network.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = 0.9
    inputs = keras.Input((*args.image_size, 3))
    x = layers.RandomFlip("horizontal")(inputs)
    x = layers.RandomRotation(0.1)(x)
    model = keras.Model(inputs, layers.Dense(classes, activation="softmax")(network(x)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(patience=args.patience, restore_best_weights=True)
    history = model.fit(train, validation_data=val, epochs=args.epochs, callbacks=[stop], verbose=2)
    network.save_weights(args.out)
    _, accuracy = model.evaluate(val, verbose=0)
    result = {"val_accuracy": accuracy, "epochs_trained": len(history.history["loss"]), "classes": classes}
    Path(args.out + ".json").write_text(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
