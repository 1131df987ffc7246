"""`train-all`: train several experiments of params.yaml, one after another or as Ray tasks.

Each experiment is one call of the same training core (workflows.experiment.train) in either executor, so a
fanned-out run logs and scores exactly like a sequential one with the same seeds. `needs:` is
respected: with Ray, an experiment's task takes its upstream tasks' results as arguments, so Ray
starts it only when they have finished. The store is created and the data prepared once, before
anything runs in parallel. An experiment that fails is named at the end (exit code 1, or 2 when
every failure is a user error); those that need it are skipped; no run is left RUNNING.
Without `--set` overrides each trained experiment gets the stamp make uses
(.build/runs/<name>.done), so a following `make train-all` finds it up to date.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import uuid

from pipeline import config, layout
from pipeline.errors import PipelineError, UserError
from pipeline.training import tracking
from pipeline.workflows import scaleout

EXECUTORS = ("sequential", "ray")
TAG = "fanout.id"  # on every run of one train-all: the driver closes any its workers left RUNNING


@dataclasses.dataclass
class Result:
    name: str
    run_id: str | None = None
    metrics: dict | None = None
    error: str | None = None
    user_error: bool = False
    skipped_for: str | None = None  # the upstream experiment that failed


def selection(params: dict, names: list[str] | None) -> list[str]:
    """The experiments to train (all by default) plus what they need, upstream first."""
    known = config.experiment_names(params)
    resolved = {n: config.resolve_experiment(params, n) for n in known}
    config.upstream_first(resolved, resolved)  # a needs: loop anywhere is an error, as for make
    for name in names or []:
        if name not in resolved:
            config.resolve_experiment(params, name)  # raises: unknown experiment, did you mean
    return config.upstream_first(resolved, names or known)


def train_task(name: str, overrides: list[str], env: dict, quiet: bool, tags: dict, *upstream):
    """One experiment in a Ray worker (`upstream`: the results of what it needs, to order it).

    TensorFlow keeps its default thread count, as in a sequential run, so the metrics are equal.
    """
    scaleout.enter_worker(env)
    from pipeline.training.run import RunOptions
    from pipeline.workflows import experiment

    outcome = experiment.train(name, overrides, RunOptions(tags=tags, verbose=0 if quiet else None))
    return {"run_id": outcome.run_id, "metrics": outcome.metrics}


def run_sequential(ordered, needs, overrides, quiet, tags) -> dict[str, Result]:
    from pipeline.training.run import RunOptions
    from pipeline.workflows import experiment

    options = RunOptions(tags=tags, verbose=0 if quiet else None)
    results: dict[str, Result] = {}
    for name in ordered:
        failed = next((n for n in needs[name] if results[n].run_id is None), None)
        if failed:
            results[name] = Result(name, skipped_for=failed)
            continue
        try:
            outcome = experiment.train(name, overrides, options)
            results[name] = Result(name, outcome.run_id, outcome.metrics)
        except Exception as exc:  # noqa: BLE001 - reported with the others at the end
            results[name] = Result(name, error=scaleout.one_line(exc), user_error=isinstance(exc, UserError))
    return results


def run_ray(ordered, needs, overrides, quiet, tags, cpus_per_task) -> dict[str, Result]:
    import ray

    task = ray.remote(train_task)
    env = scaleout.worker_env()
    refs: dict[str, ray.ObjectRef] = {}
    for name in ordered:  # upstream first, so its ref exists
        upstream = [refs[n] for n in needs[name]]
        refs[name] = task.options(num_cpus=cpus_per_task, name=f"train-{name}", max_retries=0).remote(
            name, overrides, env, quiet, tags, *upstream
        )
    names = {ref: name for name, ref in refs.items()}
    outcomes: dict[str, object] = {}
    pending = list(refs.values())
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        name = names[done[0]]
        try:
            outcomes[name] = ray.get(done[0])
            print(f"train-all: {name} finished ({len(outcomes)}/{len(refs)})", flush=True)
        except Exception as exc:  # noqa: BLE001 - classified below, upstream first
            outcomes[name] = exc
    results: dict[str, Result] = {}
    for name in ordered:
        failed = next((n for n in needs[name] if results[n].run_id is None), None)
        value = outcomes[name]
        if failed:
            results[name] = Result(name, skipped_for=failed)
        elif isinstance(value, BaseException):
            user_error = isinstance(scaleout.cause(value), UserError)
            results[name] = Result(name, error=scaleout.one_line(value), user_error=user_error)
        else:
            results[name] = Result(name, value["run_id"], value["metrics"])
    return results


def close_left_running(tasks: list[str], fanout_id: str, status: str) -> list[str]:
    """Runs of this train-all still RUNNING (a worker died mid-run) end with `status`."""
    import mlflow

    tracking.configure()
    client = mlflow.MlflowClient()
    ids = [e.experiment_id for t in tasks if (e := client.get_experiment_by_name(t)) is not None]
    if not ids:
        return []
    query = f"attributes.status = 'RUNNING' and tags.`{TAG}` = '{fanout_id}'"
    running = client.search_runs(ids, filter_string=query)
    for run in running:
        client.set_tag(run.info.run_id, "killed_reason", "its train-all worker ended without ending the run")
        client.set_terminated(run.info.run_id, status)
    return [r.info.run_id for r in running]


def write_stamps(results: dict[str, Result]) -> None:
    """The stamps make's rules write after a training (see pipeline/layout.py)."""
    for result in results.values():
        if result.run_id is not None:
            layout.touch(layout.run_stamp(result.name))


def run(
    names: list[str] | None = None,
    executor: str = "sequential",
    overrides: list[str] | None = None,
    cpus_per_task: int = 1,
    quiet: bool = False,
) -> int:
    if executor not in EXECUTORS:
        raise UserError(f"--executor '{executor}': expected one of {', '.join(EXECUTORS)}")
    if cpus_per_task < 1:
        raise UserError(f"--cpus-per-task {cpus_per_task}: must be >= 1")
    overrides = list(overrides or [])
    params = config.load_params()
    ordered = selection(params, names)
    experiments = {n: config.resolve_experiment(params, n, overrides) for n in ordered}  # checks --set
    needs = {n: list(experiments[n].needs) for n in ordered}
    if not overrides:  # the params files make's stamps depend on, as make would write them
        layout.write_params_stamps(params)
    from pipeline import data

    for name in dict.fromkeys(e.dataset for e in experiments.values()):
        data.prepare(name, params)  # once, before parallel readers
        layout.touch(layout.data_stamp(name))  # make's stamp for that step
    tasks = sorted({e.task for e in experiments.values()})
    tracking.init_store(tasks)  # the schema and experiments once, before parallel writers
    layout.touch(layout.store_stamp())  # make's stamp for `make store`
    fanout_id = uuid.uuid4().hex[:12]
    tags = {TAG: fanout_id, "executor": executor}
    print(f"train-all ({executor}): {', '.join(ordered)}", flush=True)
    started = time.perf_counter()
    status = "FAILED"
    try:
        if executor == "ray":
            started_ray = scaleout.init()
            try:
                results = run_ray(ordered, needs, overrides, quiet, tags, cpus_per_task)
            finally:
                if started_ray:
                    scaleout.shutdown()
        else:
            results = run_sequential(ordered, needs, overrides, quiet, tags)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        close_left_running(tasks, fanout_id, status)
    seconds = time.perf_counter() - started
    if not overrides:
        write_stamps(results)
    return report(results, executor, seconds)


def report(results: dict[str, Result], executor: str, seconds: float) -> int:
    done = [r for r in results.values() if r.run_id is not None]
    print(f"train-all ({executor}): {len(done)}/{len(results)} experiments trained in {seconds:.1f} s")
    failed = [r for r in results.values() if r.error is not None]
    skipped = [r for r in results.values() if r.skipped_for is not None]
    for r in failed:
        print(f"error: train-all: {r.name} failed: {r.error}", file=sys.stderr)
    for r in skipped:
        print(f"error: train-all: {r.name} skipped: it needs {r.skipped_for}, which failed", file=sys.stderr)
    if not failed and not skipped:
        return 0
    return UserError.exit_code if all(r.user_error for r in failed) else PipelineError.exit_code
