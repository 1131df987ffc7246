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
as they were. Batches are read by the dataset's source (pipeline/data/sources.py). A lock file
keeps two cycles from overlapping. No new data: a no-op that imports neither TensorFlow nor MLflow.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
from pathlib import Path

from pipeline import data, layout
from pipeline.config import PARAMS_FILE, load_params, project_root, resolve_experiment, suggest
from pipeline.errors import PipelineError, UserError


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


def finish_leftovers(incoming: Path, manifest: dict, consumed: Path) -> None:
    """Batches an interrupted cycle committed but did not move yet: finish moving them."""
    recorded = {b["id"] for b in manifest.get("batches", [])}
    if incoming.is_dir():
        move_consumed([d for d in sorted(incoming.iterdir()) if d.is_dir() and d.name in recorded], consumed)


def validate(batches: list[Path], dataset, source, quarantine_root: Path) -> tuple[dict, list[str]]:
    """({batch id: (x, y)} of the good batches, the names of those quarantined)."""
    good, quarantined = {}, []
    for batch in batches:  # in name order: a series batch must continue the ones before it
        try:
            good[batch.name] = source.read_batch(batch, dataset, list(good.values()))
        except UserError as exc:
            quarantine(batch, quarantine_root, str(exc))
            quarantined.append(batch.name)
    return good, quarantined


def cycle(model_name: str, experiment: str, params) -> str:
    """One retraining cycle for one registered model; returns its summary line."""
    folders = settings(params)
    exp = resolve_experiment(params, experiment)
    incoming = folders["incoming"] / exp.dataset
    manifest, _ = data.prepare(exp.dataset, params)
    finish_leftovers(incoming, manifest, folders["consumed"] / exp.dataset)
    batches = new_batches(incoming, manifest)
    if not batches:
        return f"retrain {model_name}: no new data in {incoming}"
    dataset = data.load(exp.dataset, params)
    source = data.source_of(exp.dataset, params)
    if not source.BATCHES:  # left in place, untouched, for a later version that merges them
        return (
            f"retrain {model_name}: {len(batches)} batch(es) waiting in {incoming}; "
            f"batches for a {dataset.kind} dataset are not supported yet (left in place)"
        )
    quarantine_root = folders["quarantine"] / exp.dataset
    good, quarantined = validate(batches, dataset, source, quarantine_root)
    note = f"; quarantined {', '.join(quarantined)} (see {quarantine_root})" if quarantined else ""
    if not good:
        return f"retrain {model_name}: no valid new data{note}"
    consumed = [b for b in batches if b.name in good]
    return f"retrain {model_name}: " + challenge(experiment, dataset, good, consumed, folders, note)


def challenge(experiment: str, dataset, good: dict, batches: list[Path], folders: dict, note: str) -> str:
    """Train a challenger on the data with `good` merged, commit the data, gate the challenger."""
    from pipeline.training import registry  # TensorFlow and MLflow only when there is work
    from pipeline.training.run import RunOptions, run

    arrays, new_manifest = data.new_version(dataset, good)
    candidate = data.Dataset(dataset.name, new_manifest, arrays)
    ids = ",".join(good)
    outcome = run(experiment, options=RunOptions(dataset=candidate, tags={"retrain.batches": ids}))
    commit(dataset.name, arrays, new_manifest, good)
    move_consumed(batches, folders["consumed"] / dataset.name)
    examples = sum(len(y) for _, y in good.values())
    extra = {"retrain.batches": ids, "retrain.examples": str(examples)}
    decision = registry.apply_gate(outcome, extra=extra)
    champion = decision["gate.champion_version"]
    versus = (
        f" vs champion v{champion} {decision['gate_champion']:.4f}" if "gate_champion" in decision else ""
    )
    return (
        f"batches {ids} (+{examples} examples){note} · challenger v{outcome.model_version} "
        f"{outcome.plan.gate.metric} {decision['gate_challenger']:.4f}{versus} · {decision['gate.decision']}"
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
    with lock(layout.retrain_lock()):
        for name, experiment in targets.items():
            print(cycle(name, experiment, params), flush=True)
    return 0
