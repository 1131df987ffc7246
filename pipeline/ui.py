"""`make ui`: print a direct link to each task's runs table, then serve the MLflow UI locally.

MLflow 3.17 opens an experiment on its GenAI overview; the training runs table needs the
`workflowType=machine_learning` query, so the links carry it.
"""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline import tracking


def run_links(base_url: str) -> list[tuple[str, str]]:
    import mlflow

    tracking.configure()
    experiments = mlflow.search_experiments(order_by=["name"])
    return [
        (e.name, f"{base_url}/#/experiments/{e.experiment_id}?workflowType=machine_learning")
        for e in experiments
        if e.name != "Default"
    ]


def main(host: str, port: int, links_only: bool = False) -> int:
    uri = tracking.configure()
    remote = uri.startswith(("http://", "https://"))
    base = uri.rstrip("/") if remote else f"http://{host}:{port}"
    links = run_links(base)
    print(f"MLflow UI for {uri}")
    for name, url in links or [("(no runs yet: run `make train-all`)", base)]:
        print(f"  {name:<26} {url}")
    if links_only or remote:  # a tracking server serves its own UI
        return 0
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
    ]
    if tracking.uses_default_store():
        command += ["--default-artifact-root", (tracking.project_root() / "mlruns" / "artifacts").as_uri()]
    print("serving (Ctrl-C to stop):", " ".join(command), flush=True)
    try:
        return subprocess.call(command, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    except KeyboardInterrupt:
        return 0


def server(host: str, port: int, db: str | None, artifacts: str | None) -> int:
    """A shared tracking server: SQL backend store + artifacts served (proxied) by the server."""
    root = tracking.project_root() / "mlruns" / "server"
    root.mkdir(parents=True, exist_ok=True)
    db = db or f"sqlite:///{root / 'mlflow.db'}"
    artifacts = artifacts or str(root / "artifacts")
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        db,
        "--artifacts-destination",
        artifacts,
        "--host",
        host,
        "--port",
        str(port),
    ]
    print(f"tracking server on http://{host}:{port} · backend {db} · artifacts {artifacts}")
    print(f"  clients: export MLFLOW_TRACKING_URI=http://{host}:{port}", flush=True)
    try:
        return subprocess.call(command, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    except KeyboardInterrupt:
        return 0
