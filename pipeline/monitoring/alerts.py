"""Retrain alerts: a scheduled `make retrain` that fails, or that promotes a new champion, is
announced to a webhook (RETRAIN_WEBHOOK=https://…, e.g. a Slack, Mattermost or Teams incoming
webhook, or any endpoint taking JSON).

The JSON body: {"text": one line, "event": "promoted" | "failed", "model", "versions":
{"champion", "previous_champion", "challenger"}, "reason", "host", "time"}. A webhook that is down,
slow or refuses never fails or hangs the job: the post gives up after TIMEOUT_SECONDS and says so
in one line. The URL's path and query often hold the secret (Slack's do), so only its scheme and
host are ever printed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import ipaddress
import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from pipeline import secrets
from pipeline.errors import PipelineError, UserError, first_line

VARIABLE = "RETRAIN_WEBHOOK"
TIMEOUT_SECONDS = 10.0  # the whole post, connect to last byte
CHAMPION, CHALLENGER = "champion", "challenger"  # the registry's aliases (training/registry.py)


@dataclasses.dataclass(frozen=True)
class Webhook:
    url: str

    @property
    def shown(self) -> str:
        """scheme://host[:port]: what may be printed (no user, password, path or query)."""
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}"


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def from_environment(environ=os.environ) -> Webhook | None:
    """The webhook RETRAIN_WEBHOOK names, checked (None when unset or empty).

    https only; plain http is allowed to a loopback address (a local relay, tests)."""
    url = environ.get(VARIABLE, "").strip()
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # .port raises on a bad port
    except ValueError:
        host, parts = None, None
    if parts is None or not host or parts.scheme not in ("https", "http"):
        raise UserError(f"{VARIABLE} is not an https:// URL (its value is not shown: it may hold a secret)")
    if parts.scheme == "http" and not loopback(host):
        raise UserError(
            f"{VARIABLE} {parts.scheme}://{host}: plain http only to a loopback address; use https://"
        )
    return Webhook(url)


def post(webhook: Webhook, payload: dict[str, Any], timeout: float = TIMEOUT_SECONDS) -> bool:
    """POST `payload` as JSON; True when the webhook answered 2xx. Never raises, never waits
    longer than `timeout` (a server that trickles its answer is abandoned), follows no redirect."""
    outcome: dict[str, str] = {}

    def send() -> None:
        import requests

        try:
            answer = requests.post(webhook.url, json=payload, timeout=timeout, allow_redirects=False)
            outcome["status"] = str(answer.status_code)
        except requests.Timeout:  # requests' own timeout can come before the join's: the same answer
            pass
        except requests.RequestException as exc:
            outcome["error"] = type(exc).__name__

    thread = threading.Thread(target=send, name="webhook", daemon=True)
    thread.start()
    thread.join(timeout)
    status = outcome.get("status", "")
    if status.startswith("2"):
        print(f"alert: {payload['event']} {payload.get('model') or ''} sent to {webhook.shown}".rstrip())
        return True
    reason = (
        f"answered {status}"
        if status
        else f"failed ({outcome['error']})"
        if "error" in outcome
        else f"no answer in {timeout:.0f} s"
    )
    print(
        f"alert: webhook {webhook.shown} {reason}; the {payload['event']} alert was not delivered",
        file=sys.stderr,
    )
    return False


def champions(model: str | None) -> dict[str, dict[str, str]]:
    """{registered model: {alias: version}} of the champion and challenger aliases now."""
    import mlflow

    from pipeline.training import tracking

    tracking.configure()
    client = mlflow.MlflowClient()
    names = [model] if model else [m.name for m in client.search_registered_models(max_results=1000)]
    found = {}
    for name in names:
        with contextlib.suppress(mlflow.exceptions.MlflowException):  # not registered yet
            aliases = client.get_registered_model(name).aliases
            found[name] = {a: str(v) for a, v in aliases.items() if a in (CHAMPION, CHALLENGER)}
    return found


def gate_reason(model: str, version: str) -> str:
    import mlflow

    with contextlib.suppress(mlflow.exceptions.MlflowException):
        return mlflow.MlflowClient().get_model_version(model, version).tags.get("gate.reason", "")
    return ""


def payload(event: str, model: str | None, text: str, versions: dict, reason: str) -> dict[str, Any]:
    """The alert's JSON; its texts redacted (an MLflow error repeats the store URI, password and all)."""
    text, reason = secrets.redact(text), secrets.redact(reason)
    return {
        "text": text,
        "event": event,
        "model": model,
        "versions": versions,
        "reason": reason,
        "host": socket.gethostname(),
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


class Tee(io.TextIOBase):
    """Writes through to the real stdout and keeps the lines (the cycle's summary lines)."""

    def __init__(self, target):
        self.target, self.lines, self._partial = target, [], ""

    def write(self, text: str) -> int:
        self.target.write(text)
        self._partial += text
        *done, self._partial = self._partial.split("\n")
        self.lines.extend(done)
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def isatty(self) -> bool:  # Keras picks progress bars or one line per epoch from this
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()


def summary_line(lines: list[str], model: str) -> str:
    prefix = f"retrain {model}:"
    return next((line.strip() for line in reversed(lines) if line.startswith(prefix)), "")


def announced(webhook: Webhook, cycle: Callable[[], int], model: str | None) -> int:
    """Run a retrain cycle; announce a failure (then re-raise it) or every promotion it made."""
    before = snapshot(model)
    tee = Tee(sys.stdout)
    try:
        with contextlib.redirect_stdout(tee):
            code = cycle()
    except (Exception, KeyboardInterrupt) as exc:
        failed(webhook, model, exc, tee.lines)
        raise
    if code:
        failed(webhook, model, PipelineError(f"exit code {code}"), tee.lines)
        return code
    after = snapshot(model) if before is not None else None
    for name, now in (after or {}).items():
        previous = before.get(name, {}).get(CHAMPION)
        if now.get(CHAMPION) and now.get(CHAMPION) != previous:
            text = summary_line(tee.lines, name) or f"retrain {name}: v{now[CHAMPION]} promoted"
            versions = {**now, "previous_champion": previous}
            post(webhook, payload("promoted", name, text, versions, gate_reason(name, now[CHAMPION])))
    return 0


def snapshot(model: str | None) -> dict[str, dict[str, str]] | None:
    """champions(model), or None (said in one line) when the registry cannot be read: the cycle
    still runs, and its failure is still announced."""
    try:
        return champions(model)
    except Exception as exc:
        reason = first_line(exc)
        print(
            f"alert: cannot read the registry ({reason}); promotions will not be announced", file=sys.stderr
        )
        return None


def failed(webhook: Webhook, model: str | None, exc: BaseException, lines: list[str]) -> None:
    reason = first_line(exc)
    if isinstance(exc, KeyboardInterrupt):
        reason = f"interrupted ({reason})" if reason != "KeyboardInterrupt" else "interrupted"
    done = "; ".join(line.strip() for line in lines if line.startswith("retrain "))
    text = f"retrain {model or '(every registered model)'} failed: {reason}"
    versions: dict = {}
    with contextlib.suppress(Exception):  # the store itself may be what failed
        versions = champions(model).get(model, {}) if model else {}
    post(
        webhook, payload("failed", model, text + (f" · before it: {done}" if done else ""), versions, reason)
    )
