"""`python -m pipeline <command>`: a thin CLI over the stage modules.

Each command is two functions: `add_<command>` declares its arguments, `cmd_<command>` runs it.
Exit codes: 0 success · 2 user error (bad input or config; one line, no traceback) · 1 anything else.
Heavy imports (TensorFlow, MLflow) happen inside the commands that need them.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from pipeline import __version__, secrets
from pipeline.errors import PipelineError
from pipeline.workflows import EXECUTORS

EPILOG = """examples:
  python -m pipeline list
  python -m pipeline data digits
  python -m pipeline train cnn-same --set train.epochs=5 --set model.padding=valid
  python -m pipeline transfer-curve --sizes 1 5 all --seeds 2
  python -m pipeline train-all --executor ray mlp cnn-same svc
  python -m pipeline sweep cnn-same --num-samples 4
  python -m pipeline lecture conv-stride pooling
  make train-all        # every experiment in params.yaml, skipping what is up to date
"""


def verbosity(args) -> int | None:
    """--quiet: no Keras progress at all; otherwise the run's default (bars on a terminal)."""
    return 0 if args.quiet else None


def add_run_options(p: argparse.ArgumentParser, set_help: str, quiet_help: str) -> None:
    """--set KEY=VALUE (repeatable) and --quiet, as every training command takes them."""
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)
    p.add_argument("--quiet", action="store_true", help=quiet_help)


def positive(text: str) -> int:
    if not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer")
    return int(text)


def label_count(text: str) -> str:
    if text != "all" and not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive integer or 'all'")
    return text


# --------------------------------------------------------------------------- training


def cmd_train(args) -> int:
    from pipeline import api

    # the Python API's train: name, dataset, family and train-section errors answer before
    # TensorFlow's slow import
    trained = api.train(args.experiment, args.set, verbose=verbosity(args), sandbox=False)
    from pipeline.workflows import console

    summary = console.summarise(trained.outcome)
    print(console.result_line(summary))
    if summary.decision:
        print(f"  {summary.decision}")
    return 0


def add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train one experiment of params.yaml, tracked in MLflow",
        description="Train and evaluate one experiment in one MLflow run; a registered model "
        "(register_as) then goes through the promotion gate (retrain.gates).",
    )
    p.add_argument("experiment", help="experiment name in params.yaml (see `list`)")
    add_run_options(
        p,
        "override a param for this run, dotted as in params.yaml (repeatable), e.g. --set train.epochs=5",
        "no Keras progress bars",
    )
    p.set_defaults(func=cmd_train)


def cmd_train_all(args) -> int:
    from pathlib import Path

    from pipeline.workflows import fanout

    queue = Path(args.queue) if args.queue else None
    return fanout.run(
        args.experiments, args.executor, args.set, args.cpus_per_task, args.jobs, queue, args.quiet
    )


def add_train_all(sub) -> None:
    p = sub.add_parser(
        "train-all",
        help="train several experiments (default: all) in worker processes, in turn, or as Ray tasks",
        description="Train experiments of params.yaml (default: all; what they need is added) with the "
        "shared training core, upstream experiments first: --executor processes (default) runs a pool "
        "of worker processes (--jobs, default: one per core) that each import TensorFlow once and "
        "train the longest experiments first; sequential trains one at a time in this process; ray "
        "runs each as a Ray task (a local Ray, or the cluster RAY_ADDRESS names). `make train-all` "
        "passes --queue with the experiments it found out of date. Without --set, each trained "
        "experiment is marked up to date for make as soon as it ends. Prints one line per experiment "
        "(progress bars on a terminal) and a table per task. Exit code 1 (2 for user errors) when an "
        "experiment fails; it is named.",
    )
    p.add_argument("experiments", nargs="*", help="experiment names (default: every one in params.yaml)")
    p.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=EXECUTORS[0],
        help=f"default: {EXECUTORS[0]}",
    )
    p.add_argument("--jobs", type=positive, help="worker processes (default: the number of CPU cores)")
    p.add_argument(
        "--queue",
        metavar="FILE",
        help="also train the experiments listed in FILE, one per line, without adding what they need "
        "(make's out-of-date list; the file is emptied)",
    )
    p.add_argument(
        "--cpus-per-task", type=positive, default=1, help="CPUs Ray reserves per experiment (default: 1)"
    )
    add_run_options(
        p,
        "override a param of every experiment (repeatable), e.g. --set train.epochs=5",
        "no progress bars",
    )
    p.set_defaults(func=cmd_train_all)


def cmd_sweep(args) -> int:
    from pipeline import config

    # name and search-block errors answer at once, before TensorFlow's and Ray's imports
    config.resolve_experiment(config.load_params(), args.experiment, args.set)
    from pipeline.workflows import sweep

    sweep.run(
        args.experiment, args.num_samples, args.max_concurrent, args.set, args.cpus_per_trial, args.quiet
    )
    return 0


def add_sweep(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="hyperparameter search over an experiment's search: block (Ray Tune, nested MLflow runs)",
        description="Run a Ray Tune search over the search: block of one experiment in params.yaml: "
        "each trial is a normal run with the sampled values as --set overrides, nested under one "
        "parent run sweep-<experiment> that records the space and the best trial. ASHA "
        "(search.scheduler: asha) stops bad trials early. Trials register no model. Whether the "
        "metric is maximised or minimised is the experiment's objective's to say.",
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


def cmd_transfer_curve(args) -> int:
    from pipeline import config

    config.load_params()  # a broken params.yaml answers before TensorFlow's import
    from pipeline.workflows import transfer_curve

    sizes = None if args.sizes is None else [None if s == "all" else int(s) for s in args.sizes]
    transfer_curve.run(sizes, args.seeds, args.set, verbosity(args))
    return 0


def add_transfer_curve(sub) -> None:
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


def cmd_lecture(args) -> int:
    from pipeline.lecture import run

    return run.main(args.examples, args.json)


def add_lecture(sub) -> None:
    p = sub.add_parser(
        "lecture",
        help="the lecture's worked examples (perceptron, losses, convolution, pooling, ...) as MLflow runs",
        description="Compute the lecture's worked examples with the pipeline's own builders and Keras "
        "layers (the cnn family's Conv2D/padding/pooling code with the lecture's kernels as weights), "
        "print them as small matrices, and log one run per example in the MLflow experiment `lecture` "
        "with a picture and the numbers as JSON. Examples, in the lecture's order: "
        "perceptron, losses, gradient-step, conv-valid, conv-padding, conv-stride, conv-same, conv-rgb, "
        "pooling, params. See docs/lecture.md.",
    )
    p.add_argument("examples", nargs="*", metavar="EXAMPLE", help="examples to run (default: all)")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object keyed by example name instead of matrices"
    )
    p.set_defaults(func=cmd_lecture)


# --------------------------------------------------------------------------- data and store


def cmd_data(args) -> int:
    from pipeline import data

    return data.main(args.datasets, force=args.force)


def add_data(sub) -> None:
    p = sub.add_parser(
        "data",
        help="prepare datasets into data/processed/ (skips unchanged ones)",
        description="Validate, split, hash and cache datasets of params.yaml.",
    )
    p.add_argument("datasets", nargs="*", help="dataset names (default: all)")
    p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    p.set_defaults(func=cmd_data)


def cmd_list(args) -> int:
    from pipeline import config

    params = config.load_params()
    print(f"{'experiment':<20} {'task (MLflow experiment)':<26} {'family':<10} dataset")
    for name in config.experiment_names(params):
        exp = config.resolve_experiment(params, name)
        print(f"{name:<20} {exp.task:<26} {exp.family:<10} {exp.dataset}")
    return 0


def add_list(sub) -> None:
    p = sub.add_parser(
        "list",
        help="list the experiments of params.yaml",
        description="List experiments with their MLflow experiment, family and dataset.",
    )
    p.set_defaults(func=cmd_list)


def cmd_init_store(args) -> int:
    from pipeline import config
    from pipeline.training import tracking

    params = config.load_params()
    tasks = sorted({config.resolve_experiment(params, n).task for n in config.experiment_names(params)})
    tracking.init_store(tasks)
    print(f"tracking store ready: {tracking.shown_uri()} ({len(tasks)} experiments)")
    return 0


def add_init_store(sub) -> None:
    p = sub.add_parser(
        "init-store",
        help="create the tracking store's schema and experiments once",
        description="Create/upgrade the MLflow store and its experiments (before parallel runs).",
    )
    p.set_defaults(func=cmd_init_store)


def cmd_schema(args) -> int:
    from pipeline.tools import schema

    return schema.main(args.out)


def add_schema(sub) -> None:
    p = sub.add_parser(
        "schema",
        help="write the JSON Schema of params.yaml (editors validate and complete it)",
        description="Write the JSON Schema of params.yaml, generated from the code's schemas "
        "(data sources, model families, objectives, gates). See docs/configuration.md for VS Code.",
    )
    p.add_argument("--out", default="params.schema.json", help="output file (default: params.schema.json)")
    p.set_defaults(func=cmd_schema)


def cmd_makefile(args) -> int:
    from pipeline.tools import makefile

    makefile.write_makefile(args.out)
    return 0


def add_makefile(sub) -> None:
    p = sub.add_parser(
        "makefile",
        help="(used by make) write the stage graph generated from params.yaml",
        description="Write the make rules for every dataset and experiment in params.yaml; each "
        "experiment's code prerequisites are the modules it imports.",
    )
    p.add_argument("--out", default=".build/pipeline.mk", help="output file (default: .build/pipeline.mk)")
    p.set_defaults(func=cmd_makefile)


# --------------------------------------------------------------------------- production


RETRAIN_EPILOG = """arrival: a batch folder counts at once when it holds an empty file named READY (write it
  last), otherwise only when nothing in it has changed for retrain.settle_seconds (default 60);
  until then it is left alone. Thumbs.db, desktop.ini, .DS_Store, __MACOSX/ and dot-files are
  skipped.
names: a batch id is its folder name, which must match [A-Za-z0-9][A-Za-z0-9._-]{0,99}; a
  different batch under a name already used is ingested as <name>-<sha8>, the same files again are
  quarantined (never trained twice).
quarantine: a bad batch (bad name, a link or special file anywhere, a file its reader refuses,
  an image over retrain.max_image_pixels) moves to data/quarantine/<dataset>/<folder>/batch/ with
  a REASON.txt beside it; the other batches proceed.
safety: one cycle at a time (a second exits 1 at once); a cycle killed at any step is completed
  or rolled back by the next. See docs/retraining.md.
"""


def cmd_retrain(args) -> int:
    from pipeline.monitoring import alerts

    webhook = alerts.from_environment()  # a malformed RETRAIN_WEBHOOK stops here, before any work
    from pipeline.workflows import retrain

    if webhook is None:
        return retrain.main(args.model)
    return alerts.announced(webhook, lambda: retrain.main(args.model), args.model)


def add_retrain(sub) -> None:
    p = sub.add_parser(
        "retrain",
        help="one scheduled retraining cycle: new batches → challenger → gate → champion",
        description="Ingest new batches from data/incoming/<dataset>/<batch-id>/ (class folders of "
        "images, or CSV files of date,value rows for a series), train a challenger, "
        "promote it to champion only if it passes the gate in params.yaml (retrain.gates). With "
        "RETRAIN_WEBHOOK=https://… set, a failed cycle and every promotion are posted there as JSON "
        "(docs/alerts.md).",
        epilog=RETRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", help="registered model name (default: every experiment with register_as)")
    p.set_defaults(func=cmd_retrain)


def cmd_predict(args) -> int:
    from pipeline.tools import predict

    return predict.main(args.model, args.input, args.output, args.allow_unsafe_model, args.max_unreadable)


def add_predict(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="batch prediction with a logged or registered model",
        description="Predict a folder of images or a CSV of features; writes one CSV row per input. "
        "It prints which model answered and what it was trained on, and warns when the inputs do not "
        "look like that (colour into a grey model, sizes an order of magnitude apart, high drift). "
        "Only models the pipeline logs are loaded (Keras in safe mode, scikit-learn via skops, its own "
        "models-from-code checked by sha256); anything else, e.g. a pickled python_model, is refused.",
    )
    p.add_argument(
        "--model",
        default="digits-classifier",
        help="a registered model (its champion), an experiment of params.yaml (its latest finished run), "
        "a run id (6+ hex digits) or an MLflow model URI (models:/…, runs:/…); default: digits-classifier",
    )
    p.add_argument("--input", required=True, help="image folder or CSV file")
    p.add_argument("--output", default="predictions.csv", help="output CSV (default: predictions.csv)")
    p.add_argument(
        "--max-unreadable",
        default="0",
        help="skip and list up to this many image files that cannot be read (default: 0, refuse the first)",
    )
    p.add_argument(
        "--allow-unsafe-model",
        action="store_true",
        help="load a model the pipeline did not log (e.g. a pickled python_model), running any code it "
        "holds; also needs PIPELINE_ALLOW_UNSAFE_MODELS=1 in the environment. Only for a model you trust",
    )
    p.set_defaults(func=cmd_predict)


def cmd_serve(args) -> int:
    from pipeline.serving import app, follow, scoring

    settings = follow.Settings(args.model, args.alias, args.poll, args.drift_seconds, args.allow_unsafe_model)
    limits = scoring.Limits(max_records=args.max_records, max_bytes=args.max_body_mb * 2**20)
    return app.main(settings, args.host, args.port, limits)


def add_serve(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a registered model's alias over HTTP with MLflow's scoring protocol (follows the alias)",
        description="Serve the version ALIAS of registered model MODEL names (default: champion) on "
        "http://HOST:PORT with MLflow's scoring protocol: GET /ping, /health, /version; POST "
        '/invocations with {"dataframe_records": [...]}, {"dataframe_split": ...} or '
        '{"inputs": ...}. Every answer names the model (name, version, run id). The alias is read '
        "every --poll seconds: a newly promoted version answers without a restart, at most --poll "
        "seconds plus its loading time after the promotion. Bad requests get a 4xx with one line of "
        "JSON. Drift of the requests against the model's training data is written once per "
        "--drift-seconds to a run serve-MODEL in the MLflow experiment `predictions`. See "
        "docs/serving.md.",
    )
    p.add_argument("model", metavar="MODEL", help="registered model name, e.g. digits-classifier")
    p.add_argument("--alias", default="champion", help="the alias to serve and follow (default: champion)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1, local only)")
    p.add_argument("--port", type=int, default=5001, help="port (default: 5001)")
    p.add_argument(
        "--poll", type=float, default=10.0, help="seconds between two reads of the alias (default: 10)"
    )
    p.add_argument(
        "--drift-seconds",
        type=float,
        default=60.0,
        help="seconds of requests per drift comparison written to MLflow (default: 60)",
    )
    p.add_argument(
        "--max-records", type=positive, default=1000, help="records per request at most (default: 1000)"
    )
    p.add_argument(
        "--max-body-mb", type=positive, default=16, help="request body size at most, in MiB (default: 16)"
    )
    p.add_argument(
        "--allow-unsafe-model",
        action="store_true",
        help="serve a model the pipeline did not log, running any code it holds; also needs "
        "PIPELINE_ALLOW_UNSAFE_MODELS=1 in the environment. Only for a model you trust",
    )
    p.set_defaults(func=cmd_serve)


def cmd_retrieve(args) -> int:
    from pipeline.tools import retrieve

    return retrieve.main(args.images, args.k, args.model, args.output)


def add_retrieve(sub) -> None:
    p = sub.add_parser(
        "retrieve",
        help="the k nearest training images of each query image in an autoencoder's (or PCA's) code space",
        description="Encode each image with the latest finished run of --model (its logged encoder or "
        "PCA), find the k nearest images of the dataset's training split in that code space, print "
        "them, save them as a picture grid (default reports/retrieval/<model>.png) and log a run "
        "`retrieve` in the MLflow experiment `retrieval`. Images in any format Pillow reads are "
        "resized to the dataset's image size; symlinks and oversized files are refused.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="query image files")
    p.add_argument("--k", type=positive, default=10, help="neighbours per image (default: 10)")
    p.add_argument(
        "--model",
        default="autoencoder",
        help="experiment whose latest run encodes (family autoencoder or pca; default: autoencoder)",
    )
    p.add_argument(
        "--output", help="where to write the picture grid (default: reports/retrieval/<model>.png)"
    )
    p.set_defaults(func=cmd_retrieve)


# --------------------------------------------------------------------------- reading the store


def cmd_report(args) -> int:
    from pipeline.tools import report

    return report.main(log=not args.no_log, readme=args.readme)


def add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write reports/index.html and reports/summary.md comparing the latest runs",
        description="Compare the latest finished run of every experiment, per task (runs are ranked "
        "only against runs that solve the same problem); log it to MLflow.",
    )
    p.add_argument("--no-log", action="store_true", help="do not log the report to MLflow")
    p.add_argument(
        "--readme", action="store_true", help="also fill README.md's results block (dated) from these runs"
    )
    p.set_defaults(func=cmd_report)


def cmd_server(args) -> int:
    import os

    from pipeline.errors import UserError
    from pipeline.tools import ui

    if args.db and secrets.redact(args.db) != args.db:
        raise UserError(
            "--db holds a password, which every user of this machine could read (ps) while the server "
            "runs; give the URI in MLFLOW_BACKEND_STORE_URI instead (`DB=… make server` does)"
        )
    # MLflow's own variable: a URI with a password need not appear on any command line
    db = args.db or os.environ.get("MLFLOW_BACKEND_STORE_URI")
    return ui.server(args.host, args.port, db, args.artifacts, args.auth)


def add_server(sub) -> None:
    p = sub.add_parser(
        "server",
        help="run a shared MLflow tracking server (SQL backend store, served artifacts)",
        description="Start `mlflow server` for a team; clients set MLFLOW_TRACKING_URI=http://host:port.",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1, local only)")
    p.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    p.add_argument(
        "--db",
        help="backend store URI without a password (default: $MLFLOW_BACKEND_STORE_URI, where a URI "
        "with a password belongs, e.g. postgresql://user:pass@host:5432/mlflow; else "
        "sqlite:///mlruns/server/mlflow.db)",
    )
    p.add_argument(
        "--artifacts", help="artifact root the server writes to (default: mlruns/server/artifacts)"
    )
    p.add_argument(
        "--auth",
        action="store_true",
        help="MLflow's basic-auth app: users and permissions, users in mlruns/server/basic_auth.db; "
        "needs MLFLOW_FLASK_SERVER_SECRET_KEY and, on the first start, MLFLOW_AUTH_ADMIN_PASSWORD "
        "(12+ characters) in the environment",
    )
    p.set_defaults(func=cmd_server)


def cmd_ui(args) -> int:
    from pipeline.tools import ui

    return ui.main(args.host, args.port, args.links_only)


def add_ui(sub) -> None:
    p = sub.add_parser(
        "ui",
        help="print direct links to each task's runs and serve the MLflow UI",
        description="Serve the MLflow UI on the default store (127.0.0.1 unless --host).",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1, local only)")
    p.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    p.add_argument("--links-only", action="store_true", help="print the links and exit")
    p.set_defaults(func=cmd_ui)


# every command, in the order `--help` lists them
COMMANDS = (
    add_train,
    add_train_all,
    add_sweep,
    add_transfer_curve,
    add_lecture,
    add_data,
    add_list,
    add_init_store,
    add_retrain,
    add_predict,
    add_serve,
    add_retrieve,
    add_report,
    add_server,
    add_ui,
    add_schema,
    add_makefile,
)


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
    for add in COMMANDS:
        add(sub)
    return parser


# commands that import TensorFlow whatever their input: imported first, without its start-up lines
# (train checks its params before the import; predict and retrieve check their input and model first;
# train-all's workers, serve and retrain do it themselves)
TENSORFLOW_FIRST = {"sweep", "transfer-curve", "lecture"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args.func, args, tensorflow_first=args.command in TENSORFLOW_FIRST)


def run(command, args, tensorflow_first: bool = False) -> int:
    """Run a parsed command with the exit codes above (benchmarks/ runs its commands through it),
    in the command's settings (startup.quiet)."""
    from pipeline import startup

    secrets.redact_logs()  # MLflow's and SQLAlchemy's messages embed the store URI, password included
    try:
        with startup.quiet():
            if tensorflow_first:
                startup.quiet_tensorflow()
            return command(args)
    except PipelineError as exc:
        print(f"error: {secrets.redact(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an outside failure: the traceback, with any password hidden
        print(secrets.redact("".join(traceback.format_exception(exc))), file=sys.stderr, end="")
        return 1


if __name__ == "__main__":
    sys.exit(main())
