"""`make ui`: print a direct link to each task's runs table, then serve the MLflow UI locally.

MLflow 3.17 opens an experiment on its GenAI overview; the training runs table needs the
`workflowType=machine_learning` query, so the links carry it.
"""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline import secrets
from pipeline.errors import UserError
from pipeline.training import tracking


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
    base = secrets.redact(uri.rstrip("/")) if remote else f"http://{host}:{port}"
    links = run_links(base)
    print(f"MLflow UI for {tracking.shown_uri()}")
    for name, url in links or [("(no runs yet: run `make train-all`)", base)]:
        print(f"  {name:<26} {url}")
    if links_only or remote:  # a tracking server serves its own UI
        return 0
    command = [sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port)]
    if tracking.uses_default_store():
        command += ["--default-artifact-root", (tracking.project_root() / "mlruns" / "artifacts").as_uri()]
    print("serving (Ctrl-C to stop):", " ".join(command), flush=True)
    # the store URI goes through the environment (mlflow reads it there): a password in it stays
    # out of the process list, which every user of the machine can read
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_BACKEND_STORE_URI": uri}
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0


def backend_store(db: str):
    """The backend store's SQLAlchemy URL, checked: a bad or unreachable store fails here in one
    line, not in `mlflow server` (a long traceback, repeated by each worker)."""
    import sqlalchemy
    from mlflow.store.db.db_types import DATABASE_ENGINES
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    example = "e.g. postgresql://user:password@host:5432/mlflow"
    try:
        url = sqlalchemy.make_url(db)
    except ArgumentError:
        raise UserError(f"--db: not a database URI ({example})") from None
    if url.drivername == "postgresql":  # SQLAlchemy 2.1 would pick psycopg 3; we ship psycopg2
        url = url.set(drivername="postgresql+psycopg2")
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() not in DATABASE_ENGINES:
        raise UserError(f"--db {shown}: the scheme must be one of {', '.join(DATABASE_ENGINES)} ({example})")
    # a quick connect: wrong host, port, password or database name answer here in seconds
    timeout = {} if url.get_backend_name() == "sqlite" else {"connect_timeout": 10}
    try:
        engine = sqlalchemy.create_engine(url, connect_args=timeout, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect():
            pass
    except ImportError as exc:
        raise UserError(f"--db {shown}: its database driver is not installed ({exc})") from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise UserError(f"--db {shown}: cannot connect to the backend store: {reason}") from None
    return url


def server(host: str, port: int, db: str | None, artifacts: str | None) -> int:
    """A shared tracking server: SQL backend store + artifacts served (proxied) by the server."""
    root = tracking.project_root() / "mlruns" / "server"
    root.mkdir(parents=True, exist_ok=True)
    db = db or f"sqlite:///{root / 'mlflow.db'}"
    artifacts = artifacts or str(root / "artifacts")
    url = backend_store(db)
    shown = url.render_as_string(hide_password=True)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--artifacts-destination",
        artifacts,
        "--host",
        host,
        "--port",
        str(port),
    ]
    print(f"tracking server on http://{host}:{port} · backend {shown} · artifacts {artifacts}")
    print(f"  clients: export MLFLOW_TRACKING_URI=http://{host}:{port}", flush=True)
    # the backend URI goes through the environment: its password stays out of the process list
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_BACKEND_STORE_URI": url.render_as_string(hide_password=False),
    }
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0
