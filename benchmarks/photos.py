"""`python -m benchmarks photos`: a user's own photos, trained with the cnn family's defaults and with
a backbone trained on another folder, against two bare keras-io scripts on the same splits (issue
33's measurements (a), (b) and (c)).

For each case (a generated folder of benchmarks/photo_folders.py at one image size, one seed), in
a scratch project under the data folder:

  default  an experiment naming only `family: cnn` (no model block)
  copied   cnn-same's model block as it stood at 068cd6e (batch norm, flatten head), copied
  backbone the transfer family's recipe (model.backbone mobilenet_v3_small, mode feature) with
           a weights file: the network trained first on an `other` folder, ten other photographs'
           crops (benchmarks/bare_backbone.py, once per image size, kept in the data folder)
  bare     benchmarks/bare_photos.py (no pipeline code), without batch norm
  bare-bn  the same with BatchNormalization

The pipeline prepares the folder (`python -m pipeline data`); the bare scripts read folders of
symlinks to the files the pipeline put in each split (the manifest's content digests), so every
config trains, stops early and is tested on the same images. Every config: at most --epochs
epochs, EarlyStopping(--patience, best weights restored), batch 32, Adam 0.001, the case's seed.
Writes reports/photos.json (after every training; runs of other cases measured earlier with the
same epochs and patience are kept, so a grid can be measured in parts; a run with --set overrides
is kept beside them, a row of its own) and reports/photos.md. A record holds the test accuracy,
the validation accuracy of the epoch early stopping kept, the resolved bn_momentum, the run's
quality warning, the seconds and the 1-minute load average at its start and end.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import statistics
import time
from pathlib import Path

import yaml

from benchmarks import photo_folders, scale
from benchmarks.scratch import Project

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path("/tmp/pipeline-photos")
REPORT_JSON, REPORT_MD = REPO / "reports" / "photos.json", REPO / "reports" / "photos.md"
CLASSES = 10
# cnn-same's block at 068cd6e, as users copied it into their own experiments
COPIED = {
    "filters": [32, 64], "kernel_size": 3, "strides": 1, "padding": "same", "activation": "relu",
    "batch_norm": True, "pooling": "max", "pool_size": 2, "pool_every": 2, "dropout": 0.3,
    "dense_units": 128,
}  # fmt: skip
PIPELINE_CONFIGS = {"default": None, "copied": COPIED}  # config → its model block (None: none)
# the transfer family's own-photos recipe (params.yaml's photos-mobilenet) with a weights file
BACKBONE = {"backbone": "mobilenet_v3_small", "mode": "feature", "head_dropout": 0.2}
TRANSFER_TRAIN = {"fine_tune_learning_rate": 0.0001, "fine_tune_epochs": 0}  # feature: no second phase
OTHER_IMAGES = 2000  # the `other` folder the backbone learns from first
BARE_CONFIGS = {"bare": False, "bare-bn": True}  # config → batch norm
CONFIGS = (*PIPELINE_CONFIGS, "backbone", *BARE_CONFIGS)


@dataclasses.dataclass(frozen=True)
class Case:
    kind: str  # photos | grey
    count: int
    side: int  # images are resized to side x side
    seed: int  # of the folder, its split and the training

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.count}-{self.side}px-s{self.seed}"

    @property
    def group(self) -> str:
        """Cases that differ only by seed: a row of the table."""
        return f"{self.kind} {self.count:,} at {self.side}²"

    @classmethod
    def parse(cls, name: str) -> Case:
        """`photos-1000-64px-s0` → that case (any kind, count, side and seed)."""
        found = re.fullmatch(r"(\w+)-(\d+)-(\d+)px-s(\d+)", name)
        if not found or found[1] not in ("photos", "grey") or min(map(int, found.groups()[1:3])) < 1:
            raise ValueError(f"'{name}' is not a case: photos|grey-<count>-<side>px-s<seed>")
        return cls(found[1], int(found[2]), int(found[3]), int(found[4]))


def grid(which: str) -> list[Case]:
    """pilot: 300 photos at 64², one seed; full: issue 33's grid."""
    if which == "pilot":
        return [Case("photos", 300, 64, 0)]
    return [
        *(Case("photos", 300, 64, s) for s in range(3)),
        *(Case("photos", 2000, 64, s) for s in range(3)),
        Case("photos", 20000, 64, 0),
        Case("photos", 2000, 224, 0),
        Case("grey", 2000, 64, 0),
    ]


@dataclasses.dataclass(frozen=True)
class Settings:
    cases: tuple[Case, ...]
    configs: tuple[str, ...] = CONFIGS
    epochs: int = 15
    patience: int = 5
    overrides: tuple[str, ...] = ()  # --set for default and copied (a row of their own)
    data_dir: Path = DATA_DIR


def params(settings: Settings) -> dict:
    """The scratch project's params.yaml: a dataset per case, the pipeline configs' experiments."""
    data, experiments = {}, {}
    for case in settings.cases:
        data[case.name] = {
            "source": "image-folder",
            "path": str(settings.data_dir / f"{case.kind}-{case.count}-seed{case.seed}"),
            "image_size": [case.side, case.side],
            "color_mode": "grayscale" if case.kind == "grey" else "rgb",
            "val_fraction": 0.15,
            "test_fraction": 0.2,
            "seed": case.seed,
        }
        train = {"epochs": settings.epochs, "patience": settings.patience, "seed": case.seed}
        for config, block in PIPELINE_CONFIGS.items():
            experiment = {"task": "photos", "family": "cnn", "dataset": case.name, "train": train}
            experiments[f"{config}--{case.name}"] = experiment | ({"model": block} if block else {})
        experiments[f"backbone--{case.name}"] = backbone_experiment(settings, case, train)
    defaults = {
        "batch_size": 32,
        "learning_rate": 0.001,
        "optimizer": "adam",
        "limit": None,
        "strategy": "default",
    }
    return {"data": data, "defaults": {"train": defaults}, "experiments": experiments}


def backbone_experiment(settings: Settings, case: Case, train: dict) -> dict:
    weights = str(weights_file(settings, case.side))
    return {
        "task": "photos", "family": "transfer", "dataset": case.name,
        "model": {**BACKBONE, "weights": weights, "image_size": [case.side, case.side]},
        "train": {**train, **TRANSFER_TRAIN},
        "objective": {"classes": list(range(CLASSES)), "labels_per_class": None},
    }  # fmt: skip


def weights_file(settings: Settings, side: int) -> Path:
    return settings.data_dir / f"backbone-{side}px.weights.h5"


def backbone_weights(project: Project, settings: Settings, side: int) -> Path:
    """The backbone config's weights for images of `side`: trained on the `other` folder once."""
    path = weights_file(settings, side)
    if not path.exists():
        other = photo_folders.folder(settings.data_dir, "other", OTHER_IMAGES, seed=0)
        args = [
            "-m", "benchmarks.bare_backbone", "--data", str(other), "--out", str(path),
            "--image-size", str(side), str(side),
        ]  # fmt: skip
        scale.command(project, args, "backbone.log")
    return path


def split_folders(project: Project, case: Case, folder: Path) -> Path:
    """<project>/bare/<case>/{train,val,test}/<class>/: symlinks to the files of each split."""
    from pipeline.data import split_files
    from pipeline.data.versions import processed_dir, read_manifest

    by_digest = {hashlib.sha256(p.read_bytes()).digest(): p for p in folder.rglob("*.jpg")}
    with project.active():
        manifest = read_manifest(case.name)
        digests = split_files.read_digests(processed_dir(case.name) / manifest.images_folder)
    target = project.root / "bare" / case.name
    shutil.rmtree(target, ignore_errors=True)
    for split in ("train", "val", "test"):
        for name in manifest.class_names:  # every class folder, empty or not
            (target / split / name).mkdir(parents=True)
        for digest in digests[f"x_{split}"]:
            source = by_digest[bytes(digest).ljust(32, b"\0")]  # numpy's S32 drops trailing zero bytes
            (target / split / source.parent.name / source.name).symlink_to(source)
    return target


def pipeline_config(project: Project, case: Case, config: str, settings: Settings) -> dict:
    name = f"{config}--{case.name}"
    overrides = settings.overrides if config in PIPELINE_CONFIGS else ()  # cnn's knobs
    sets = [arg for override in overrides for arg in ("--set", override)]
    scale.command(project, ["-m", "pipeline", "train", name, "--quiet", *sets], "train.log")
    return kept_epoch(project, name)


def kept_epoch(project: Project, name: str) -> dict:
    """The latest run's test accuracy, and the validation accuracy of the epoch early stopping kept."""
    import mlflow

    client = mlflow.MlflowClient(project.tracking_uri)
    (run,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        f"tags.mlflow.runName = '{name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    history = {
        key: [m.value for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]
        for key in ("val_loss", "val_accuracy")
    }
    metrics, losses = run.data.metrics, history["val_loss"]
    best = min(range(len(losses)), key=losses.__getitem__) if losses else None  # EarlyStopping's choice
    found = {"test_accuracy": metrics["test_accuracy"], "epochs_trained": metrics.get("epochs_trained")}
    found["best_epoch"] = None if best is None else best + 1
    found["val_accuracy"] = None if best is None else history["val_accuracy"][best]
    found["bn_momentum"] = run.data.params.get("model.bn_momentum")  # as resolved
    found["quality_warning"] = run.data.tags.get("quality_warning")
    return found


def bare_config(project: Project, case: Case, config: str, settings: Settings, splits: Path) -> dict:
    out = project.root / f"{config}.json"
    args = [
        "-m", "benchmarks.bare_photos", "--data", str(splits), "--out", str(out),
        "--image-size", str(case.side), str(case.side), "--epochs", str(settings.epochs),
        "--patience", str(settings.patience), "--seed", str(case.seed),
        "--color-mode", "grayscale" if case.kind == "grey" else "rgb",
        *(["--batch-norm"] if BARE_CONFIGS[config] else []),
    ]  # fmt: skip
    scale.command(project, args, "bare.log")
    return json.loads(out.read_text())


def measure(settings: Settings) -> dict:
    """Train every config on every case; reports/photos.json is rewritten after each training."""
    project = Project(settings.data_dir / "project")  # kept: prepared folders are reused
    (project.root / "mlruns").mkdir(parents=True, exist_ok=True)
    (project.root / "params.yaml").write_text(yaml.safe_dump(params(settings), sort_keys=False))
    results = {"settings": settings_record(settings), "runs": earlier(settings)}
    for case in settings.cases:
        folder = photo_folders.folder(settings.data_dir, case.kind, case.count, case.seed)
        scale.command(project, ["-m", "pipeline", "data", case.name], "data.log")
        splits = split_folders(project, case, folder)
        for config in settings.configs:
            print(f"bench photos: {case.name} {config} ...", flush=True)
            if config == "backbone":
                backbone_weights(project, settings, case.side)  # once per size, before the clock starts
            started, load = time.perf_counter(), os.getloadavg()[0]
            if config in (*PIPELINE_CONFIGS, "backbone"):
                found = pipeline_config(project, case, config, settings)
            else:
                found = bare_config(project, case, config, settings, splits)
            record = {"case": case.name, "group": case.group, "config": config, **found}
            record["seconds"] = round(time.perf_counter() - started, 1)
            record["date"] = time.strftime("%Y-%m-%d")
            record["load"] = [round(load, 1), round(os.getloadavg()[0], 1)]  # 1-minute average, start and end
            if settings.overrides and config in PIPELINE_CONFIGS:
                record["overrides"] = list(settings.overrides)
            results["runs"] = [r for r in results["runs"] if key(r) != key(record)]
            results["runs"].append(record)
            print(
                f"bench photos: {case.name} {config}: test accuracy {found['test_accuracy']:.3f}", flush=True
            )
            REPORT_JSON.parent.mkdir(exist_ok=True)
            REPORT_JSON.write_text(json.dumps(results, indent=1) + "\n")
    return results


def key(run: dict) -> tuple:
    return run["case"], run["config"], tuple(run.get("overrides", ()))


def earlier(settings: Settings) -> list[dict]:
    """The runs reports/photos.json holds from earlier invocations with the same epochs and patience
    (a grid measured in parts); a case and config measured again replaces its record."""
    try:
        previous = json.loads(REPORT_JSON.read_text())
    except (FileNotFoundError, ValueError):
        return []
    same = all(previous["settings"].get(k) == getattr(settings, k) for k in ("epochs", "patience"))
    return previous["runs"] if same else []


def settings_record(settings: Settings) -> dict:
    record = dataclasses.asdict(settings)
    record["cases"] = [c.name for c in settings.cases]
    record["data_dir"] = str(settings.data_dir)
    return record


def cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f} (n={len(values)})"


def row(run: dict) -> str:
    """The table row of a run: its group, and the overrides it ran with."""
    sets = " ".join(f"--set {o}" for o in run.get("overrides", ()))
    return f"{run['group']} ({sets})" if sets else run["group"]


def render(results: dict) -> str:
    """The markdown table: test accuracy per case and config (mean ± standard deviation over seeds),
    and whether default and copied reach the better bare script's mean minus 0.03 and beat 1.5x chance."""
    groups: dict[str, dict[str, list[float]]] = {}
    for run in results["runs"]:
        groups.setdefault(row(run), {}).setdefault(run["config"], []).append(run["test_accuracy"])
    configs = [c for c in CONFIGS if any(c in g for g in groups.values())]
    lines = [
        f"| images | {' | '.join(configs)} | target: ≥ best bare − 0.03, > {1.5 / CLASSES:.2f} |",
        "|---|" + "---|" * (len(configs) + 1),
    ]
    for group, found in groups.items():
        bare = [statistics.mean(found[c]) for c in BARE_CONFIGS if c in found]
        ours = [statistics.mean(found[c]) for c in PIPELINE_CONFIGS if c in found]
        met = "—"
        if bare and ours:
            floor = max(bare) - 0.03
            met = (
                "met"
                if min(ours) >= floor
                and min(min(found[c]) for c in PIPELINE_CONFIGS if c in found) > 1.5 / CLASSES
                else "not met"
            )
            met += f" (floor {floor:.3f})"
        lines.append(
            f"| {group} | "
            + " | ".join(cell(found.get(c, [])) if c in found else "" for c in configs)
            + f" | {met} |"
        )
    return "\n".join([*lines, "", f"Chance: {1 / CLASSES:.2f}."]) + "\n"


def main(settings: Settings) -> int:
    results = measure(settings)
    REPORT_MD.write_text(render(results))
    print(REPORT_MD.read_text(), end="")
    return 0
