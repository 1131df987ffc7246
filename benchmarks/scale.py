"""`make bench`'s scale section: data prep and training on generated folders of real size.

For each generated folder (benchmarks/folders.py: photos at 224x224 of 1,000 to 20,000 JPEGs, and
70,000 28x28 grey PNGs), in a throw-away project with its own params.yaml and store:

- data prep: `python -m pipeline data <name>` from nothing as a subprocess, its images/s and peak
  memory (benchmarks/peak.py: anonymous memory summed over the process tree); before it the raw
  rate at which a process pool of Pillow decodes on every core reads, hashes and decodes the same
  files; `repeats` times, medians;
- training: `python -m pipeline train` of a small cnn against a bare Keras script
  (benchmarks/bare_keras.py: `image_dataset_from_directory`, `.cache()` where its float32 copy fits
  in CACHE_BYTES) on the same training and validation files, alternated `repeats` times, each a
  subprocess: the images/s of every epoch but the first, and each side's peak memory;
- frozen hub features: a 224x224 hub module published by `pretrain` on digits 0-4, then the
  transfer family on 5-9 for 20 epochs with `mode: feature` against the same module in the loop.

The issue's targets are shown beside the measurements (met or not), never asserted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import folders, peak, scratch, summary
from benchmarks.scratch import Project

SIZES = (1000, 2000, 10000, 20000)  # photos at 224x224
GREY = 70000  # 28x28 grey digits
PHOTO_SIZE = (224, 224)
SEED = 42  # the datasets' split seed and the training seed
CACHE_BYTES = 4 * 2**30  # the bare side caches when its float32 train + val copy fits in this
GB = 10**9
# a cheap network at 224x224 (strided convolutions): epochs measure the input pipeline, mostly
PHOTO_MODEL = {
    "filters": [16, 32, 64],
    "kernel_size": 3,
    "strides": 2,
    "padding": "same",
    "activation": "relu",
    "batch_norm": True,
    "pooling": "max",
    "pool_size": 2,
    "pool_every": 1,
    "dropout": 0.3,
    "dense_units": 64,
}
# cnn-same's network (params.yaml), for the 70,000 grey digits
GREY_MODEL = {**PHOTO_MODEL, "filters": [32, 64], "strides": 1, "pool_every": 2, "dense_units": 128}
# the module in the loop: the transfer family's finetune mode without its second phase is
# feature mode with the frozen module called on every batch of every epoch
IN_THE_LOOP = {"mode": "finetune"}
HUB_TRAIN = {"learning_rate": 0.01, "fine_tune_learning_rate": 0.0001, "fine_tune_epochs": 0}


@dataclasses.dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...] = SIZES  # photo folders
    grey: int = GREY  # images of the grey folder (0: none)
    repeats: int = 3  # prep (after its raw rate) and alternated pipeline/bare runs, on each folder
    epochs: int = 3  # of each training run (the first is not timed)
    hub_images: int = 2000  # photos of the frozen-hub comparison (0: none)
    hub_epochs: int = 20
    pretrain_epochs: int = 3
    data_dir: Path = Path("/tmp/pipeline-bench-scale")  # generated folders, reused across runs
    seed: int = 0  # of the generated images


@dataclasses.dataclass(frozen=True)
class Folder:
    name: str  # the dataset's name in the scratch params.yaml
    kind: str  # photos | grey
    count: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return (*PHOTO_SIZE, 3) if self.kind == "photos" else (28, 28, 1)

    @property
    def model(self) -> dict:
        return PHOTO_MODEL if self.kind == "photos" else GREY_MODEL


def folders_of(settings: Settings) -> list[Folder]:
    found = [Folder(f"photos-{n}", "photos", n) for n in settings.sizes]
    if settings.grey:
        found.append(Folder(f"grey-{settings.grey}", "grey", settings.grey))
    return found


def hub_folder(settings: Settings) -> Folder | None:
    return (
        Folder(f"photos-{settings.hub_images}", "photos", settings.hub_images)
        if settings.hub_images
        else None
    )


# ---------------------------------------------------------------------------- the scratch project


def params(settings: Settings) -> dict:
    """The scratch project's params.yaml: a dataset and a cnn experiment per folder, and the hub pair."""
    wanted = {f.name: f for f in [*folders_of(settings), *filter(None, [hub_folder(settings)])]}
    data = {
        f.name: {
            "source": "image-folder",
            "path": str(settings.data_dir / f"{f.kind}-{f.count}-seed{settings.seed}"),
            "image_size": list(f.shape[:2]),
            "color_mode": "rgb" if f.kind == "photos" else "grayscale",
            "val_fraction": 0.15,
            "test_fraction": 0.2,
            "seed": SEED,
        }
        for f in wanted.values()
    }
    epochs = {"epochs": settings.epochs, "patience": settings.epochs + 1}  # no early stop: same work
    experiments = {
        f"cnn-{f.name}": {
            "task": "scale",
            "family": "cnn",
            "dataset": f.name,
            "model": f.model,
            "train": epochs,
        }
        for f in folders_of(settings)
    }
    hub = hub_folder(settings)
    if hub:
        experiments.update(hub_experiments(settings, hub))
    defaults = {"batch_size": 32, "learning_rate": 0.001, "optimizer": "adam", "seed": SEED, "limit": None}
    return {
        "data": data,
        "defaults": {"train": {**defaults, "strategy": "default", "epochs": 3, "patience": 4}},
        "experiments": experiments,
    }


def hub_experiments(settings: Settings, hub: Folder) -> dict:
    module = f"models/hub/{hub.name}"
    epochs = settings.hub_epochs
    transfer = {
        "task": "scale-hub",
        "family": "transfer",
        "dataset": hub.name,
        "needs": ["pretrain"],
        "model": {"hub_handle": module, "mode": "feature", "image_size": list(PHOTO_SIZE), "channels": 3,
                  "head_dropout": 0.2},
        "train": {**HUB_TRAIN, "epochs": epochs, "patience": epochs + 1},
        "objective": {"classes": [5, 6, 7, 8, 9], "labels_per_class": None},
    }  # fmt: skip
    pretrain_epochs = {"epochs": settings.pretrain_epochs, "patience": settings.pretrain_epochs + 1}
    return {
        "pretrain": {
            "task": "scale-hub-source",
            "family": "pretrain",
            "dataset": hub.name,
            "model": {**PHOTO_MODEL, "publish_dir": module},
            "train": pretrain_epochs,
            "objective": {"classes": [0, 1, 2, 3, 4], "labels_per_class": None},
        },
        "transfer-feature": transfer,
        "transfer-in-the-loop": {**transfer, "model": {**transfer["model"], **IN_THE_LOOP}},
    }


def command(project: Project, args: list[str], log: str) -> peak.Measured:
    """`python <args>` in the scratch project, its output appended to `log`; a failure raises."""
    env = project.env(TF_CPP_MIN_LOG_LEVEL="3")  # the bare script's TensorFlow too
    with open(project.root / log, "ab") as out:
        measured = peak.run(
            [sys.executable, *args], cwd=project.root, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    if measured.returncode:
        tail = (project.root / log).read_text(errors="replace")[-3000:]
        raise RuntimeError(f"`python {' '.join(args)}` exited {measured.returncode}:\n{tail}")
    return measured


# ---------------------------------------------------------------------------- data prep


def read_hash_decode(task: tuple[str, tuple[int, int, int]]) -> bytes:
    """One file read, hashed (sha256) and decoded to `shape` by Pillow (JPEG `draft` first)."""
    from PIL import Image

    path, (height, width, channels) = task
    raw = Path(path).read_bytes()
    digest = hashlib.sha256(raw).digest()
    with Image.open(io.BytesIO(raw)) as image:
        mode = "RGB" if channels == 3 else "L"
        image.draft(mode, (width, height))
        image.convert(mode).resize((width, height), Image.BILINEAR).tobytes()
    return digest


def raw_rate(files: list[Path], shape) -> tuple[float, dict[bytes, Path]]:
    """(images/s of read + sha256 + decode in a pool of a process per core, {content sha256: file})."""
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        digests = pool.map(read_hash_decode, [(str(f), shape) for f in files], chunksize=16)
    return len(files) / (time.perf_counter() - started), dict(zip(digests, files, strict=True))


def prep(project: Project, data: Folder, files: list[Path]) -> tuple[dict, dict[bytes, Path]]:
    """Raw rate, then `pipeline data` from nothing and again when up to date (its start-up cost)."""
    raw, by_digest = raw_rate(files, data.shape)
    first = command(project, ["-m", "pipeline", "data", data.name], "data.log")
    again = command(project, ["-m", "pipeline", "data", data.name], "data.log")
    net = max(first.seconds - again.seconds, 1e-9)
    return {
        "images": len(files),
        "prep_seconds": first.seconds,
        "prep_up_to_date_seconds": again.seconds,
        "prep_images_per_s": len(files) / net,
        "prep_peak_mib": first.peak_mib,
        "raw_images_per_s": raw,
        "prep_over_raw": len(files) / net / raw,
    }, by_digest


def repeated_prep(project: Project, data: Folder, files: list[Path], repeats: int) -> tuple[dict, dict]:
    """`prep` from nothing `repeats` times (each after its own raw rate): every figure summarised,
    the ratio as the median of the paired ratios."""
    runs = []
    for _ in range(repeats):
        shutil.rmtree(project.root / "data" / "processed" / data.name, ignore_errors=True)
        figures, by_digest = prep(project, data, files)
        runs.append(figures)
    figures = {key: summary([run[key] for run in runs]) for key in runs[0] if key != "images"}
    return {"images": len(files), **figures}, by_digest


def split_folders(project: Project, data: Folder, by_digest: dict[bytes, Path]) -> tuple[Path, Path, int]:
    """(train, val) folders of symlinks to the files the pipeline put in each split, as its stored
    content digests say, and the number of training images."""
    from pipeline.data import split_files
    from pipeline.data.versions import processed_dir, read_manifest

    with project.active():
        manifest = read_manifest(data.name)
        digests = split_files.read_digests(processed_dir(data.name) / manifest.images_folder)
    out = {}
    for split in ("train", "val"):
        target = project.root / "bare" / data.name / split
        for name in manifest.class_names:  # each split holds every class folder, empty or not
            (target / name).mkdir(parents=True)
        for digest in digests[f"x_{split}"]:
            source = by_digest[bytes(digest).ljust(32, b"\0")]  # numpy's S32 drops trailing zero bytes
            (target / source.parent.name / source.name).symlink_to(source)
        out[split] = target
    return out["train"], out["val"], len(digests["x_train"])


# ---------------------------------------------------------------------------- training


def run_record(project: Project, run_name: str) -> tuple[list[float], float, dict[str, float]]:
    """The latest run of that name in the scratch store: (each epoch's end, from its `loss` metric's
    timestamps, in seconds; the run's start; its metrics)."""
    import mlflow

    client = mlflow.MlflowClient(project.tracking_uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(
        ids, f"tags.mlflow.runName = '{run_name}'", order_by=["attributes.start_time DESC"], max_results=1
    )
    history = sorted(client.get_metric_history(run.info.run_id, "loss"), key=lambda m: m.step)
    return [m.timestamp / 1000 for m in history], run.info.start_time / 1000, run.data.metrics


def later_epochs(ends: list[float]) -> list[float]:
    """Seconds of every epoch but the first (from one epoch's end to the next)."""
    return [b - a for a, b in zip(ends, ends[1:], strict=False)]


def side(measured: peak.Measured, epochs: list[float], examples: int) -> dict[str, float]:
    """One side's run: images/s of its median timed epoch, its peak memory and wall time."""
    return {
        "images_per_s": examples / statistics.median(epochs) if epochs else float("nan"),
        "peak_mib": measured.peak_mib,
        "wall_s": measured.seconds,
    }


def pipeline_side(project: Project, experiment: str, examples: int) -> dict[str, float]:
    measured = command(project, ["-m", "pipeline", "train", experiment, "--quiet"], "train.log")
    ends, _, _ = run_record(project, experiment)
    return side(measured, later_epochs(ends), examples)


def bare_side(
    project: Project, data: Folder, train: Path, val: Path, epochs: int, cache: bool, examples: int
):
    out = project.root / "bare.json"
    mode = "rgb" if data.shape[2] == 3 else "grayscale"
    args = [
        "-m", "benchmarks.bare_keras", "--train", str(train), "--val", str(val), "--out", str(out),
        "--image-size", *map(str, data.shape[:2]), "--color-mode", mode, "--model", json.dumps(data.model),
        "--epochs", str(epochs), "--seed", str(SEED), *(["--cache"] if cache else []),
    ]  # fmt: skip
    measured = command(project, args, "bare.log")
    return side(measured, json.loads(out.read_text())["epoch_seconds"][1:], examples)


def compare(project: Project, data: Folder, settings: Settings, repeats: int, by_digest) -> dict:
    """The pipeline's training run and the bare Keras script on the same files, alternated."""
    train, val, examples = split_folders(project, data, by_digest)
    val_count = sum(1 for p in val.rglob("*") if p.is_symlink())
    cache = (examples + val_count) * 4 * int(np.prod(data.shape)) <= CACHE_BYTES
    sides: dict[str, list[dict]] = {"pipeline": [], "bare": []}
    for _ in range(repeats):
        sides["pipeline"].append(pipeline_side(project, f"cnn-{data.name}", examples))
        sides["bare"].append(bare_side(project, data, train, val, settings.epochs, cache, examples))
    ratios = [
        p["images_per_s"] / b["images_per_s"] for p, b in zip(sides["pipeline"], sides["bare"], strict=True)
    ]
    return {
        "train_examples": examples,
        "epochs": settings.epochs,
        "bare_cache": cache,
        **{
            f"{side}_{key}": summary([run[key] for run in runs])
            for side, runs in sides.items()
            for key in ("images_per_s", "peak_mib", "wall_s")
        },
        "throughput_ratio": summary(ratios),
    }


# ---------------------------------------------------------------------------- frozen hub features


def hub_speedup(project: Project, settings: Settings) -> dict:
    """pretrain publishes the module; then transfer on it, frozen features vs the module in the loop."""
    data = hub_folder(settings)
    if data.count not in settings.sizes:  # else prepared already
        command(project, ["-m", "pipeline", "data", data.name], "data.log")
    command(project, ["-m", "pipeline", "train", "pretrain", "--quiet"], "train.log")
    sides = {}
    for name in ("transfer-feature", "transfer-in-the-loop"):
        measured = command(project, ["-m", "pipeline", "train", name, "--quiet"], "train.log")
        ends, start, metrics = run_record(project, name)
        sides[name] = {
            "wall_s": measured.seconds,
            "fit_s": ends[-1] - start,  # from the run's start to its last epoch's end
            "train_seconds": metrics["train_seconds"],
            "peak_mib": measured.peak_mib,
            "test_accuracy": metrics["test_accuracy"],
            "test_loss": metrics["test_loss"],
        }
    feature, loop = sides["transfer-feature"], sides["transfer-in-the-loop"]
    return {
        "images": data.count,
        "epochs": settings.hub_epochs,
        "feature": feature,
        "in_the_loop": loop,
        "fit_speedup": loop["fit_s"] / feature["fit_s"],
        "wall_speedup": loop["wall_s"] / feature["wall_s"],
        "test_accuracy_difference": abs(feature["test_accuracy"] - loop["test_accuracy"]),
        "test_loss_difference": abs(feature["test_loss"] - loop["test_loss"]),
    }


# ---------------------------------------------------------------------------- the section


def measure(settings: Settings) -> dict:
    """Every figure of the scale section (folders generated first where not there yet)."""
    results: dict = {"settings": {k: str(v) if isinstance(v, Path) else v
                                  for k, v in dataclasses.asdict(settings).items()}}  # fmt: skip
    with scratch.project(params(settings)) as project:
        for data in folders_of(settings):
            print(f"bench: scale {data.name} ...", flush=True)
            started = time.perf_counter()
            files = folders.files(folders.folder(settings.data_dir, data.kind, data.count, settings.seed))
            figures, by_digest = repeated_prep(project, data, files, settings.repeats)
            figures.update(compare(project, data, settings, settings.repeats, by_digest))
            figures["section_seconds"] = time.perf_counter() - started
            results[data.name] = figures
        if settings.hub_images:
            print("bench: scale frozen hub features ...", flush=True)
            folders.folder(settings.data_dir, "photos", settings.hub_images, settings.seed)
            results["hub"] = hub_speedup(project, settings)
    results["targets"] = targets(results)
    return results


# ---------------------------------------------------------------------------- targets and table


def median(figure) -> float:
    return figure["median"] if isinstance(figure, dict) else figure


def target(what: str, measured: float, met: bool) -> dict:
    return {"target": what, "measured": round(float(measured), 3), "met": bool(met)}


def folder_targets(name: str, figures: dict) -> list[dict]:
    """Issue 27's targets for one photo folder: memory caps, prep near the raw rate, epochs vs bare."""
    count = figures["images"]
    ratio = median(figures["throughput_ratio"])
    prep, train = median(figures["prep_peak_mib"]), median(figures["pipeline_peak_mib"])
    over_raw = median(figures["prep_over_raw"])
    found = [
        target(f"{name}: prep peak ≤ 1.5 GB (MiB)", prep, prep * 2**20 <= 1.5 * GB),
        target(f"{name}: training peak ≤ 3 GB (MiB)", train, train * 2**20 <= 3 * GB),
        target(f"{name}: prep ÷ raw ≥ 0.7", over_raw, over_raw >= 0.7),
        target(f"{name}: epoch images/s pipeline ÷ bare ≥ 0.97", ratio, ratio >= 0.97),
    ]
    if count >= 20000:
        found.append(target(f"{name}: epoch images/s pipeline ÷ bare > 1", ratio, ratio > 1))
    return found


def scaling_targets(photos: dict[int, dict]) -> list[dict]:
    """Doubling N raises neither peak by more than 15 %; 20,000 costs at most 11x 2,000."""
    found = []
    for n in sorted(photos):
        if 2 * n not in photos:
            continue
        for key, what in (("prep_peak_mib", "prep"), ("pipeline_peak_mib", "training")):
            growth = median(photos[2 * n][key]) / median(photos[n][key])
            found.append(target(f"{what} peak {2 * n} ÷ {n} ≤ 1.15", growth, growth <= 1.15))
    if 2000 in photos and 20000 in photos:
        small, large = photos[2000], photos[20000]
        prep = (large["images"] / median(large["prep_images_per_s"])) / (
            small["images"] / median(small["prep_images_per_s"])
        )
        epoch = (large["train_examples"] / median(large["pipeline_images_per_s"])) / (
            small["train_examples"] / median(small["pipeline_images_per_s"])
        )
        found += [
            target("prep time 20000 ÷ 2000 ≤ 11", prep, prep <= 11),
            target("epoch time 20000 ÷ 2000 ≤ 11", epoch, epoch <= 11),
        ]
    return found


def targets(results: dict) -> list[dict]:
    photos = {v["images"]: v for k, v in results.items() if k.startswith("photos-")}
    found = [t for n in sorted(photos) for t in folder_targets(f"photos-{n}", photos[n])]
    found += scaling_targets(photos)
    for name, figures in results.items():
        if name.startswith("grey-"):
            ratio = median(figures["throughput_ratio"])
            found.append(
                target(f"{name}: epoch images/s pipeline ÷ bare ≥ 0.97 (median)", ratio, ratio >= 0.97)
            )
    if "hub" in results:
        speedup = results["hub"]["fit_speedup"]
        found.append(target("frozen hub: fit time in the loop ÷ feature ≥ 5", speedup, speedup >= 5))
    return found


def render(scale: dict) -> list[str]:
    """The section's tables for bench.md: every folder, the hub comparison, the targets."""
    lines = [
        "",
        "## scale",
        "",
        "Peak = anonymous memory (RssAnon + RssShmem) summed over the process tree, MiB; images/s of "
        "an epoch: every epoch but the first, median.",
        "",
        "| folder | images | prep img/s | raw img/s | prep ÷ raw | prep peak | train images "
        "| pipeline img/s | bare img/s | pipeline ÷ bare | pipeline peak | bare peak | bare cache |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in scale.items():
        if name.startswith(("photos-", "grey-")):
            lines.append(
                f"| {name} | {f['images']} | {median(f['prep_images_per_s']):.0f} "
                f"| {median(f['raw_images_per_s']):.0f} | {median(f['prep_over_raw']):.2f} "
                f"| {median(f['prep_peak_mib']):.0f} | {f['train_examples']} "
                f"| {median(f['pipeline_images_per_s']):.0f} | {median(f['bare_images_per_s']):.0f} "
                f"| {median(f['throughput_ratio']):.3f} (n={f['throughput_ratio']['n']}) "
                f"| {median(f['pipeline_peak_mib']):.0f} | {median(f['bare_peak_mib']):.0f} "
                f"| {f['bare_cache']} |"
            )
    if "hub" in scale:
        hub = scale["hub"]
        lines += [
            "",
            f"Frozen hub features, {hub['images']} photos at 224², {hub['epochs']} epochs: fit speed-up "
            f"{hub['fit_speedup']:.2f}x, wall {hub['wall_speedup']:.2f}x; test accuracy differs by "
            f"{hub['test_accuracy_difference']:.2g}, test loss by {hub['test_loss_difference']:.2g}.",
            "",
            "| transfer | fit s | wall s | train_seconds | peak MiB | test accuracy | test loss |",
            "|---|---|---|---|---|---|---|",
        ]
        for side in ("feature", "in_the_loop"):
            s = hub[side]
            lines.append(
                f"| {side} | {s['fit_s']:.1f} | {s['wall_s']:.1f} | {s['train_seconds']:.1f} "
                f"| {s['peak_mib']:.0f} | {s['test_accuracy']:.4f} | {s['test_loss']:.4f} |"
            )
    lines += ["", "| target (issue 27) | measured | met |", "|---|---|---|"]
    lines += [
        f"| {t['target']} | {t['measured']} | {'met' if t['met'] else 'not met'} |" for t in scale["targets"]
    ]
    return lines
