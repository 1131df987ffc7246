"""The bare Keras side of the scale benchmark: a model trained straight from image folders.

    python -m benchmarks.bare_keras --train DIR --val DIR --out result.json [--cache] ...

keras-io's recipe: `keras.utils.image_dataset_from_directory(...)` (decoding the files every
epoch), `.cache()` where its float32 copy fits in memory, `.prefetch(AUTOTUNE)`, a `Rescaling`
layer in front of the network. The network is the pipeline's cnn (`pipeline.models.cnn.build`, the
same layers and initial weights for the same seed), the seed and op determinism are set as the
pipeline sets them, and the same validation split is scored after every epoch. Writes each
epoch's seconds (from one epoch's end to the next; the first from the start of fit) as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bare_keras", description=__doc__.split("\n")[0])
    p.add_argument("--train", required=True, help="training images, one sub-folder per class")
    p.add_argument("--val", required=True, help="validation images, the same classes")
    p.add_argument("--out", required=True, help="where the result JSON goes")
    p.add_argument("--image-size", type=int, nargs=2, required=True, metavar=("HEIGHT", "WIDTH"))
    p.add_argument("--color-mode", choices=["rgb", "grayscale"], default="rgb")
    p.add_argument("--model", required=True, help="the cnn's model: block as JSON")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=0.001)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--cache", action="store_true", help="cache the decoded float32 images in memory")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import keras
    import tensorflow as tf

    from pipeline.config import parse_section
    from pipeline.models import cnn
    from pipeline.models.schemas import CnnParams
    from pipeline.specs import ClassifierSpec

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()

    # every class in the same order on both sides, even one a small validation split lacks
    class_names = sorted(p.name for p in Path(args.train).iterdir() if p.is_dir())

    def folder(path: str, shuffle: bool):
        data = keras.utils.image_dataset_from_directory(
            path,
            class_names=class_names,
            image_size=tuple(args.image_size),
            color_mode=args.color_mode,
            batch_size=args.batch_size,
            shuffle=shuffle,
            seed=args.seed,
        )
        return (data.cache() if args.cache else data).prefetch(tf.data.AUTOTUNE)

    train, val = folder(args.train, True), folder(args.val, False)
    channels = 3 if args.color_mode == "rgb" else 1
    shape = (*args.image_size, channels)
    classes = len(class_names)
    params = parse_section(CnnParams, json.loads(args.model), "--model")
    network = cnn.build(params, ClassifierSpec(shape, classes, args.seed))
    inputs = keras.Input(shape)
    model = keras.Model(inputs, network(keras.layers.Rescaling(1 / 255)(inputs)))
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    ends: list[float] = []
    clock = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ends.append(time.perf_counter()))
    started = time.perf_counter()
    history = model.fit(train, validation_data=val, epochs=args.epochs, callbacks=[clock], verbose=0)
    seconds = [b - a for a, b in zip([started, *ends], ends, strict=False)]
    result = {
        "epoch_seconds": seconds,
        "fit_seconds": time.perf_counter() - started,
        "val_accuracy": history.history["val_accuracy"],
        "cache": args.cache,
    }
    Path(args.out).write_text(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
