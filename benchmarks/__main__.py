"""`python -m benchmarks <command>` (`make bench`, `make soak`): the benchmark and soak harnesses,
outside the package. Same exit codes as `python -m pipeline` (its `cli.run`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline import cli
from pipeline.cli import positive


def cmd_bench(args) -> int:
    from benchmarks import bench, scale

    settings = scale.Settings(
        sizes=tuple(args.sizes),
        grey=args.grey_images,
        repeats=args.repeats,
        epochs=args.scale_epochs,
        hub_images=args.hub_images,
        hub_epochs=args.hub_epochs,
        data_dir=args.scale_data,
    )
    return bench.main(
        args.repeats,
        args.epochs,
        args.images,
        args.only,
        args.train_all_repeats,
        settings,
    )


def sizes(text: str) -> list[int]:
    """`1000,2000`: folder sizes, positive."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of positive counts")
    return values


def count(text: str) -> int:
    """A count that may be 0 (the part is skipped)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a count (0 or more)")
    return value


def add_scale_flags(p) -> None:
    from benchmarks import scale

    defaults = scale.Settings()
    p.add_argument(
        "--sizes",
        type=sizes,
        default=list(defaults.sizes),
        help="scale: photo folders (224x224 JPEGs), comma-separated counts (default: 1000,2000,10000,20000)",
    )
    knobs = (
        ("--grey-images", count, defaults.grey, "images of the 28x28 grey PNG folder, 0 for none"),
        ("--scale-epochs", positive, defaults.epochs, "epochs of each training run, the first not timed"),
        ("--hub-images", count, defaults.hub_images, "photos of the frozen-hub comparison, 0 for none"),
        ("--hub-epochs", positive, defaults.hub_epochs, "epochs of each transfer run"),
        ("--scale-data", Path, defaults.data_dir, "where the generated folders are written and reused"),
    )  # fmt: skip
    for flag, kind, default, text in knobs:
        p.add_argument(flag, type=kind, default=default, help=f"scale: {text} (default: {default})")


def add_bench(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmarks: train-all, pipeline overhead vs bare Keras, data prep, inference, serving",
        description="Measure in a throw-away project; write reports/bench.json and reports/bench.md and log "
        "them to the MLflow experiment `benchmarks`. Takes several minutes.",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="repetitions per figure; scale: preps and alternated training runs per folder (default: 3)",
    )
    p.add_argument("--epochs", type=int, default=15, help="epochs of the overhead comparison (default: 15)")
    p.add_argument(
        "--images", type=int, default=5000, help="images in the data-prep benchmark (default: 5000)"
    )
    p.add_argument(
        "--train-all-repeats",
        type=int,
        default=2,
        help="clean `make train-all` repetitions: wall time, store size; then 3 no-op reruns (default: 2)",
    )
    p.add_argument(
        "--only",
        action="append",
        choices=["train_all", "overhead", "data_prep", "inference", "serving", "scale"],
        help="measure only this section (repeatable); the others keep their last figures. `scale` "
        "(generated folders up to 20,000 photos: hours) runs only when named",
    )
    add_scale_flags(p)
    p.set_defaults(func=cmd_bench)


def cmd_soak(args) -> int:
    from benchmarks import soak

    return soak.main(args.cycles, args.kill_share, args.seed, args.keep)


def share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number from 0 to 1")
    return value


def add_soak(sub) -> None:
    p = sub.add_parser(
        "soak",
        help="retrain soak test: many cycles with hostile batches and kills, invariants checked",
        description="Run retrain cycles in a scratch copy of the project (1-epoch challengers), each "
        "with a random mix of good, corrupt, duplicate-named, re-sent, half-copied and hostile "
        "batches, a kill -9 in a share of them at each retrain step in turn; check after every "
        "cycle that every batch is consumed once or quarantined intact, the holdout is unchanged, "
        "champion is on a "
        "promoted version, no run is RUNNING and nothing outside the scratch project was written. "
        "Writes reports/soak.json; exit 1 on any violation. Takes about half a minute per cycle.",
    )
    p.add_argument("--cycles", type=positive, default=50, help="retrain cycles (default: 50)")
    p.add_argument("--kill-share", type=share, default=0.2, help="share of cycles killed (default: 0.2)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the batch mix and kills (default: 0)")
    p.add_argument("--keep", action="store_true", help="keep the scratch project (its path is printed)")
    p.set_defaults(func=cmd_soak)


def cmd_photos(args) -> int:
    from benchmarks import photos

    cases = args.cases or photos.grid(args.grid)
    settings = photos.Settings(
        cases=tuple(cases),
        configs=tuple(args.configs or photos.CONFIGS),
        epochs=args.epochs,
        patience=args.patience,
        overrides=tuple(args.set or ()),
        data_dir=args.data,
    )
    return photos.main(settings)


def case(text: str):
    from benchmarks import photos

    try:
        return photos.Case.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_photos(sub) -> None:
    from benchmarks import photos

    p = sub.add_parser(
        "photos",
        help="own photos: the cnn family's defaults, cnn-same's block copied and a backbone trained on "
        "another folder vs two bare keras-io scripts",
        description="Generate folders of photographs (10 classes; benchmarks/photo_folders.py, needs the "
        "bench extra: make .venv/.extra-bench), train each config on the same splits and write the test "
        "accuracies to reports/photos.json and reports/photos.md. The pilot takes minutes, the full grid "
        "hours.",
    )
    p.add_argument("--grid", choices=["pilot", "full"], default="pilot", help="pilot: 300 photos at 64², "
                   "one seed; full: 300 and 2,000 at 64² (3 seeds), 20,000 at 64², 2,000 at 224², 2,000 grey "
                   "(default: pilot)")  # fmt: skip
    p.add_argument("--cases", action="append", type=case, help="this case instead of the grid, e.g. "
                   "grey-300-64px-s0 (<photos|grey>-<images>-<side>px-s<seed>; repeatable)")  # fmt: skip
    p.add_argument("--configs", action="append", choices=photos.CONFIGS, help="only this config (repeatable)")
    p.add_argument("--epochs", type=positive, default=15, help="at most this many epochs (default: 15)")
    p.add_argument("--patience", type=positive, default=5, help="early stopping's patience (default: 5)")
    p.add_argument(
        "--set", action="append", metavar="KEY=VALUE", help="override a param of default and copied"
    )
    p.add_argument("--data", type=Path, default=photos.DATA_DIR, help=f"generated folders and the scratch "
                   f"project (default: {photos.DATA_DIR})")  # fmt: skip
    p.set_defaults(func=cmd_photos)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks and soak tests of the pipeline, each in a throw-away project.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for add in (add_bench, add_soak, add_photos):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run(args.func, args, tensorflow_first=True)


if __name__ == "__main__":
    sys.exit(main())
