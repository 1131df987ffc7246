"""`python -m pipeline <command>`: a thin CLI over the stage modules.

Exit codes: 0 success · 2 user error (bad input or config; one line, no traceback) · 1 anything else.
Heavy imports (TensorFlow, MLflow) happen inside the commands that need them.
"""

from __future__ import annotations

import argparse
import sys

from pipeline import __version__
from pipeline.errors import PipelineError

EPILOG = """examples:
  python -m pipeline list
  python -m pipeline data digits
  python -m pipeline train cnn-same --set train.epochs=5 --set model.padding=valid
  python -m pipeline transfer-curve --sizes 1 5 all --seeds 2
  python -m pipeline train-all --executor ray mlp cnn-same svc
  python -m pipeline sweep cnn-same --num-samples 4
  make train-all        # every experiment in params.yaml, skipping what is up to date
"""


def cmd_train(args) -> int:
    from pipeline import config

    # name, dataset and family errors answer at once, before TensorFlow's ~6 s import
    config.resolve_experiment(config.load_params(), args.experiment, args.set)
    from pipeline import train

    if args.quiet:
        train.PROGRESS = 0
    train.run(args.experiment, args.set)
    return 0


def cmd_train_all(args) -> int:
    from pipeline import fanout

    return fanout.run(args.experiments, args.executor, args.set, args.cpus_per_task, args.quiet)


def cmd_sweep(args) -> int:
    from pipeline import config

    # name and search-block errors answer at once, before TensorFlow's and Ray's imports
    config.resolve_experiment(config.load_params(), args.experiment, args.set)
    from pipeline import sweep

    sweep.run(
        args.experiment, args.num_samples, args.max_concurrent, args.set, args.cpus_per_trial, args.quiet
    )
    return 0


def add_run_options(p: argparse.ArgumentParser, set_help: str, quiet_help: str) -> None:
    """--set KEY=VALUE (repeatable) and --quiet, as every training command takes them."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--quiet", action="store_true", help=quiet_help)


def positive(text: str) -> int:
    if not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer")
    return int(text)


def cmd_transfer_curve(args) -> int:
    from pipeline import config

    config.load_params()  # a broken params.yaml answers before TensorFlow's import
    from pipeline import train, transfer_curve

    if args.quiet:
        train.PROGRESS = 0
    sizes = None if args.sizes is None else [None if s == "all" else int(s) for s in args.sizes]
    transfer_curve.run(sizes, args.seeds, args.set)
    return 0


def label_count(text: str) -> str:
    if text != "all" and not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer or 'all'")
    return text


def cmd_data(args) -> int:
    from pipeline import data

    return data.main(args.datasets, force=args.force)


def cmd_list(args) -> int:
    from pipeline import config

    params = config.load_params()
    print(f"{'experiment':<20} {'task (MLflow experiment)':<26} {'family':<10} dataset")
    for name in config.experiment_names(params):
        exp = config.resolve_experiment(params, name)
        print(f"{name:<20} {exp.task:<26} {exp.family:<10} {exp.dataset}")
    return 0


def cmd_init_store(args) -> int:
    from pipeline import config, tracking

    params = config.load_params()
    tasks = sorted({config.resolve_experiment(params, n).task for n in config.experiment_names(params)})
    uri = tracking.init_store(tasks)
    print(f"tracking store ready: {uri} ({len(tasks)} experiments)")
    return 0


def cmd_retrain(args) -> int:
    from pipeline import retrain

    return retrain.main(args.model)


def cmd_predict(args) -> int:
    from pipeline import predict

    return predict.main(args.model, args.input, args.output)


def cmd_server(args) -> int:
    import os

    from pipeline import ui

    # MLflow's own variable: a URI with a password need not appear on any command line
    db = args.db or os.environ.get("MLFLOW_BACKEND_STORE_URI")
    return ui.server(args.host, args.port, db, args.artifacts)


def cmd_bench(args) -> int:
    from pipeline import bench

    return bench.main(args.repeats, args.epochs, args.images, args.stage_repeats, args.only)


def cmd_report(args) -> int:
    from pipeline import report

    return report.main(log=not args.no_log)


def cmd_ui(args) -> int:
    from pipeline import ui

    return ui.main(args.host, args.port, args.links_only)


def cmd_makefile(args) -> int:
    from pipeline import stages

    stages.write_makefile(args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Keras 3 / TensorFlow deep-learning pipeline with MLflow tracking. "
        "Every knob lives in params.yaml.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = sub.add_parser(
        "train",
        help="train one experiment of params.yaml, tracked in MLflow",
        description="Train and evaluate one experiment in one MLflow run.",
    )
    p.add_argument("experiment", help="experiment name in params.yaml (see `list`)")
    add_run_options(
        p,
        "override a param for this run, dotted as in params.yaml (repeatable), e.g. --set train.epochs=5",
        "no Keras progress bars",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "train-all",
        help="train several experiments (default: all), one after another or as Ray tasks",
        description="Train experiments of params.yaml (default: all; what they need is added) with the "
        "shared training core: --executor sequential trains one at a time in this process, --executor "
        "ray runs each as a Ray task (a local Ray with this machine's CPUs, or the cluster RAY_ADDRESS "
        "names), upstream experiments first. Every task logs to this process's tracking store. Without "
        "--set, each trained experiment is marked up to date for make. Exit code 1 (2 for user errors) "
        "when an experiment fails; it is named.",
    )
    p.add_argument("experiments", nargs="*", help="experiment names (default: every one in params.yaml)")
    p.add_argument(
        "--executor", choices=["sequential", "ray"], default="sequential", help="default: sequential"
    )
    p.add_argument(
        "--cpus-per-task", type=positive, default=1, help="CPUs Ray reserves per experiment (default: 1)"
    )
    add_run_options(
        p,
        "override a param of every experiment (repeatable), e.g. --set train.epochs=5",
        "no Keras progress bars",
    )
    p.set_defaults(func=cmd_train_all)

    p = sub.add_parser(
        "sweep",
        help="hyperparameter search over an experiment's search: block (Ray Tune, nested MLflow runs)",
        description="Run a Ray Tune search over the search: block of one experiment in params.yaml: "
        "each trial is a normal run with the sampled values as --set overrides, nested under one "
        "parent run sweep-<experiment> that records the space and the best trial. ASHA "
        "(search.scheduler: asha) stops bad trials early. Trials register no model.",
    )
    p.add_argument("experiment", help="experiment name in params.yaml with a search: block")
    p.add_argument("--num-samples", type=positive, help="trials (default: search.num_samples)")
    p.add_argument("--max-concurrent", type=positive, help="trials at once (default: search.max_concurrent)")
    p.add_argument(
        "--cpus-per-trial", type=positive, default=1, help="CPUs Ray reserves per trial (default: 1)"
    )
    add_run_options(
        p,
        "override a param of every trial (repeatable), e.g. --set train.epochs=5",
        "no Keras progress bars or Tune status tables",
    )
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "transfer-curve",
        help="learning curve: scratch vs transfer at 1, 2, 5, ... labels per class (nested runs)",
        description="Train the transfer_curve section's experiments at each labels_per_class with "
        "several seeds, as nested MLflow runs under one parent; log a table and plot of mean ± std "
        "test accuracy (also written to reports/transfer-curve/). Needs the hub module that "
        "`make train-pretrain` publishes.",
    )
    p.add_argument(
        "--sizes",
        nargs="+",
        type=label_count,
        metavar="N",
        help="labels per class to try, 'all' for every example (default: transfer_curve.labels_per_class)",
    )
    p.add_argument("--seeds", type=int, help="seeds per size (default: transfer_curve.seeds)")
    add_run_options(
        p,
        "override a param of every curve experiment (repeatable), e.g. --set train.epochs=5",
        "no Keras progress bars",
    )
    p.set_defaults(func=cmd_transfer_curve)

    p = sub.add_parser(
        "data",
        help="prepare datasets into data/processed/ (skips unchanged ones)",
        description="Validate, split, hash and cache datasets of params.yaml.",
    )
    p.add_argument("datasets", nargs="*", help="dataset names (default: all)")
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser(
        "list",
        help="list the experiments of params.yaml",
        description="List experiments with their MLflow experiment, family and dataset.",
    )
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "init-store",
        help="create the tracking store's schema and experiments once",
        description="Create/upgrade the MLflow store and its experiments (before parallel runs).",
    )
    p.set_defaults(func=cmd_init_store)

    p = sub.add_parser(
        "retrain",
        help="one scheduled retraining cycle: new batches → challenger → gate → champion",
        description="Ingest new batches from data/incoming/<dataset>/<batch-id>/ (class folders of "
        "images, or CSV files of date,value rows for a series), train a challenger, "
        "promote it to champion only if it passes the gate in params.yaml (retrain.gates).",
    )
    p.add_argument("--model", help="registered model name (default: every experiment with register_as)")
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser(
        "predict",
        help="batch prediction with a logged or registered model",
        description="Predict a folder of images or a CSV of features; writes one CSV row per input.",
    )
    p.add_argument(
        "--model",
        default="models:/digits-classifier@champion",
        help="MLflow model URI (default: models:/digits-classifier@champion)",
    )
    p.add_argument("--input", required=True, help="image folder or CSV file")
    p.add_argument("--output", default="predictions.csv", help="output CSV (default: predictions.csv)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "bench",
        help="benchmarks: pipeline overhead vs bare Keras, stage times, data-prep and inference throughput",
        description="Measure in a throw-away project; write reports/bench.json and reports/bench.md and log "
        "them to the MLflow experiment `benchmarks`. Takes several minutes.",
    )
    p.add_argument("--repeats", type=int, default=3, help="repetitions per figure (default: 3)")
    p.add_argument("--epochs", type=int, default=15, help="epochs of the overhead comparison (default: 15)")
    p.add_argument(
        "--images", type=int, default=5000, help="images in the data-prep benchmark (default: 5000)"
    )
    p.add_argument(
        "--stage-repeats", type=int, default=2, help="clean `make train-all` repetitions (default: 2)"
    )
    p.add_argument(
        "--only",
        action="append",
        choices=["stages", "overhead", "data_prep", "inference"],
        help="measure only this section (repeatable); the others keep their last figures",
    )
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "report",
        help="write reports/index.html and reports/summary.md comparing the latest runs",
        description="Compare the latest finished run of every experiment, per task; log it to MLflow.",
    )
    p.add_argument("--no-log", action="store_true", help="do not log the report to MLflow")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "server",
        help="run a shared MLflow tracking server (SQL backend store, served artifacts)",
        description="Start `mlflow server` for a team; clients set MLFLOW_TRACKING_URI=http://host:port.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1, local only)")
    p.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    p.add_argument(
        "--db",
        help="backend store URI (default: $MLFLOW_BACKEND_STORE_URI, else "
        "sqlite:///mlruns/server/mlflow.db; e.g. postgresql://user:pass@host:5432/mlflow)",
    )
    p.add_argument(
        "--artifacts", help="artifact root the server writes to (default: mlruns/server/artifacts)"
    )
    p.set_defaults(func=cmd_server)

    p = sub.add_parser(
        "ui",
        help="print direct links to each task's runs and serve the MLflow UI",
        description="Serve the MLflow UI on the default store (127.0.0.1 unless --host).",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1, local only)")
    p.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    p.add_argument("--links-only", action="store_true", help="print the links and exit")
    p.set_defaults(func=cmd_ui)

    p = sub.add_parser(
        "makefile",
        help="(used by make) write the stage graph generated from params.yaml",
        description="Write the make rules for every dataset and experiment in params.yaml.",
    )
    p.add_argument("--out", default=".build/pipeline.mk", help="output file (default: .build/pipeline.mk)")
    p.set_defaults(func=cmd_makefile)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
