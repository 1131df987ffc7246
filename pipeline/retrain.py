"""Scheduled batch retraining: new-data batches → challenger → gate → champion (`make retrain`).

One cycle, per registered model (experiments with `register_as`):
  1. find new batches in <incoming>/<dataset>/<batch-id>/ (not yet in the dataset's manifest):
     class folders of images for an image dataset, CSV files of date,value rows for a series;
  2. validate each; a bad one moves to <quarantine>/<dataset>/<batch-id>/ with REASON.txt;
  3. train a challenger on the dataset with the good batches merged into its training data
     (images: the training split; a series: a `recent` segment after the test period; nothing
     written yet) and register it with alias `challenger`;
  4. commit the new data version (the manifest's atomic replace is the commit point) and move
     the batches to <consumed>/;
  5. re-evaluate the champion on the same holdout, promote the challenger if it passes the gate,
     record the decision on the run and the model version, print one summary line.
A failure or kill before step 4 leaves the champion, the processed data and the incoming batches
as they were. A lock file keeps two cycles from overlapping. No new data: a no-op that imports
neither TensorFlow nor MLflow.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
from pathlib import Path

import numpy as np

from pipeline import data
from pipeline.config import PARAMS_FILE, load_params, project_root, resolve_experiment, suggest
from pipeline.errors import PipelineError, UserError

LOCK_FILE = ".build/retrain.lock"


def settings(params) -> dict[str, Path]:
    section = params.get("retrain") or {}
    root = project_root()
    folders = {"incoming": "data/incoming", "quarantine": "data/quarantine", "consumed": "data/consumed"}
    return {key: root / str(section.get(key, default)) for key, default in folders.items()}


def registered(params) -> dict[str, str]:
    """{registered model name: experiment name} for every experiment with register_as."""
    found = {}
    for name, entry in params["experiments"].items():
        if isinstance(entry, dict) and entry.get("register_as"):
            found[entry["register_as"]] = name
    return found


@contextlib.contextmanager
def lock(path: Path):
    """An exclusive, non-blocking lock: a second cycle exits at once instead of waiting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole cycle
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise PipelineError(
                f"another retrain is running ({holder}; lock {path}); not starting a second one"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock, also when the process is killed


def new_batches(incoming: Path, manifest: dict | None) -> list[Path]:
    if not incoming.is_dir():
        return []
    consumed = {b["id"] for b in (manifest or {}).get("batches", [])}
    return [
        d
        for d in sorted(incoming.iterdir())
        if d.is_dir() and not d.name.startswith(".") and d.name not in consumed
    ]


def read_image_batch(folder: Path, dataset: data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """One sub-folder per class (names as in the dataset), images in any format Pillow reads."""
    x_train = dataset.arrays["x_train"]
    shape = x_train.shape[1:]  # batches are read exactly like the dataset they join
    classes = {name: i for i, name in enumerate(dataset.class_names)}
    xs, ys = [], []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            raise UserError(f"{entry}: stray file; a batch holds one sub-folder per class")
        if entry.name not in classes:
            known = ", ".join(classes)
            raise UserError(
                f"{entry}: unknown class '{entry.name}'{suggest(entry.name, classes)} (known: {known})"
            )
        files = sorted(f for f in entry.iterdir() if not f.name.startswith("."))
        if not files:
            raise UserError(f"{entry}: class folder '{entry.name}' has no images")
        for f in files:
            xs.append(data.read_image(f, shape))
            ys.append(classes[entry.name])
    if not xs:
        raise UserError(f"{folder}: empty batch")
    return np.stack(xs).astype(x_train.dtype), np.asarray(ys, dtype=dataset.arrays["y_train"].dtype)


def series_frequency(known: np.ndarray, name: str) -> str:
    """The series' step as a pandas frequency, inferred from its newest dates (CO2: 'W-SAT')."""
    import pandas as pd

    freq = pd.infer_freq(pd.DatetimeIndex(known[-60:])) if len(known) >= 3 else None
    if freq is None:
        raise UserError(f"dataset '{name}': its dates have no regular step, so no batch can continue it")
    return freq


def read_series_csv(path: Path):
    """One batch file: a pandas Series of its values on their (time-zone-free) dates, in file order."""
    import pandas as pd

    if not path.is_file() or path.suffix.lower() != ".csv":
        raise UserError(f"{path}: stray entry; a series batch holds CSV files of date,value rows")
    frame = data._read_csv(path)
    for column in ("date", "value"):
        if column not in frame.columns:
            columns = ", ".join(map(str, frame.columns))
            raise UserError(f"{path}: column '{column}' not found (columns: {columns}; want date,value)")
    if frame.empty:
        raise UserError(f"{path}: no rows")
    try:  # as text: a number such as 20020105 is a date, not nanoseconds since 1970
        dates = pd.to_datetime(frame["date"].astype(str), errors="coerce")
    except (ValueError, TypeError) as exc:  # e.g. several time zones in one column
        raise UserError(f"{path}: column 'date' cannot be read as dates ({exc})") from None
    if dates.isna().any():
        line = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise UserError(f"{path}: column 'date' line {line + 2} is not a date: {frame['date'].iloc[line]!r}")
    if dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)  # the local calendar date is the one that counts
    values = data._numeric_column(frame, "value", path, allow_missing=False)
    if not np.isfinite(values).all():
        line = int(np.flatnonzero(~np.isfinite(values))[0]) + 2
        raise UserError(f"{path}: column 'value' line {line} is not a finite number")
    return pd.Series(values, index=pd.DatetimeIndex(dates.dt.normalize()), name=path.name)


def read_series_batch(folder: Path, dataset: data.Dataset, accepted) -> tuple[np.ndarray, np.ndarray]:
    """CSV files of date,value rows that continue the series after its last date (and after the
    batches `accepted` earlier in this cycle), on the series' step; gaps filled as in data prep."""
    import pandas as pd

    arrays = data.merge_batches(dataset.arrays, accepted)
    segments = data.series_segments(arrays)
    known = np.concatenate([arrays[f"dates_{s}"] for s in segments])
    last, last_value = pd.Timestamp(known[-1]), float(arrays[f"values_{segments[-1]}"][-1])
    freq = series_frequency(known, dataset.name)
    files = sorted(f for f in folder.iterdir() if not f.name.startswith("."))
    if not files:
        raise UserError(f"{folder}: empty batch (no CSV file of date,value rows)")
    parts = []
    for path in files:
        part = read_series_csv(path)
        on_step = set(pd.date_range(last, part.index.max(), freq=freq))
        for line, day in enumerate(part.index, start=2):
            if day <= last:
                raise UserError(
                    f"{path}: line {line}: date {day.date()} is already covered by dataset '{dataset.name}' "
                    f"(it ends {last.date()}{' with the batches before this one' if accepted else ''}); "
                    "a batch adds only later dates"
                )
            if day not in on_step:
                raise UserError(
                    f"{path}: line {line}: date {day.date()} is off the series' step "
                    f"({freq}, last date {last.date()})"
                )
        parts.append(part)
    new = pd.concat(parts).sort_index()
    if new.index.has_duplicates:
        raise UserError(f"{folder}: duplicate date {new.index[new.index.duplicated()][0].date()}")
    # the batch's steps plus any skipped ones, anchored on the series' last value for interpolation
    grid = pd.date_range(last, new.index.max(), freq=freq)
    if len(grid) - 1 > 2 * len(new):
        raise UserError(
            f"{folder}: {len(new)} row(s) would span {len(grid) - 1} steps after {last.date()}; "
            "filling more than half of them would make data up (a mistyped date?)"
        )
    filled = pd.concat([pd.Series([last_value], index=grid[:1]), new]).reindex(grid)
    fill = dataset.manifest["params"].get("fill", "time")
    filled = filled.ffill() if fill == "ffill" else filled.interpolate(method=fill)
    return filled.index[1:].to_numpy().astype("datetime64[D]"), filled.to_numpy(np.float64)[1:]


BATCH_READERS = {
    "images": lambda batch, dataset, accepted: read_image_batch(batch, dataset),
    "series": read_series_batch,
}


def quarantine(batch: Path, target_root: Path, reason: str) -> Path:
    target = target_root / batch.name
    if target.exists():
        target = target_root / f"{batch.name}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}"
    target_root.mkdir(parents=True, exist_ok=True)
    shutil.move(str(batch), str(target))
    (target / "REASON.txt").write_text(reason + "\n")
    return target


def move_consumed(batches: list[Path], target_root: Path) -> None:
    target_root.mkdir(parents=True, exist_ok=True)
    for batch in batches:
        target = target_root / batch.name
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(batch), str(target))


def cycle(model_name: str, experiment: str, params) -> str:
    """One retraining cycle for one registered model; returns its summary line."""
    folders = settings(params)
    exp = resolve_experiment(params, experiment)
    incoming = folders["incoming"] / exp.dataset
    manifest, _ = data.prepare(exp.dataset, params)
    consumed_folder = folders["consumed"] / exp.dataset
    # batches an interrupted cycle committed but did not move yet: finish moving them
    recorded = {b["id"] for b in manifest.get("batches", [])}
    leftovers = (
        [d for d in sorted(incoming.iterdir()) if d.is_dir() and d.name in recorded]
        if incoming.is_dir()
        else []
    )
    move_consumed(leftovers, consumed_folder)
    batches = new_batches(incoming, manifest)
    if not batches:
        return f"retrain {model_name}: no new data in {incoming}"

    dataset = data.load(exp.dataset, params)
    reader = BATCH_READERS.get(dataset.kind)
    if reader is None:  # left in place, untouched, for a later version that merges them
        return (
            f"retrain {model_name}: {len(batches)} batch(es) waiting in {incoming}; "
            f"batches for a {dataset.kind} dataset are not supported yet (left in place)"
        )
    good, quarantined = {}, []
    for batch in batches:  # in name order: a series batch must continue the ones before it
        try:
            good[batch.name] = reader(batch, dataset, list(good.values()))
        except UserError as exc:
            quarantine(batch, folders["quarantine"] / exp.dataset, str(exc))
            quarantined.append(batch.name)
    note = (
        f"; quarantined {', '.join(quarantined)} (see {folders['quarantine'] / exp.dataset})"
        if quarantined
        else ""
    )
    if not good:
        return f"retrain {model_name}: no valid new data{note}"

    arrays, new_manifest = data.new_version(dataset, good)
    candidate = data.Dataset(exp.dataset, new_manifest, arrays)
    from pipeline import registry, train  # TensorFlow and MLflow only when there is work

    ids = ",".join(good)
    outcome = train.run(experiment, dataset=candidate, gate=False, extra_tags={"retrain.batches": ids})
    commit(exp.dataset, arrays, new_manifest, good)
    move_consumed([b for b in batches if b.name in good], consumed_folder)
    plan = train.make_plan(params, experiment)
    splits, _ = plan.objective.prepare(candidate, plan.train, plan.objective_params)
    examples = sum(len(y) for _, y in good.values())
    decision = registry.apply_gate(
        model_name,
        outcome.model_version,
        outcome.run_id,
        plan.gate,
        outcome.metrics,
        plan.objective,
        splits,
        extra={"retrain.batches": ids, "retrain.examples": str(examples)},
    )
    champion = decision["gate.champion_version"]
    versus = (
        f" vs champion v{champion} {decision['gate_champion']:.4f}" if "gate_champion" in decision else ""
    )
    return (
        f"retrain {model_name}: batches {ids} (+{examples} examples){note} · "
        f"challenger v{outcome.model_version} {plan.gate.metric} {decision['gate_challenger']:.4f}{versus} · "
        f"{decision['gate.decision']}"
    )


def commit(dataset: str, arrays, manifest, batches) -> None:
    """The data commit (a seam tests use to inject a failure after training)."""
    data.commit_version(dataset, arrays, manifest, batches)


def main(model: str | None = None) -> int:
    params = load_params()
    targets = registered(params)
    if not targets:
        raise UserError(f"{PARAMS_FILE}: no experiment has register_as; nothing to retrain")
    if model is not None:
        if model not in targets:
            raise UserError(
                f"unknown registered model '{model}'{suggest(model, targets)}; known: {', '.join(targets)}"
            )
        targets = {model: targets[model]}
    with lock(project_root() / LOCK_FILE):
        for name, experiment in targets.items():
            print(cycle(name, experiment, params), flush=True)
    return 0
