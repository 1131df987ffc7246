"""`make soak-sweep`: `make sweep EXP=cnn-same` again and again, counting spurious failures.

A soak benchmark, not a test (`make test` never runs it). `make sweep` once failed at random ("1
of 8 trials failed" while Ray Tune reported every trial TERMINATED): a trial ASHA stopped raced
its worker's end and its run ended FAILED. Each repetition here runs the real `make sweep` in a
throw-away project with small settings (few examples and epochs, ASHA's grace period 1, so most
trials are stopped early: where the race was), then reads that project's store. A spurious
failure is a sweep that exits non-zero or a trial run that does not end FINISHED (every trial's
settings are valid). Prints the counts and writes reports/soak-sweep.json.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from benchmarks import bench
from pipeline import atomic
from pipeline.config import project_root


def prepare(root: Path, experiment: str) -> list[str]:
    """The throw-away project: ASHA's grace period 1, make's venv stamp in place; returns make's command."""
    params_file = root / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["experiments"][experiment]["search"]["grace_period"] = 1
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    for name in ("pyproject.toml", "requirements.lock", ".venv-ready"):  # the venv counts as installed
        (root / name).touch()
    makefile = bench.REPO / "Makefile"
    return ["make", "-f", str(makefile), f"PY={sys.executable}", "VENV_STAMP=.venv-ready"]


def latest_sweep(experiment: str) -> dict:
    """The newest parent run of `experiment`'s sweeps and the statuses of its trial runs."""
    import mlflow

    client = mlflow.MlflowClient()
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"attributes.run_name = 'sweep-{experiment}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs:
        return {"trials": 0, "not_finished": 0, "stopped_early": 0}
    parent = runs[0]
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    )
    return {
        "trials": len(children),
        "not_finished": sum(c.info.status != "FINISHED" for c in children),
        "stopped_early": sum(c.data.tags.get("sweep.stopped_early") == "true" for c in children),
    }


def one_sweep(root: Path, make: list[str], experiment: str, flags: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(bench.REPO)}  # the `pipeline` this tool runs, so the sweeps do
    started = time.perf_counter()
    done = subprocess.run(
        [*make, "sweep", f"EXP={experiment}", f"SWEEP_FLAGS={flags}"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    result = {"exit_code": done.returncode, "seconds": round(time.perf_counter() - started, 1)}
    result |= latest_sweep(experiment)
    if done.returncode:
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        result["error"] = (errors or done.stderr.strip().splitlines() or ["?"])[-1][:300]
    return result


def main(repeats: int = 20, experiment: str = "cnn-same", epochs: int = 6, limit: int = 300) -> int:
    out = project_root() / "reports" / "soak-sweep.json"
    flags = f"--quiet --set train.limit={limit} --set train.epochs={epochs} --set train.patience={epochs}"
    sweeps = []
    with bench.scratch_project() as root:
        make = prepare(root, experiment)
        for i in range(1, repeats + 1):
            sweeps.append(one_sweep(root, make, experiment, flags))
            s = sweeps[-1]
            print(
                f"soak-sweep {i}/{repeats}: exit {s['exit_code']} · {s['trials']} trials "
                f"({s['stopped_early']} stopped early, {s['not_finished']} not FINISHED) · {s['seconds']} s",
                flush=True,
            )
    failed_sweeps = sum(s["exit_code"] != 0 for s in sweeps)
    bad_runs = sum(s["not_finished"] for s in sweeps)
    report = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"make sweep EXP={experiment} SWEEP_FLAGS='{flags}' (search.grace_period 1)",
        "machine": bench.machine(),
        "sweeps": len(sweeps),
        "failed_sweeps": failed_sweeps,
        "trials": sum(s["trials"] for s in sweeps),
        "trials_stopped_early": sum(s["stopped_early"] for s in sweeps),
        "trial_runs_not_finished": bad_runs,
        "spurious_failures": failed_sweeps + bad_runs,
        "runs": sweeps,
    }
    atomic.write_text(out, json.dumps(report, indent=1) + "\n")
    print(
        f"soak-sweep: {len(sweeps)} sweeps, {report['trials']} trials ({report['trials_stopped_early']} "
        f"stopped early) · spurious failures: {failed_sweeps} sweeps failed, {bad_runs} trial runs "
        f"not FINISHED → {out}"
    )
    return 1 if report["spurious_failures"] else 0
