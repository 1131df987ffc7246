"""`make ui`: print a direct link to each task's runs table, then serve the MLflow UI locally.

MLflow 3.17 opens an experiment on its GenAI overview; the training runs table needs the
`workflowType=machine_learning` query, so the links carry it.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

from pipeline import atomic, secrets
from pipeline.errors import UserError, first_line, require
from pipeline.training import tracking

# MLflow's server starts a job runner beside its web workers (more Python processes, starting and
# polling) for GenAI jobs (LLM judges, trace roll-ups) that no run of this pipeline creates; off
# unless the user turns it on.
JOB_EXECUTION = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 5000  # `make ui`


def server_env(uri: str, **extra: str) -> dict[str, str]:
    """The environment of `mlflow ui`/`mlflow server`: the store URI (never an argument: a password
    in it would show in the process list, which every user of the machine can read), `extra`, and
    MLflow's job runner off unless the user's environment says otherwise."""
    return {
        JOB_EXECUTION: "false",
        **os.environ,
        **extra,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_BACKEND_STORE_URI": uri,
    }


def experiment_link(base_url: str, experiment_id: str) -> str:
    """The UI's page of one task's training runs."""
    return f"{base_url}/#/experiments/{experiment_id}?workflowType=machine_learning"


def run_link(base_url: str, experiment_id: str, run_id: str) -> str:
    """The UI's page of one run."""
    return f"{base_url}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def run_links(base_url: str) -> list[tuple[str, str]]:
    import mlflow

    tracking.configure()
    experiments = mlflow.search_experiments(order_by=["name"])
    return [(e.name, experiment_link(base_url, e.experiment_id)) for e in experiments if e.name != "Default"]


def base_url(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    """Where the UI is: a tracking server's own address (its password hidden), else `make ui`'s."""
    uri = tracking.configure()
    return secrets.redact(uri.rstrip("/")) if is_remote(uri) else f"http://{host}:{port}"


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on host:port already (a port left in TIME_WAIT is free: the
    server reuses it)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise UserError(f"cannot serve on {host}:{port}: {exc.strerror}") from None
    return False


def check_port(host: str, port: int) -> None:
    """Refuse a busy port in one line naming make's PORT=, before any link is printed."""
    if not port_in_use(host, port):
        return
    free = next((p for p in range(port + 1, port + 100) if not port_in_use(host, p)), port + 1)
    raise UserError(f"port {port} is in use (another MLflow UI?); choose another: make ui PORT={free}")


def main(host: str, port: int, links_only: bool = False) -> int:
    uri = tracking.configure()
    remote = is_remote(uri)
    if not (links_only or remote):  # only a local UI needs the port
        check_port(host, port)
    base = base_url(host, port)
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
    # one person's browser: one web worker (MLflow's default, 4, is for a team's server);
    # MLFLOW_WORKERS overrides it
    env = server_env(uri, MLFLOW_WORKERS=os.environ.get("MLFLOW_WORKERS", "1"))
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
    if url.get_backend_name() == "postgresql":
        require("psycopg2", extra="postgres", feature=f"--db {shown}")
    # a quick connect: wrong host, port, password or database name answer here in seconds
    timeout = {} if url.get_backend_name() == "sqlite" else {"connect_timeout": 10}
    try:
        engine = sqlalchemy.create_engine(url, connect_args=timeout, poolclass=sqlalchemy.pool.NullPool)
        with engine.connect():
            pass
    except ImportError as exc:
        raise UserError(f"--db {shown}: its database driver is not installed ({exc})") from None
    except SQLAlchemyError as exc:
        reason = first_line(getattr(exc, "orig", None) or exc)
        raise UserError(f"--db {shown}: cannot connect to the backend store: {reason}") from None
    return url


AUTH_CONFIG = "basic_auth.ini"  # MLflow's basic-auth settings, generated beside the server's store
AUTH_DB = "basic_auth.db"  # its user database
SECRET_KEY = "MLFLOW_FLASK_SERVER_SECRET_KEY"  # MLflow's names for both secrets
ADMIN_PASSWORD = "MLFLOW_AUTH_ADMIN_PASSWORD"
MIN_PASSWORD = 12  # MLflow refuses shorter passwords (mlflow.utils.validation)


def basic_auth(root: Path) -> dict[str, str]:
    """MLflow's basic-auth app for `server --auth`: checks its two secrets in the environment and
    writes its config under mlruns/server/ (MLflow's default puts the user database in the
    working directory). Returns the variables the server process needs; no secret is written."""
    if not os.environ.get(SECRET_KEY):
        raise UserError(
            f"--auth needs {SECRET_KEY} in the environment (e.g. export {SECRET_KEY}=$(openssl rand -hex 32))"
        )
    users = root / AUTH_DB
    password = os.environ.get(ADMIN_PASSWORD, "")
    if not users.exists() and len(password) < MIN_PASSWORD:
        missing = "is not set" if not password else f"is shorter than {MIN_PASSWORD} characters"
        raise UserError(
            f"--auth: {ADMIN_PASSWORD} {missing}; it sets the admin's password on the first start"
        )
    require("flask_wtf", extra="auth", feature="--auth")  # MLflow's basic-auth app imports it
    config = root / AUTH_CONFIG
    atomic.write_text(
        config,
        "# written by `python -m pipeline server --auth`; the admin password comes from the environment\n"
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{users}\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # MLflow checks the password (scrypt, slow by design) on every request, so each logged
        # metric or file pays it; cached per worker, a changed password still works there a minute
        "auth_cache_ttl_seconds = 60\n",
    )
    return {"MLFLOW_AUTH_CONFIG_PATH": str(config)}


def server(host: str, port: int, db: str | None, artifacts: str | None, auth: bool = False) -> int:
    """A shared tracking server: SQL backend store + artifacts served (proxied) by the server;
    with `auth`, MLflow's basic-auth app (users and permissions) in front of it."""
    root = tracking.project_root() / "mlruns" / "server"
    root.mkdir(parents=True, exist_ok=True)
    db = db or f"sqlite:///{root / 'mlflow.db'}"
    artifacts = artifacts or str(root / "artifacts")
    url = backend_store(db)
    shown = url.render_as_string(hide_password=True)
    extra = basic_auth(root) if auth else {}
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
        *(["--app-name", "basic-auth"] if auth else []),
    ]
    print(f"tracking server on http://{host}:{port} · backend {shown} · artifacts {artifacts}")
    if auth:
        print(f"  basic auth: users in {root / AUTH_DB}; admin user 'admin' (password: ${ADMIN_PASSWORD})")
        print("  clients: export MLFLOW_TRACKING_USERNAME=… MLFLOW_TRACKING_PASSWORD=…")
    print(f"  clients: export MLFLOW_TRACKING_URI=http://{host}:{port}", flush=True)
    # the backend URI and the auth secrets go through the environment, never the process list
    env = server_env(url.render_as_string(hide_password=False), **extra)
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0
