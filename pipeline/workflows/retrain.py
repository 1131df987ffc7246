"""Scheduled batch retraining: new-data batches → challenger → gate → champion (`make retrain`).

One cycle per registered model (experiments with `register_as`), under the lock a training's gate
takes too (registry.alias_lock), so two processes never move `champion` at once:
  0. a cycle that was killed (its journal, .build/retrain/<model>.json, is still there) is
     finished when its data commit had happened, else rolled back (its batches wait in incoming/);
  1. find the batches that have arrived (workflows/batches.py: READY, or settled for
     retrain.settle_seconds) and their identity (id, sha256). No new data: a no-op that imports
     neither TensorFlow nor MLflow;
  2. before any training: the experiment, its gate and gate metric, and that the champion can be
     read. Then, in an MLflow run `retrain-<model>` (in the model's task), read each batch: a bad
     one is quarantined with its reason and the others proceed; each one read is compared with
     the champion's training data (workflows/batch_drift.py: `drift_*` per batch, the gate's
     `drift:` limit, beyond which `action: quarantine` sets it aside too);
  3. train a challenger (nested run) on the data with the good batches merged (an image dataset's
     new folder is staged, its training split appended to; nothing is committed), and judge it
     (training/gate.py: the champion re-evaluated on the challenger's holdout); the decision is
     journaled;
  4. commit the new data version (the manifest's atomic replace);
  5. register the challenger (alias `challenger`);
  6. apply the decision: `champion` moved when it passes, then recorded;
  7. move the batches to consumed/; the journal is removed: the cycle is complete.
Every step is journaled before the next starts and each is idempotent, so a kill -9 between any
two leaves a state the next cycle completes or rolls back. PIPELINE_FAULT=<step> (append, stage,
train, decide, files, commit, register, gate, move, quarantine) makes the process kill itself
right after that step's effect: the crash tests and `make soak` use it. A cycle finished after a
restart applies its journaled decision: it needs neither the data nor a model loaded again.
"""

from __future__ import annotations

import dataclasses
import json
import os

from pipeline import atomic, data, layout, startup
from pipeline.config import PARAMS_FILE, load_params, resolve_experiment, retrain_params, suggest
from pipeline.errors import PipelineError, UserError, first_line
from pipeline.faults import fault
from pipeline.training import gate, registry, resolve
from pipeline.workflows import batch_drift, batches


def registered(params) -> dict[str, str]:
    """{registered model name: experiment name} for every experiment with register_as."""
    found = {}
    for name, entry in params["experiments"].items():
        if isinstance(entry, dict) and entry.get("register_as"):
            found[entry["register_as"]] = name
    return found


def lock():
    """The retrain lock (registry.alias_lock, not waiting): a second cycle exits at once."""
    return registry.alias_lock("retrain", wait=False)


# --------------------------------------------------------------------------- the journal


def read_journal(model: str) -> dict | None:
    try:
        return json.loads(layout.retrain_journal(model).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def save(state: dict, **changes) -> dict:
    """Record a step (atomically: a kill leaves the previous record or this one)."""
    state.update(changes)
    atomic.write_text(layout.retrain_journal(state["model"]), json.dumps(state, indent=1) + "\n")
    return state


def clear(model: str) -> None:
    layout.retrain_journal(model).unlink(missing_ok=True)


# --------------------------------------------------------------------------- one cycle


def cycle(model: str, experiment: str, params) -> str:
    """One retraining cycle for one registered model; returns its summary line(s)."""
    exp = resolve_experiment(params, experiment)
    inbox = batches.Inbox.of(params, exp.dataset)
    lines = []
    interrupted = read_journal(model)
    if interrupted:
        lines.append(recover(interrupted, params, inbox))
    manifest, _ = data.prepare(exp.dataset, params)
    inbox.drop_half_quarantined()
    arrived, waiting = inbox.arrivals(manifest)
    note = (
        f" (still arriving: {', '.join(waiting)}; a batch counts once it holds an empty READY file "
        f"or nothing in it changed for retrain.settle_seconds)"
        if waiting
        else ""
    )
    if not arrived:
        return "\n".join([*lines, f"retrain {model}: no new data in {inbox.incoming}{note}"])
    source = data.source_of(exp.dataset, params)
    if not source.BATCHES:  # left in place, untouched, for a later version that merges them
        summary = (
            f"{len(arrived)} batch(es) waiting in {inbox.incoming}; batches for a {source.KIND} "
            "dataset are not supported yet (left in place)"
        )
    else:
        summary = ingest(model, experiment, params, inbox, arrived) + note
    return "\n".join([*lines, f"retrain {model}: {summary}"])


def ingest(model: str, experiment: str, params, inbox, arrived: list) -> str:
    """Steps 2-7 for the batches that arrived (TensorFlow and MLflow imported only now)."""
    startup.quiet_tensorflow()
    from pipeline.training import tracking
    from pipeline.training.plan import make_plan

    plan = make_plan(params, experiment)  # the experiment, its gate and its metric, checked
    tracking.configure()
    registry.champion(model)  # readable, or one line now: before any training
    moved = [a.id for a in arrived if a.leftover and inbox.consume(a)]  # committed by a killed cycle
    fresh = [a for a in arrived if not a.leftover]
    if not fresh:
        return f"moved {', '.join(moved)} to {inbox.consumed} (committed by an interrupted cycle)"
    state = save({"model": model, "experiment": experiment, "dataset": plan.exp.dataset}, step="started")
    try:
        tags = {"retrain.model": model}
        with tracking.start_run(plan.exp.task, f"retrain-{model}", tags, "one retraining cycle") as parent:
            save(state, parent_run=parent.info.run_id)
            return challenge(plan, params, inbox, fresh, state)
    finally:
        if state["step"] in ("started", "decided"):  # nothing committed: the batches wait in incoming/
            clear(model)


def validate(arrived: list, dataset, source, inbox, max_pixels: int, screen=None) -> tuple[list, list]:
    """(the good batches as data.Batch, [(arrival, quarantine folder, reason)] of the refused).
    `screen` (batch_drift.Screen): each batch read is measured for drift, and quarantined when
    beyond the gate's limit with `action: quarantine`, before the next one is read."""
    good, refused = [], []
    for arrival in arrived:  # in name order: a series batch must continue the ones before it
        reason = arrival.problem
        if reason is None:
            try:
                x, y = source.read_batch(arrival.path, dataset, [(b.x, b.y) for b in good], max_pixels)
            except UserError as exc:
                reason = str(exc)
            except Exception as exc:  # one bad batch never stops the others
                reason = f"could not be read ({first_line(exc, typed=True)})"
            else:
                batch = data.Batch(arrival.id, arrival.name, arrival.sha256, x, y)
                reason = screen.judge(batch, good) if screen else None
                if reason is None:
                    good.append(batch)
                    continue
        refused.append((arrival, inbox.refuse(arrival, reason), reason))
    return good, refused


def challenge(plan, params, inbox, arrived: list, state: dict) -> str:
    """Read the batches, train a challenger on them and judge it, commit, register, apply, move
    (steps 2-7)."""
    from pipeline.monitoring import reference
    from pipeline.training.run import RunOptions, run

    dataset = data.load(plan.exp.dataset, params)
    source = data.source_of(plan.exp.dataset, params)
    screen = batch_drift.Screen.of(plan, dataset, registry.champion(plan.register_as))
    cap = retrain_params(params).max_image_pixels
    good, refused = validate(arrived, dataset, source, inbox, cap, screen)
    record_arrivals(good, refused)
    screen.log()
    names = ", ".join(a.shown for a, _, _ in refused)
    note = f"; quarantined {names} (see {inbox.quarantine})" if refused else ""
    drift = f"\n  {screen.summary()}" if screen.judged else ""
    if not good:
        return f"no valid new data{note}{drift}"
    journaled = [{"id": b.id, "name": b.name, "sha256": b.sha256, "examples": b.examples} for b in good]
    save(state, batches=journaled)
    arrays, manifest = data.new_version(dataset, good)
    ids = ",".join(b.id for b in good)
    candidate = data.Dataset(dataset.name, manifest, arrays)
    options = RunOptions(
        dataset=candidate,
        tags={"retrain.batches": ids},
        register=False,
        extra_artifacts=reference.for_run,  # a promoted challenger carries its drift profile
    )
    outcome = run(plan.exp.name, options=options)
    fault("train")
    decision = gate.judge(outcome)  # before the commit: finishing the cycle later needs no data
    trained = {"run_id": outcome.run_id, "model_uri": outcome.model_uri}
    save(state, step="decided", **trained, decision=dataclasses.asdict(decision))
    fault("decide")
    commit(dataset.name, arrays, manifest, good)
    fault("commit")
    save(state, step="committed")
    decision = complete(state, inbox)
    record_decision(decision)
    examples = sum(b.examples for b in good)
    versus = ""
    if decision.champion is not None:
        versus = f" vs champion v{decision.champion_version} {decision.champion:.4f}"
    return (
        f"batches {ids} (+{examples} examples){note} · challenger v{state['version']} "
        f"{decision.metric} {decision.challenger:.4f}{versus} · {decision.verdict}{drift}"
    )


def commit(dataset: str, arrays, manifest, good) -> None:
    """The data commit (a seam tests use to inject a failure after training)."""
    data.commit_version(dataset, arrays, manifest, good)


def complete(state: dict, inbox) -> gate.Decision:
    """Steps 5-7 of a committed cycle, from wherever its journal says it stopped: register the
    challenger, apply the journaled decision, move the batches; then the journal goes."""
    model = state["model"]
    if not isinstance(state.get("decision"), dict) or set(state["decision"]) != gate.FIELDS:
        raise PipelineError(
            f"{layout.retrain_journal(model)}: a committed cycle journaled by an earlier release, in "
            "a form this one does not read; finish it with that release, or delete the file (its "
            "batches then move to consumed/, its challenger stays ungated)"
        )
    if "version" not in state:
        version = registry.register(state["model_uri"], model, state["run_id"])
        fault("register")
        save(state, step="registered", version=version)
    decision = gate.Decision(**{**state["decision"], "challenger_version": state["version"]})
    tags = {
        "retrain.batches": ",".join(b["id"] for b in state["batches"]),
        "retrain.examples": str(sum(b["examples"] for b in state["batches"])),
    }
    decision = gate.apply(model, state["run_id"], decision, tags)
    fault("gate")
    save(state, step="gated")
    move_batches(state, inbox)
    clear(model)
    return decision


def move_batches(state: dict, inbox) -> list[str]:
    """Move each committed batch to consumed/<id> (those there already are done); returns the ids
    no longer in incoming/ with their files (moved away by hand: the data has them anyway)."""
    missing = []
    for entry in state["batches"]:
        if os.path.lexists(inbox.consumed / entry["id"]):
            continue
        source = inbox.incoming / entry["name"]
        try:
            same = data.readers.hash_files(data.regular_files(source), source, False) == entry["sha256"]
        except (OSError, UserError):
            same = False
        if not same:
            missing.append(entry["id"])
            continue
        batches.move(source, inbox.consumed / entry["id"])
        fault("move")
    return missing


def recover(state: dict, params, inbox) -> str:
    """Finish (after the data commit) or roll back (before it) a cycle that was killed."""
    import mlflow

    from pipeline.training import tracking

    model = state["model"]
    tracking.configure()
    task = resolve_experiment(params, state["experiment"]).task
    experiment_id = tracking.get_or_create_experiment(task)
    for name in (f"retrain-{model}", state["experiment"]):  # runs the killed process left RUNNING
        tracking.close_left_running([experiment_id], f"attributes.run_name = '{name}'")
    manifest = data.read_manifest(state["dataset"])
    recorded = {(e.id, e.sha256) for e in manifest.batches} if manifest else set()
    batch_ids = [(b["id"], b["sha256"]) for b in state.get("batches", [])]
    if not batch_ids or not all(b in recorded for b in batch_ids):
        client = mlflow.MlflowClient()
        if state.get("parent_run"):  # its challenger, if trained, is never registered: say so
            children = client.search_runs(
                [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{state['parent_run']}'"
            )
            for run in children:
                client.set_tag(run.info.run_id, "retrain.rolled_back", "true")
        clear(model)
        return (
            f"retrain {model}: rolled back a cycle interrupted before its data commit "
            f"(at step '{state['step']}'); its batches wait in {inbox.incoming}"
        )
    decision = complete(state, inbox)
    return (
        f"retrain {model}: finished a cycle interrupted after its data commit: batches "
        f"{','.join(b for b, _ in batch_ids)} · challenger v{state['version']} · {decision.verdict}"
    )


# --------------------------------------------------------------------------- what the run records


def record_arrivals(good: list, refused: list) -> None:
    """The cycle's batches on its `retrain-<model>` run: ids, hashes, counts, and the quarantined."""
    import mlflow

    mlflow.set_tags(
        {
            "retrain.batches": (",".join(b.id for b in good) or "none")[:5000],
            "retrain.quarantined": (",".join(a.shown for a, _, _ in refused) or "none")[:5000],
        }
    )
    mlflow.log_metrics(
        {
            "retrain_batches": len(good),
            "retrain_examples": sum(b.examples for b in good),
            "retrain_quarantined": len(refused),
        }
    )
    listing = {
        "batches": [{"id": b.id, "name": b.name, "sha256": b.sha256, "examples": b.examples} for b in good],
        "quarantined": [
            {"name": a.shown, "folder": str(folder), "reason": data.readers.printable(reason)}
            for a, folder, reason in refused
        ],
    }
    mlflow.log_dict(listing, "retrain_batches.json")


def record_decision(decision: gate.Decision) -> None:
    """The gate's decision on the `retrain-<model>` run as well (the challenger's run has it too)."""
    import mlflow

    mlflow.set_tags(decision.tags())
    mlflow.log_metrics(decision.metrics())


def not_retrained(params, model: str, targets: dict[str, str]) -> str:
    """The line for `--model` naming no registered model: the one an experiment registers, or the
    register_as line and gate to paste."""
    known = f"known: {', '.join(targets)}"
    entry = params["experiments"].get(model)
    if isinstance(entry, dict) and entry.get("register_as"):
        name = entry["register_as"]
        return f"--model {model} is an experiment; the model it registers is '{name}': --model {name}"
    if isinstance(entry, dict):
        return (
            f"--model {model}: experiment '{model}' registers no model ({known}); "
            + resolve.registration_example(params, model)
        )
    return f"unknown registered model '{model}'{suggest(model, targets)}; {known}"


def main(model: str | None = None) -> int:
    params = load_params()
    targets = registered(params)
    if not targets:
        first = next(iter(params["experiments"]))
        raise UserError(
            f"{PARAMS_FILE}: no experiment has register_as, so nothing is retrained; e.g. "
            + resolve.registration_example(params, first)
        )
    if model is not None:
        if model not in targets:
            raise UserError(not_retrained(params, model, targets))
        targets = {model: targets[model]}
    with lock():
        for name, experiment in targets.items():
            print(cycle(name, experiment, params), flush=True)
    return 0
