"""`train-all`: train several experiments of params.yaml in a few processes, one after another, or
as Ray tasks; `make train-all` hands it the experiments make finds out of date.

Each experiment is one call of the same training core (workflows.train_and_gate.train: run, then the
gate) in every executor, so it logs and scores exactly like `make train-<experiment>` with the same
seeds. Executors:
  processes   (default) a pool of worker processes (one per core): each imports TensorFlow once and
              trains experiment after experiment; the longest first (by their epoch budget)
  sequential  one after another in this process
  ray         each experiment a Ray task (a local Ray, or the cluster RAY_ADDRESS names)
`needs:` is respected: an experiment starts once what it needs has finished; if that failed, it is
skipped. The store is created and the data prepared once, before anything runs in parallel. A
failure is named at the end (exit 1, or 2 when every failure is a user error); no run is left
RUNNING. Without `--set` overrides each experiment gets make's stamp (.build/runs/<name>.done) as
soon as it has trained, so an interrupted train-all keeps what it finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import sys
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from pipeline import config, layout, startup
from pipeline.errors import PipelineError, UserError, require
from pipeline.training import tracking
from pipeline.workflows import console, ray_session

TAG = "fanout.id"  # on every run of one train-all: the driver closes any its workers left RUNNING


@dataclasses.dataclass
class Result:
    name: str
    summary: console.Summary | None = None
    error: str | None = None
    user_error: bool = False
    skipped_for: str | None = None  # the upstream experiment that failed

    @property
    def run_id(self) -> str | None:
        return self.summary.run_id if self.summary else None


def selection(params: dict, names: list[str] | None, with_upstream: bool = True) -> list[str]:
    """The experiments to train (all by default), upstream first; `with_upstream` adds what they
    need (make's queue already holds exactly the out-of-date ones)."""
    known = config.experiment_names(params)
    resolved = {n: config.resolve_experiment(params, n) for n in known}
    config.upstream_first(resolved, resolved)  # a needs: loop anywhere is an error, as for make
    for name in names or []:
        if name not in resolved:
            config.resolve_experiment(params, name)  # raises: unknown experiment, did you mean
    ordered = config.upstream_first(resolved, names or known)
    return ordered if with_upstream or not names else [n for n in ordered if n in names]


def read_queue(path: Path) -> list[str]:
    """The experiment names make queued (one per line; repeats dropped), and the queue emptied."""
    try:
        names = list(dict.fromkeys(line.strip() for line in path.read_text().splitlines() if line.strip()))
    except FileNotFoundError:
        return []
    path.unlink(missing_ok=True)
    return names


# --------------------------------------------------------------------------- one experiment, any process


def epoch_events(name: str, put):
    """A Keras callback telling the driver each finished epoch: (name, epoch, epochs, note)."""
    import keras

    class EpochEvents(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("val_loss", (logs or {}).get("loss"))
            note = "" if loss is None else f"loss {float(loss):.4g}"
            put((name, epoch + 1, self.params.get("epochs") or epoch + 1, note))

    return EpochEvents()


def train_one(name: str, overrides: list[str], tags: dict, put=None) -> console.Summary:
    """Train (and gate) one experiment; its console summary."""
    from pipeline.training.run import RunOptions
    from pipeline.workflows import train_and_gate

    callbacks = (epoch_events(name, put),) if put is not None else ()
    verbose = None if startup.verbose() else 0  # VERBOSE=1: Keras' own per-epoch lines
    options = RunOptions(tags=tags, verbose=verbose, callbacks=callbacks)
    outcome = train_and_gate.train(name, overrides, options)
    return console.summarise(outcome)


def failure(name: str, exc: BaseException) -> Result:
    user_error = isinstance(ray_session.cause(exc), UserError)
    return Result(name, error=ray_session.one_line(exc), user_error=user_error)


# --------------------------------------------------------------------------- executors

_EVENTS = None  # a worker process's queue to the driver (set by worker_init)
_SETTINGS = contextlib.ExitStack()  # a worker process's command settings, for its life


def worker_init(events) -> None:
    """A pool worker starts: the CLI's settings for its life (startup.quiet), TensorFlow imported
    once, quietly."""
    global _EVENTS
    _EVENTS = events
    _SETTINGS.enter_context(startup.quiet())
    startup.quiet_tensorflow()


def worker_train(name: str, overrides: list[str], tags: dict) -> console.Summary:
    return train_one(name, overrides, tags, _EVENTS.put)


def epoch_budget(exp) -> float:
    """A Keras experiment's epoch budget (train.epochs, plus fine-tuning's); 0 for estimators."""
    from pipeline import models

    if exp.family not in models.FAMILIES or models.FAMILIES[exp.family].kind != "keras":
        return 0.0
    epochs = exp.train.get("epochs", 0) + exp.train.get("fine_tune_epochs", 0)
    return float(epochs) if isinstance(epochs, int | float) else 0.0


def expected_cost(experiments: dict) -> dict[str, float]:
    """How long each experiment should take (its epoch budget), to start the longest first and keep
    every core busy to the end. An experiment others need also carries the longest chain behind it."""
    seconds = {name: epoch_budget(exp) for name, exp in experiments.items()}
    cost = dict(seconds)
    for name in reversed(list(experiments)):  # downstream before upstream (upstream-first order)
        after = [cost[d] for d, e in experiments.items() if name in e.needs]
        cost[name] = seconds[name] + max(after, default=0.0)
    return cost


class Schedule:
    """Which experiments may start (what they need has finished), and what became of each."""

    def __init__(self, ordered: list[str], needs: dict[str, list[str]], cost: dict[str, float], on_result):
        self.waiting, self.needs, self.cost, self.on_result = list(ordered), needs, cost, on_result
        self.results: dict[str, Result] = {}

    def record(self, result: Result) -> None:
        self.results[result.name] = result
        self.on_result(result)

    def ready(self) -> list[str]:
        """Experiments to start now, longest first; those whose upstream failed are skipped."""
        while True:
            ready = [n for n in self.waiting if all(u in self.results for u in self.needs[n])]
            skipped = False
            for name in ready:
                failed = next((u for u in self.needs[name] if self.results[u].summary is None), None)
                if failed:
                    self.waiting.remove(name)
                    self.record(Result(name, skipped_for=failed))
                    skipped = True
            if not skipped:
                break
        ready = sorted((n for n in ready if n in self.waiting), key=self.cost.__getitem__, reverse=True)
        for name in ready:
            self.waiting.remove(name)
        return ready


def run_sequential(schedule: Schedule, overrides, tags, progress) -> None:
    startup.quiet_tensorflow()
    while ready := schedule.ready():
        for name in ready:
            try:
                schedule.record(Result(name, train_one(name, overrides, tags, lambda e: progress.epoch(*e))))
            except Exception as exc:  # noqa: BLE001 - reported with the others at the end
                schedule.record(failure(name, exc))


def run_processes(schedule: Schedule, overrides, tags, progress, jobs: int) -> None:
    context = multiprocessing.get_context("spawn")  # no forked copy of a half-started TensorFlow
    events = context.Queue()
    reader = threading.Thread(target=relay, args=(events, progress), daemon=True)
    reader.start()
    try:
        with ProcessPoolExecutor(
            jobs, mp_context=context, initializer=worker_init, initargs=(events,)
        ) as pool:
            pending = {pool.submit(worker_train, n, overrides, tags): n for n in schedule.ready()}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    name = pending.pop(future)
                    try:
                        schedule.record(Result(name, future.result()))
                    except Exception as exc:  # noqa: BLE001 - a failed experiment, or a dead worker
                        schedule.record(failure(name, exc))
                for name in schedule.ready():
                    pending[pool.submit(worker_train, name, overrides, tags)] = name
    finally:
        events.put(None)
        reader.join(timeout=5)


def relay(events, progress) -> None:
    """Driver thread: epoch events from the workers to the progress bars."""
    while (event := events.get()) is not None:
        progress.epoch(*event)


def train_task(name: str, overrides: list[str], env: dict, tags: dict, *upstream) -> console.Summary:
    """One experiment in a Ray worker (`upstream`: the results of what it needs, to order it).

    TensorFlow keeps its default thread count, as in a sequential run, so the metrics are equal.
    """
    ray_session.enter_worker(env)
    return train_one(name, overrides, tags)


def run_ray(schedule: Schedule, ordered, overrides, tags, cpus_per_task) -> None:
    import ray

    task = ray.remote(train_task)
    env = ray_session.worker_env()
    refs: dict[str, ray.ObjectRef] = {}
    for name in ordered:  # upstream first, so its ref exists
        upstream = [refs[n] for n in schedule.needs[name]]
        refs[name] = task.options(num_cpus=cpus_per_task, name=f"train-{name}", max_retries=0).remote(
            name, overrides, env, tags, *upstream
        )
    outcomes: dict[str, object] = {}
    names = {ref: name for name, ref in refs.items()}
    pending = list(refs.values())
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        try:
            outcomes[names[done[0]]] = ray.get(done[0])
        except Exception as exc:  # noqa: BLE001 - classified below, upstream first
            outcomes[names[done[0]]] = exc
    while ready := schedule.ready():  # record in needs order, so a failure skips its dependents
        for name in ready:
            value = outcomes[name]
            failed = isinstance(value, BaseException)
            schedule.record(failure(name, value) if failed else Result(name, value))


def prepare(params: dict, experiments: dict, overrides: list[str]) -> list[str]:
    """Params stamps, data and store once, before anything runs in parallel; returns the tasks."""
    if not overrides:  # the params files make's stamps depend on, as make would write them
        layout.write_params_stamps(params)
    from pipeline import data

    for name in dict.fromkeys(e.dataset for e in experiments.values()):
        data.prepare(name, params)  # once, before parallel readers
        layout.touch(layout.data_stamp(name))  # make's stamp for that step
    tasks = sorted({e.task for e in experiments.values()})
    tracking.init_store(tasks)  # the schema and experiments once, before parallel writers
    layout.touch(layout.store_stamp())  # make's stamp for `make store`
    return tasks


def recorder(progress, stamps: bool):
    """What happens as each experiment ends: its line printed, its stamp written."""

    def on_result(result: Result) -> None:
        if result.summary is None:
            reason = result.error or f"skipped: it needs {result.skipped_for}, which failed"
            progress.finished(f"{result.name}: {'failed: ' if result.error else ''}{reason}")
            return
        progress.finished(console.result_line(result.summary))
        if result.summary.decision:
            progress.finished(f"  {result.summary.decision}")
        if stamps:
            layout.touch(layout.run_stamp(result.name))

    return on_result


def execute(
    executor: str, experiments: dict, overrides, tags, jobs, cpus_per_task, quiet
) -> dict[str, Result]:
    ordered = list(experiments)
    needs = {n: [u for u in e.needs if u in experiments] for n, e in experiments.items()}
    with console.Progress(bars=not quiet) as progress:
        schedule = Schedule(
            ordered, needs, expected_cost(experiments), recorder(progress, stamps=not overrides)
        )
        if executor == "ray":
            started_ray = ray_session.init()
            try:
                run_ray(schedule, ordered, overrides, tags, cpus_per_task)
            finally:
                if started_ray:
                    ray_session.shutdown()
        elif executor == "processes" and min(jobs, len(ordered)) > 1:
            run_processes(schedule, overrides, tags, progress, min(jobs, len(ordered)))
        else:  # one experiment (or one core): no worker start-up to pay
            run_sequential(schedule, overrides, tags, progress)
    return schedule.results


def run(
    names: list[str] | None = None,
    executor: str = "processes",
    overrides: list[str] | None = None,
    cpus_per_task: int = 1,
    jobs: int | None = None,
    queue: Path | None = None,
    quiet: bool = False,
) -> int:
    jobs = jobs or os.cpu_count() or 1  # --executor, --jobs and --cpus-per-task: checked by the CLI
    overrides = list(overrides or [])
    params = config.load_params()
    if queue is not None:
        names = [*(names or []), *read_queue(queue)]
        if not names:
            return 0
    ordered = selection(params, names, with_upstream=queue is None)
    experiments = {n: config.resolve_experiment(params, n, overrides) for n in ordered}  # checks --set
    if executor == "ray":
        require("ray", extra="ray", feature="--executor ray")
    tasks = prepare(params, experiments, overrides)
    fanout_id = uuid.uuid4().hex[:12]
    tags = {TAG: fanout_id, "executor": executor}
    print(f"train-all ({executor}): {len(ordered)} experiment(s): {', '.join(ordered)}", flush=True)
    started = time.perf_counter()
    status = "FAILED"
    try:
        results = execute(executor, experiments, overrides, tags, jobs, cpus_per_task, quiet)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:  # the runs its workers left RUNNING (a worker died mid-run)
        ids = [tracking.get_or_create_experiment(task) for task in tasks]
        reason, where = "its train-all worker ended without ending the run", f"tags.`{TAG}` = '{fanout_id}'"
        tracking.close_left_running(ids, where, "KILLED" if status == "KILLED" else "FAILED", reason, False)
    return report(results, executor, time.perf_counter() - started)


def report(results: dict[str, Result], executor: str, seconds: float) -> int:
    done = [r.summary for r in results.values() if r.summary is not None]
    if done:
        print(console.tables(done))
    busy = sum(s.seconds for s in done)
    print(
        f"train-all ({executor}): {len(done)}/{len(results)} experiments trained in {seconds:.1f} s "
        f"(their runs took {busy:.1f} s together)"
    )
    failed = [r for r in results.values() if r.error is not None]
    skipped = [r for r in results.values() if r.skipped_for is not None]
    for r in failed:
        print(f"error: train-all: {r.name} failed: {r.error}", file=sys.stderr)
    for r in skipped:
        print(f"error: train-all: {r.name} skipped: it needs {r.skipped_for}, which failed", file=sys.stderr)
    if not failed and not skipped:
        return 0
    return UserError.exit_code if all(r.user_error for r in failed) else PipelineError.exit_code
