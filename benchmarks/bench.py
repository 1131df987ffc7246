"""`make bench`: what the pipeline costs and how fast it runs, measured, never asserted.

Everything is measured in a throw-away project folder (your data and MLflow store are never
touched); the results go to reports/bench.json and reports/bench.md and are logged to the MLflow
experiment `benchmarks` of your store. Every figure is the median of several repetitions, with
min and max, next to the machine and the versions it was measured with.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import folders, peak, scratch, summary
from benchmarks.scratch import Project
from pipeline import atomic
from pipeline.config import project_root


def machine() -> dict[str, str]:
    import keras
    import mlflow
    import tensorflow as tf

    cpu = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "mlflow": mlflow.__version__,
    }


WARMUP_ROUNDS = 1


def overhead(repeats: int, epochs: int) -> dict:
    """Pipeline training of cnn-same (everything included) vs a bare keras fit, alternated."""
    from pipeline import config, data
    from pipeline.training import keras_loop
    from pipeline.training.plan import make_plan
    from pipeline.training.run import RunOptions
    from pipeline.workflows import train_and_gate

    overrides = [f"train.epochs={epochs}", f"train.patience={epochs + 1}"]  # no early stop: same work
    plan = make_plan(config.load_params(), "cnn-same", overrides)
    dataset = data.load("digits")
    splits, spec = plan.objective.prepare(dataset, plan.train, None)
    x_train, x_val = splits.x_train.load(), splits.x_val.load()  # the bare fit's arrays (digits: small)
    samples = len(splits.x_train) * epochs
    bare, pipeline = [], []
    for _ in range(WARMUP_ROUNDS + repeats):
        keras_loop.seed_everything(plan.train.seed)
        model = plan.family.build(plan.model, spec)
        model.compile(
            optimizer=keras_loop.make_optimizer(plan.train.optimizer, plan.train.learning_rate),
            loss=plan.objective.loss,
            metrics=plan.objective.keras_metrics(),
        )
        gc.collect()  # neither side pays a full collection of the other's garbage (as timeit does)
        started = time.perf_counter()
        model.fit(
            x_train,
            splits.y_train,
            validation_data=(x_val, splits.y_val),
            epochs=epochs,
            batch_size=plan.train.batch_size,
            verbose=0,
        )
        bare.append(samples / (time.perf_counter() - started))
        gc.collect()
        started = time.perf_counter()
        train_and_gate.train("cnn-same", overrides, RunOptions(verbose=0))
        pipeline.append(samples / (time.perf_counter() - started))
    # the warm-up rounds are not counted: the first pipeline run creates the store's schema and
    # the first fit starts TensorFlow's thread pools, one-time costs, not the per-run overhead
    bare, pipeline = bare[WARMUP_ROUNDS:], pipeline[WARMUP_ROUNDS:]
    ratios = [p / b for p, b in zip(pipeline, bare, strict=True)]
    # what a run costs beyond its fit (evaluation, figures, MLflow logging the model, the gate): the
    # same seconds however long the training, so the ratio says little about real-sized training
    fixed = [samples / p - samples / b for p, b in zip(pipeline, bare, strict=True)]
    return {
        "epochs": epochs,
        "warmup_rounds": WARMUP_ROUNDS,
        "train_examples": len(splits.x_train),
        "bare_samples_per_s": summary(bare),
        "pipeline_samples_per_s": summary(pipeline),
        "throughput_ratio": summary(ratios),
        "fixed_cost_per_run_s": summary(fixed),
    }


def make_cmd(project: Project, *goals: str) -> float:
    """Seconds of `make GOALS` in the project (its own copy of the code)."""
    python = project.root / "python"
    if not python.exists():
        python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        python.chmod(0o755)
    started = time.perf_counter()
    subprocess.run(
        ["make", "-f", str(scratch.REPO / "Makefile"), f"PY={python}", "VENV_STAMP=.venv-ready", *goals],
        cwd=project.root,
        check=True,
        capture_output=True,
        env=project.env(),
    )
    return time.perf_counter() - started


def mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20 if path.exists() else 0.0


def store_sizes(folder: Path | str) -> tuple[float, dict[str, float], float]:
    """(the whole store in MiB, each run's artifacts in MiB by run name, the runs' summed train_seconds)."""
    import mlflow

    folder = Path(folder)
    client = mlflow.MlflowClient(Project(folder).tracking_uri)
    sizes, seconds = {}, 0.0
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            local = Path(run.info.artifact_uri.removeprefix("file://"))
            sizes[run.info.run_name] = round(mib(local), 3)
            seconds += run.data.metrics.get("train_seconds", 0.0)
    return mib(folder / "mlruns"), sizes, seconds


def store_sizes_apart(folder: Path) -> tuple[float, dict[str, float], float]:
    """store_sizes read in a child process: an engine this process kept on the SQLite file would
    write into the deleted file after the next `make clean` ("attempt to write a readonly
    database")."""
    code = "import json, sys; from benchmarks import bench; print(json.dumps(bench.store_sizes(sys.argv[1])))"
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True
    ).stdout
    store, sizes, seconds = json.loads(out.strip().splitlines()[-1])
    return store, sizes, seconds


def train_all(project: Project, repeats: int) -> dict:
    """`make train-all` from a clean store (`make clean`): its wall time, the runs' own summed
    durations (their ratio: how well the worker processes keep the cores busy), the store's size
    with each run's artifacts; then a rerun with nothing changed (make's checks alone)."""
    walls, summed, stores, sizes = [], [], [], {}
    for _ in range(repeats):
        make_cmd(project, "clean")
        walls.append(make_cmd(project, "train-all"))
        store, sizes, seconds = store_sizes_apart(project.root)
        summed.append(seconds)
        stores.append(store)
    noop = [make_cmd(project, "train-all") for _ in range(3)]
    return {
        "wall_from_clean_s": summary(walls),
        "runs_summed_s": summary(summed),
        "runs_summed_over_wall": summary([s / w for s, w in zip(summed, walls, strict=True)]),
        "store_mib": summary(stores),
        "noop_rerun_s": summary(noop),
        "artifacts_mib_by_run": sizes,  # of the last repetition
    }


def data_prep(project: Project, repeats: int, count: int) -> dict:
    """Images/s and peak memory of `pipeline data` on a generated folder of `count` grey PNGs."""
    import yaml

    images = folders.folder(project.root / "data" / "raw", "grey", count)
    params = yaml.safe_load((project.root / "params.yaml").read_text())
    params["data"]["bench-images"] = {
        "source": "image-folder",
        "path": str(images.relative_to(project.root)),
        "image_size": [28, 28],
        "color_mode": "grayscale",
        "val_fraction": 0.15,
        "test_fraction": 0.2,
        "seed": 0,
    }
    (project.root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rates, peaks = [], []
    command = [sys.executable, "-m", "pipeline", "data", "bench-images", "--force"]
    for _ in range(repeats):
        measured = peak.run(command, cwd=project.root, stdout=subprocess.DEVNULL, env=project.env())
        if measured.returncode:
            raise RuntimeError("pipeline data failed during the benchmark")
        rates.append(count / measured.seconds)
        peaks.append(measured.peak_mib)
    return {"images": count, "images_per_s": summary(rates), "peak_memory_mib": summary(peaks)}


def inference(project: Project, repeats: int) -> dict:
    """`pipeline predict` on the registered model vs a bare model.predict on the same images (the
    data-prep section's folder)."""
    import mlflow

    from pipeline.tools import predict
    from pipeline.training import loading

    (folder,) = (project.root / "data" / "raw").glob("grey-*")
    version = max(
        int(v.version) for v in mlflow.MlflowClient().search_model_versions("name='digits-classifier'")
    )
    uri = f"models:/digits-classifier/{version}"
    model = loading.load(uri).keras()  # the registered (served) model's Keras model, in safe mode
    x = np.concatenate([chunk for _, chunk in predict.read_images(folder, tuple(model.input_shape[1:]))])
    bare, pipeline = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        model.predict(x, verbose=0, batch_size=256)
        bare.append(len(x) / (time.perf_counter() - started))
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            predict.main(uri, str(folder), str(folder.parent / "predictions.csv"))
        pipeline.append(len(x) / (time.perf_counter() - started))
    ratios = [p / b for p, b in zip(pipeline, bare, strict=True)]
    return {
        "images": len(x),
        "bare_images_per_s": summary(bare),
        "pipeline_images_per_s": summary(pipeline),
        "throughput_ratio": summary(ratios),
        "note": "pipeline = model loading + image decoding + prediction + CSV; "
        "bare = model.predict on the decoded arrays",
    }


def champion_records(count: int) -> tuple[str, list[dict]]:
    """The scratch store's digits-classifier champion (its latest version, trained now if there is
    none, when no version is) and `count` test digits as the records a client sends: base64 PNGs."""
    import base64

    import mlflow
    from PIL import Image

    from pipeline import data
    from pipeline.training import registry
    from pipeline.training.run import RunOptions
    from pipeline.workflows import train_and_gate

    client = mlflow.MlflowClient()
    if registry.champion("digits-classifier") is None:
        versions = [int(v.version) for v in client.search_model_versions("name='digits-classifier'")]
        if not versions:
            versions = [int(train_and_gate.train("cnn-same", None, RunOptions(verbose=0)).model_version)]
        client.set_registered_model_alias("digits-classifier", registry.CHAMPION, str(max(versions)))
    records = []
    for image in data.load("digits").examples("test")[0].read(slice(count)):
        buffer = io.BytesIO()
        Image.fromarray((image[..., 0] * 255).round().astype(np.uint8)).save(buffer, format="PNG")
        records.append({"image": base64.b64encode(buffer.getvalue()).decode()})
    return "digits-classifier", records


def latencies(call, count: int, clients: int = 1) -> tuple[float, list[float]]:
    """(calls per second, each call's seconds): `count` calls by each of `clients` threads at once."""
    import concurrent.futures

    def one_client(_):
        took = []
        for _ in range(count):
            started = time.perf_counter()
            call()
            took.append(time.perf_counter() - started)
        return took

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        took = [t for each in pool.map(one_client, range(clients)) for t in each]
    return len(took) / (time.perf_counter() - started), took


def percentile_ms(took: list[float], q: float) -> float:
    return float(np.percentile(took, q)) * 1000


@contextlib.contextmanager
def scoring_server(project: Project, name: str):
    """`python -m pipeline serve NAME` on a free port of the scratch project; yields its URL."""
    import signal
    import socket

    import requests

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = project.root
    with open(folder / "serve.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "serve", name, "--port", str(port)],
            cwd=folder,
            env=project.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while process.poll() is None and time.time() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/health", timeout=5).ok:
                    break
            time.sleep(0.5)
        else:
            raise RuntimeError(
                f"the scoring server did not start: {(folder / 'serve.log').read_text()[-2000:]}"
            )
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def serving(project: Project, repeats: int, requests_per_size: int = 100) -> dict:
    """The scoring server (a subprocess, `pipeline serve`) against in-process pyfunc.predict on the
    same records: requests/s and p50/p95 latency of 1-image and 64-image requests, one client (and
    four at once); the client runs on the same cores."""
    import requests

    from pipeline.training import loading

    name, records = champion_records(64)
    model = loading.load(loading.pinned(f"models:/{name}@champion")).pyfunc()
    figures: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        figures.setdefault(key, []).append(value)

    with scoring_server(project, name) as url, requests.Session() as session:
        for _ in range(repeats):
            for size in (1, 64):
                batch, body = records[:size], {"dataframe_records": records[:size]}
                count = requests_per_size if size == 1 else requests_per_size // 2

                def post(body=body):
                    answer = session.post(f"{url}/invocations", json=body, timeout=60)
                    answer.raise_for_status()

                for _ in range(5):  # warm: TensorFlow's tracing of this batch size, the connection
                    model.predict(batch)
                    post()
                rate, took = latencies(lambda batch=batch: model.predict(batch), count)
                add(f"pyfunc_{size}_calls_per_s", rate)
                add(f"pyfunc_{size}_p50_ms", percentile_ms(took, 50))
                add(f"pyfunc_{size}_p95_ms", percentile_ms(took, 95))
                served, took = latencies(post, count)
                add(f"server_{size}_requests_per_s", served)
                add(f"server_{size}_p50_ms", percentile_ms(took, 50))
                add(f"server_{size}_p95_ms", percentile_ms(took, 95))
                add(f"server_{size}_over_pyfunc", served / rate)
                busy, took = latencies(post, max(count // 4, 1), clients=4)
                add(f"server_{size}_4_clients_requests_per_s", busy)
                add(f"server_{size}_4_clients_p95_ms", percentile_ms(took, 95))
    return {
        **{key: summary(values) for key, values in figures.items()},
        "note": "server = HTTP (one keep-alive client, or four at once) to `pipeline serve` on this "
        "machine, drift statistics included; pyfunc = the same model's predict in process; "
        "server_N_over_pyfunc = requests/s over calls/s; N images per request (base64 PNGs)",
    }


def render(results: dict) -> str:
    lines = [
        f"# Benchmarks\n\nMeasured {results['measured']} on {results['machine']['cores']} cores "
        f"({results['machine']['cpu']}); TF {results['machine']['tensorflow']}, Keras "
        f"{results['machine']['keras']}, MLflow {results['machine']['mlflow']}.\n",
        "| figure | median | min | max | n |",
        "|---|---|---|---|---|",
    ]
    for section, figures in results.items():
        if not isinstance(figures, dict) or section == "machine":
            continue
        for name, value in figures.items():
            if isinstance(value, dict) and "median" in value:
                lines.append(
                    f"| {section}: {name} | {value['median']:.3f} | {value['min']:.3f} | "
                    f"{value['max']:.3f} | {value['n']} |"
                )
    sizes = results.get("train_all", {}).get("artifacts_mib_by_run") or {}
    if sizes:
        lines += ["", "| run (fresh `make train-all`) | artifacts MiB |", "|---|---|"]
        lines += [f"| {run} | {size:.2f} |" for run, size in sorted(sizes.items(), key=lambda kv: -kv[1])]
    if "scale" in results:
        from benchmarks import scale

        lines += scale.render(results["scale"])
    return "\n".join(lines) + "\n"


NOT_BY_DEFAULT = {"scale"}  # hours at its full sizes: `--only scale`


def scale_section(settings) -> dict:
    from benchmarks import scale

    return scale.measure(settings or scale.Settings())


def main(
    repeats: int = 3,
    epochs: int = 15,
    images: int = 5000,
    only: list[str] | None = None,
    train_all_repeats: int = 2,
    scale_settings=None,
) -> int:
    out = project_root() / "reports"
    results: dict = {"measured": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine()}
    if only and (out / "bench.json").exists():  # re-measure some sections, keep the others
        results = {**json.loads((out / "bench.json").read_text()), **results}
    with scratch.project(code=True) as project, project.active():
        # train_all first: its `make clean` replaces the store, which this process must not have
        # open yet
        steps = [
            ("train_all", lambda: train_all(project, train_all_repeats)),
            ("overhead", lambda: overhead(repeats, epochs)),
            ("data_prep", lambda: data_prep(project, repeats, images)),
            ("inference", lambda: inference(project, repeats)),
            ("serving", lambda: serving(project, repeats)),
            ("scale", lambda: scale_section(scale_settings)),
        ]
        for name, step in steps:
            if (only and name not in only) or (not only and name in NOT_BY_DEFAULT):
                continue
            print(f"bench: {name} ...", flush=True)
            results[name] = step()
    atomic.write_text(out / "bench.json", json.dumps(results, indent=2) + "\n")
    atomic.write_text(out / "bench.md", render(results))
    log(results, out)
    print(render(results))
    return 0


def log(results: dict, out: Path) -> None:
    import mlflow

    from pipeline.training import tracking

    tracking.configure()  # the user's store again
    with tracking.start_run("benchmarks", "bench", {"cores": results["machine"]["cores"]}):
        for key, value in medians(results):
            mlflow.log_metric("".join(c if c.isalnum() or c in "_-." else "_" for c in key), value)
        mlflow.log_artifact(str(out / "bench.json"))
        mlflow.log_artifact(str(out / "bench.md"))


def medians(figures: dict, prefix: str = ""):
    """(dotted key, median) of every summarised figure, nested sections (the scale section's
    folders) included; plain numbers of the scale section too."""
    for name, value in figures.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and "median" in value:
            yield key, value["median"]
        elif isinstance(value, dict) and name not in ("machine", "settings"):
            yield from medians(value, f"{key}.")
        elif key.startswith("scale.") and isinstance(value, int | float) and not isinstance(value, bool):
            yield key, float(value)
