"""The bare keras-io script of `python -m benchmarks photos`: no pipeline code at all.

    python -m benchmarks.bare_photos --data DIR --out result.json --image-size 64 64 [--batch-norm]

keras-io's image classification from scratch, small: `image_dataset_from_directory` on DIR/train,
DIR/val and DIR/test, augmentation layers (horizontal flip, rotation), `Rescaling`, three blocks of
Conv2D (+ BatchNormalization) + ReLU + max pooling, global average pooling, dropout, softmax;
Adam, EarlyStopping(patience, restore_best_weights) on the validation loss; the test accuracy as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bare_photos", description=__doc__.split("\n")[0])
    p.add_argument(
        "--data", required=True, help="a folder holding train/, val/ and test/, a sub-folder per class"
    )
    p.add_argument("--out", required=True, help="where the result JSON goes")
    p.add_argument("--image-size", type=int, nargs=2, required=True, metavar=("HEIGHT", "WIDTH"))
    p.add_argument("--color-mode", choices=["rgb", "grayscale"], default="rgb")
    p.add_argument("--batch-norm", action="store_true", help="BatchNormalization after each Conv2D")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=42)
    return p.parse_args(argv)


def model(shape: tuple, classes: int, batch_norm: bool):
    import keras
    from keras import layers

    inputs = keras.Input(shape)
    x = layers.RandomFlip("horizontal")(inputs)
    x = layers.RandomRotation(0.1)(x)
    x = layers.Rescaling(1 / 255)(x)
    for filters in (32, 64, 128):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm)(x)
        if batch_norm:
            x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, layers.Dense(classes, activation="softmax")(x))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    root = Path(args.data)
    class_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())

    def split(name: str, shuffle: bool):
        return keras.utils.image_dataset_from_directory(
            root / name,
            class_names=class_names,
            image_size=tuple(args.image_size),
            color_mode=args.color_mode,
            batch_size=args.batch_size,
            shuffle=shuffle,
            seed=args.seed,
        ).prefetch(tf.data.AUTOTUNE)

    train, val, test = split("train", True), split("val", False), split("test", False)
    channels = 3 if args.color_mode == "rgb" else 1
    network = model((*args.image_size, channels), len(class_names), args.batch_norm)
    network.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(patience=args.patience, restore_best_weights=True)
    history = network.fit(train, validation_data=val, epochs=args.epochs, callbacks=[stop], verbose=0)
    loss, accuracy = network.evaluate(test, verbose=0)
    epochs = len(history.history["loss"])
    result = {"test_accuracy": accuracy, "test_loss": loss, "epochs_trained": epochs}
    result["val_accuracy"] = network.evaluate(val, verbose=0)[1]  # of the epoch early stopping kept
    Path(args.out).write_text(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
