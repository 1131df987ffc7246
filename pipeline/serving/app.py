"""`make serve` / `python -m pipeline serve MODEL`: a registered model's alias over HTTP, with
MLflow's scoring protocol, on FastAPI + uvicorn (docs/serving.md).

Why not `mlflow models serve`: it loads one model once (it cannot follow `champion` as retraining
moves it), answers /version with MLflow's own version, returns stack traces on errors and loads
any model flavour. This server loads through pipeline/training/loading.py only (what the pipeline
logs, checked before anything of it runs), follows the alias (serving/follow.py), answers every bad
request with one line (serving/scoring.py) and compares what it is asked with the model's training
data once a minute (a run `serve-<model>` in the MLflow experiment `predictions`).
"""

from __future__ import annotations

import dataclasses
import logging
import socket

from pipeline import startup
from pipeline.config import NAME_PATTERN, NAME_RULE
from pipeline.errors import Option, UserError
from pipeline.serving import follow, scoring
from pipeline.training import resolve, tracking

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MODEL = Option("serve", "SERVE_MODEL", "PIPELINE_SERVE_MODEL")
ALIAS = Option("--alias", "ALIAS", "PIPELINE_SERVE_ALIAS")
PORT = Option("--port", "PORT", "PIPELINE_SERVE_PORT")
HOST = Option("--host", "HOST", "PIPELINE_SERVE_HOST")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, made here so that a port in use is one line before the model loads."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(
            f"{HOST.shown(host)}: not an address of this machine ({exc.strerror}); e.g. "
            f"{HOST.name(host)}127.0.0.1 (this machine only) or {HOST.name(host)}0.0.0.0 (every interface)"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UserError(
            f"cannot listen on {host}:{port} ({exc.strerror}); give another port, "
            f"e.g. {PORT.name(port)}{port + 1}"
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def check_names(settings: follow.Settings) -> None:
    for option, value in ((MODEL, settings.name), (ALIAS, settings.alias)):
        if not NAME_PATTERN.fullmatch(value):
            raise UserError(f"{option.shown(value)} is not a registered model name or alias ({NAME_RULE})")
    if settings.poll <= 0 or settings.drift_seconds <= 0:
        raise UserError(
            f"--poll {settings.poll:g} and --drift-seconds {settings.drift_seconds:g} must be positive "
            "seconds, e.g. --poll 10 --drift-seconds 60 (make: SERVE_FLAGS='--poll 10')"
        )


def main(settings: follow.Settings, host: str = "127.0.0.1", port: int = 5001, limits=None) -> int:
    import uvicorn

    limits = limits or scoring.Limits()
    # MLflow warns on every request that holds keys its signature does not know: a client could fill the log
    logging.getLogger("mlflow.models.utils").setLevel(logging.ERROR)
    check_names(settings)
    sock = bind(host, port)
    tracking.configure()
    said = MODEL.shown(settings.name)
    name = resolve.registered_name(settings.name, said)  # an experiment: the model it registers
    if name != settings.name:
        follow.say(f"{said} is an experiment: serving the model it registers, {name}")
    settings = dataclasses.replace(settings, name=name, said=said)
    startup.quiet_tensorflow()
    follower = follow.Follower(settings)
    served = follower.load()  # a model that cannot be served stops here, in one line
    shown = f"[{host}]" if ":" in host else host
    follow.say(
        f"{served.name} v{served.version} ({settings.alias}, run {served.run_id[:8]}, loaded in "
        f"{served.seconds:.1f} s) on http://{shown}:{port}/invocations · follows @{settings.alias} every "
        f"{settings.poll:g} s · drift every {settings.drift_seconds:g} s → MLflow experiment "
        f"'{follow.EXPERIMENT}' · Ctrl-C stops"
    )
    if host not in LOOPBACK:
        follow.say(f"listening on {host}: anyone who reaches this address can query the model (no login)")
    app = scoring.create_app(follower, limits)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=10)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
