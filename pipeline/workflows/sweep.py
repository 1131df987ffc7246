"""`sweep <experiment>`: a Ray Tune search over the experiment's `search:` block in params.yaml.

A trial is a normal run of the experiment with the sampled values as `--set` overrides, trained by
the shared core (pipeline/training/run.py) with one Keras callback more: it reports every epoch's metrics to
Tune, so the ASHA scheduler can stop bad trials early. MLflow gets one parent run
`sweep-<experiment>` (the search space, the best trial's config as params `best.<key>`, the best
value as metric `best_<metric>`, the trial counts) and one nested run per trial (tag
`mlflow.parentRunId`; params and per-epoch metrics like any run). Trials register no model and
leave the champion alone; a trial ASHA stopped ends FINISHED with tag `sweep.stopped_early=true`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import time
from pathlib import Path

from pipeline import config, layout
from pipeline.config import PARAMS_FILE, SearchParams
from pipeline.errors import PipelineError, UserError, require
from pipeline.training import tracking
from pipeline.workflows import ray_session


def run_name(experiment: str) -> str:
    return f"sweep-{experiment}"


def override(key: str, value) -> str:
    """`key=value` as `--set` reads it (the value as YAML flow: numbers, strings, lists)."""
    return f"{key}={json.dumps(value, default=lambda v: v.item())}"


def samples(spec: dict) -> list:
    """Values that stand for a sampler when the keys are checked (its choices, or its bounds)."""
    ((sampler, args),) = spec.items()
    return list(args)


def tune_space(space: dict) -> dict:
    from ray import tune

    make = {
        "grid": tune.grid_search,
        "choice": tune.choice,
        "uniform": lambda a: tune.uniform(*a),
        "loguniform": lambda a: tune.loguniform(*a),
        "randint": lambda a: tune.randint(a[0], a[1] + 1),  # both bounds included, like the others
    }
    return {key: make[sampler](args) for key, spec in space.items() for sampler, args in spec.items()}


def check(params: dict, name: str, search: SearchParams, overrides: list[str]):
    """Every key of the space, at every value it can take (choices, bounds), before any trial.

    Returns (plan, the most epochs a trial runs, the search's mode: max or min)."""
    from pipeline.training.plan import make_plan

    where = f"experiments.{name}.search"
    plan = make_plan(params, name, overrides)
    if plan.family.kind != "keras":
        raise UserError(
            f"{PARAMS_FILE}: {where}: family '{plan.exp.family}' is not a Keras model; "
            "sweeps need per-epoch metrics"
        )
    metrics = plan.objective.epoch_metrics()
    if search.metric not in metrics:
        raise UserError(
            f"{PARAMS_FILE}: {where}.metric '{search.metric}' is not logged per epoch"
            f"{config.suggest(search.metric, metrics)}; choose one of {', '.join(sorted(metrics))}"
        )
    mode = plan.objective.direction(search.metric)
    if search.mode is not None and search.mode != mode:
        raise UserError(
            f"{PARAMS_FILE}: {where}.mode: {search.mode} contradicts {search.metric}, which is better "
            f"when {'higher' if mode == 'max' else 'lower'} (drop the key: the objective knows)"
        )
    for key, spec in search.space.items():
        for value in samples(spec):
            try:
                make_plan(params, name, [*overrides, override(key, value)])
            except UserError as exc:
                reason = str(exc).removeprefix(f"{PARAMS_FILE}: ")
                raise UserError(f"{PARAMS_FILE}: {where}.space.{key} = {value!r}: {reason}") from None
    epochs = plan.train.epochs + getattr(plan.train, "fine_tune_epochs", 0)
    if "train.epochs" in search.space:
        epochs = max(int(v) for v in samples(search.space["train.epochs"]))
    if search.scheduler == "asha" and search.grace_period > epochs:
        raise UserError(
            f"{PARAMS_FILE}: {where}.grace_period = {search.grace_period} exceeds the "
            f"{epochs} epochs a trial runs"
        )
    return plan, epochs, mode


def reporter(metric: str):
    """A Keras callback: each epoch's logs to Tune; ends the run as soon as Tune stops the trial.

    Tune stops a trial (ASHA) by raising SystemExit in `tune.report`, then ends the trial's worker
    without waiting for it: whatever the run still did after that (evaluate, log) raced the worker's
    end, and lost at random (an interrupted evaluation ended the run FAILED). So the stop raises
    tracking.StoppedEarly at once: the run ends FINISHED with sweep.stopped_early=true and nothing
    else of it runs. The last epoch is reported only once the run has ended (`flush`), so a trial
    that trained to the end is evaluated before Tune can end its worker; a stop at that report has
    nothing left to stop and ends the trial as Tune does (SystemExit).
    """
    import keras
    from ray import tune

    class ReportToTune(keras.callbacks.Callback):
        pending: dict | None = None

        def report(self, logs: dict) -> None:
            try:
                tune.report(logs)
            except SystemExit:  # how Tune ends a trial it stops (ASHA)
                raise tracking.StoppedEarly() from None

        def on_epoch_end(self, epoch, logs=None):
            logs = {k: float(v) for k, v in (logs or {}).items()}
            if metric not in logs:
                raise UserError(f"search.metric '{metric}' is not logged (epoch logs: {', '.join(logs)})")
            logs["epoch"] = epoch + 1
            if self.pending is not None:  # the first phase's last epoch, when a second phase follows
                held, self.pending = self.pending, None
                self.report(held)
            if epoch + 1 >= self.params.get("epochs", 0):
                self.pending = logs
            else:
                self.report(logs)

        def flush(self) -> None:
            if self.pending is not None:
                held, self.pending = self.pending, None
                tune.report(held)  # the run has ended: a stop here only ends the trial (SystemExit)

    return ReportToTune()


def trial(config_: dict, *, experiment, overrides, metric, parent_run_id, env, cpus, quiet) -> None:
    """One trial in a Ray worker: a normal run of the experiment with the sampled overrides.

    Ends with SystemExit(0) when Tune stops it (as `tune.report` does); a worker runs trial after
    trial (reuse_actors), each in a thread of its own, so no MLflow run is shared between them."""
    ray_session.enter_worker(env, cpus)
    from ray import tune

    from pipeline.training.run import RunOptions, run

    trial_id = tune.get_context().get_trial_id()
    changes = [*overrides, *(override(k, v) for k, v in config_.items())]
    tags = {"mlflow.parentRunId": parent_run_id, "sweep.trial_id": trial_id, "sweep.stopped_early": "false"}
    callback = reporter(metric)
    options = RunOptions(
        run_name=f"{experiment}-trial-{trial_id.rsplit('_', 1)[-1]}",
        tags=tags,
        log_outputs=False,  # no registered model, no gate, no published files
        resume=False,  # nothing resumed or left to resume: two trials may share a config
        verbose=0 if quiet else None,
        callbacks=(callback,),
    )
    try:
        run(experiment, changes, options)
    except tracking.StoppedEarly:  # Tune stopped it: the run ended FINISHED
        # passed on as Tune's own stop: its thread runner ends the trial quietly on SystemExit(0).
        # Returning instead makes Tune's wrapper report once more and wait for a go-ahead that never
        # comes, so a reused worker (reuse_actors) could never take the next trial.
        raise SystemExit(0) from None
    callback.flush()  # the last epoch, now that the run has ended


def finish_trial_runs(
    parent_run_id: str, experiment_id: str, ended: dict[str, bool] | None = None
) -> dict[str, int]:
    """Every trial run's status follows what Tune decided (`ended`: trial id → whether Tune reports
    it failed): FAILED for a failed trial, FINISHED for any other; a run not FINISHED yet was ended
    by Tune with its worker: stopped early. A run Tune says nothing of (`ended` None: the sweep
    itself was interrupted) that is still RUNNING ends KILLED.
    """
    import mlflow

    client = mlflow.MlflowClient()
    trials = f"tags.`mlflow.parentRunId` = '{parent_run_id}'"
    children = client.search_runs([experiment_id], filter_string=trials, max_results=10000)
    counts = {"trials": len(children), "trials_stopped_early": 0, "trials_failed": 0}
    for child in children:
        status, tags = child.info.status, child.data.tags
        stopped_early = tags.get("sweep.stopped_early") == "true"
        failed = (ended or {}).get(tags.get("sweep.trial_id", ""))
        if failed is None:
            decided = status  # one still RUNNING is closed below (KILLED), with the others
        elif failed:
            decided = "FAILED"
        else:
            decided = "FINISHED"
            if status != "FINISHED":  # Tune stopped it and ended its worker before the run closed
                stopped_early = True
                client.set_tag(child.info.run_id, "sweep.stopped_early", "true")
        if decided != status:
            client.set_terminated(child.info.run_id, decided)
        counts["trials_stopped_early"] += stopped_early
        counts["trials_failed"] += decided != "FINISHED"
    reason = "the sweep ended without a word from Tune on this trial"
    tracking.close_left_running([experiment_id], trials, reason=reason, dead_only=False)
    return counts


def tune_decisions(results) -> dict[str, bool]:
    """Trial id → whether Tune reports the trial failed (its id from its last result, or its folder)."""
    ended = {}
    for result in results:
        trial_id = (result.metrics or {}).get("trial_id")
        if trial_id is None:  # failed before its first report: the id is in its folder's name
            found = re.search(r"_([0-9a-f]{5}_\d{5})_", Path(result.path).name)
            trial_id = found.group(1) if found else None
        if trial_id is not None:
            ended[trial_id] = result.error is not None
    return ended


@dataclasses.dataclass(frozen=True)
class SweepOutcome:
    parent_run_id: str
    best_config: dict
    best_value: float
    trials: int
    failed: int


def resolve_search(params, experiment, num_samples, max_concurrent, overrides):
    """The experiment's search: block with the command line's overrides, checked."""
    exp = config.resolve_experiment(params, experiment, overrides)
    if exp.search is None:
        raise UserError(
            f"{PARAMS_FILE}: experiments.{experiment} has no search: block to sweep over; e.g. add "
            "`search: {metric: val_loss, space: {train.learning_rate: {loguniform: [0.0001, 0.01]}}}` "
            "(docs/scale-out.md)"
        )
    # --num-samples, --max-concurrent and --cpus-per-trial are checked by the CLI, the block by config
    changes = {"num_samples": num_samples, "max_concurrent": max_concurrent}
    search = dataclasses.replace(exp.search, **{k: v for k, v in changes.items() if v is not None})
    return exp, search


def log_search(search: SearchParams, mode: str, experiment: str, overrides: list[str], cpus: int) -> None:
    fields = dataclasses.fields(search)
    tracking.log_params(
        {
            **{f"search.space.{k}": json.dumps(v) for k, v in search.space.items()},
            **{f"search.{f.name}": getattr(search, f.name) for f in fields if f.name != "space"},
            "search.mode": mode,
            "experiment": experiment,
            "overrides": overrides,
            "cpus_per_trial": cpus,
        }
    )


def trial_env() -> dict[str, str]:
    """The worker's environment for a trial. Before a worker takes the next trial, Tune waits
    TUNE_FUNCTION_THREAD_TIMEOUT_S (2 s by default) for the last trial's thread to end, and fails
    the next trial if it has not: a run stopped early still ends (MLflow writes), so more time."""
    return {**ray_session.worker_env(), "TUNE_FUNCTION_THREAD_TIMEOUT_S": "60"}


def make_tuner(
    search: SearchParams, mode: str, max_epochs: int, trainable, name: str, cpus: int, quiet: bool
):
    from ray import tune

    scheduler = None
    if search.scheduler == "asha":
        scheduler = tune.schedulers.ASHAScheduler(
            time_attr="training_iteration", max_t=max_epochs, grace_period=search.grace_period
        )
    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": cpus}),
        param_space=tune_space(search.space),
        tune_config=tune.TuneConfig(
            metric=search.metric,
            mode=mode,
            num_samples=search.num_samples,
            max_concurrent_trials=search.max_concurrent,
            scheduler=scheduler,
            # a finished trial's worker (TensorFlow already imported) runs the next trial, rather
            # than a process start and a TensorFlow import per trial
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(config.project_root() / layout.RAY_RESULTS),
            verbose=0 if quiet else 1,
        ),
    )


def record_best(results, search: SearchParams, mode: str, experiment: str):
    """The best trial on the parent run: `best.<key>` params, `best_<metric>`, trials.csv."""
    import mlflow

    good = [r for r in results if r.error is None and search.metric in (r.metrics or {})]
    if not good:
        first = next((r.error for r in results if r.error is not None), None)
        reason = ray_session.one_line(first) if first else f"no trial reported {search.metric}"
        raise PipelineError(f"sweep {experiment}: every trial failed ({reason})")
    best = results.get_best_result(search.metric, mode, scope="all")
    frame = best.metrics_dataframe[search.metric]
    best_value = float(frame.max() if mode == "max" else frame.min())
    tracking.log_params({f"best.{k}": v for k, v in best.config.items()})
    mlflow.log_metric(f"best_{search.metric}", best_value)
    mlflow.set_tag("best_trial_id", best.metrics.get("trial_id", ""))
    mlflow.log_text(results.get_dataframe().to_csv(index=False), "trials.csv")
    return best, best_value, good


def fit_trials(tuner, parent_id: str, experiment_id: str):
    """Tune's results; every trial run closed (KILLED when the sweep itself is interrupted)."""
    import mlflow

    results = None
    try:
        results = tuner.fit()
    finally:
        if results is None:  # interrupted: no trial run stays RUNNING
            finish_trial_runs(parent_id, experiment_id)
    counts = finish_trial_runs(parent_id, experiment_id, tune_decisions(results))
    mlflow.log_metrics({k: float(v) for k, v in counts.items()})
    return results, counts


def run(
    experiment: str,
    num_samples: int | None = None,
    max_concurrent: int | None = None,
    overrides: list[str] | None = None,
    cpus_per_trial: int = 1,
    quiet: bool = False,
) -> SweepOutcome:
    overrides = list(overrides or [])
    params = config.load_params()
    exp, search = resolve_search(params, experiment, num_samples, max_concurrent, overrides)
    from pipeline import data

    data.prepare(exp.dataset, params)
    plan, max_epochs, mode = check(params, experiment, search, overrides)
    require("ray", extra="ray", feature="sweep")
    tracking.init_store([exp.task])
    experiment_id = tracking.get_or_create_experiment(exp.task)

    from ray import tune

    tags = {"git_commit": tracking.git_commit(), "kind": "sweep", "model_family": exp.family}
    description = f"Ray Tune sweep of {experiment} over {', '.join(search.space)}: {search.metric} ({mode})."
    started = time.perf_counter()
    with tracking.start_run(exp.task, run_name(experiment), tags, description) as parent:
        parent_id = parent.info.run_id
        log_search(search, mode, experiment, overrides, cpus_per_trial)
        trainable = tune.with_parameters(
            trial,
            experiment=experiment,
            overrides=overrides,
            metric=search.metric,
            parent_run_id=parent_id,
            env=trial_env(),
            cpus=cpus_per_trial,
            quiet=quiet,
        )
        name = f"{run_name(experiment)}-{parent_id[:8]}"
        tuner = make_tuner(search, mode, max_epochs, trainable, name, cpus_per_trial, quiet)
        started_ray = ray_session.init()
        try:
            results, counts = fit_trials(tuner, parent_id, experiment_id)
        finally:
            if started_ray:
                ray_session.shutdown()
        best, best_value, good = record_best(results, search, mode, experiment)
    seconds = time.perf_counter() - started
    print(
        f"sweep {experiment}: best {search.metric} {best_value:.4f} with "
        f"{', '.join(f'{k}={v}' for k, v in best.config.items())} · {counts['trials']} trials "
        f"({counts['trials_stopped_early']} stopped early, {counts['trials_failed']} failed) · "
        f"{seconds:.1f} s · parent run {parent_id} in '{exp.task}' at {tracking.shown_uri()}"
    )
    return finish(
        experiment, results, good, counts, SweepOutcome(parent_id, dict(best.config), best_value, 0, 0)
    )


def finish(experiment: str, results, good: list, counts: dict, outcome: SweepOutcome) -> SweepOutcome:
    """Failed trials named on stderr; the sweep fails when any trial did, or the best is not finite."""
    for r in results:
        if r.error is not None:
            reason = ray_session.one_line(r.error)
            print(f"error: sweep {experiment}: trial failed: {reason}", file=sys.stderr)
    failed = max(counts["trials_failed"], len(results) - len(good))
    outcome = dataclasses.replace(outcome, trials=counts["trials"], failed=failed)
    if failed:
        raise PipelineError(f"sweep {experiment}: {failed} of {len(results)} trials failed")
    if not math.isfinite(outcome.best_value):
        raise PipelineError(f"sweep {experiment}: best value is {outcome.best_value}")
    return outcome
