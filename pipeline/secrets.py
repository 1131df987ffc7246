"""Passwords out of every output: the one redaction the pipeline applies wherever it prints or logs.

A tracking or backend-store URI may carry a password (postgresql://user:password@host/db). MLflow
and SQLAlchemy put the whole URI into their messages and exceptions, so the pipeline redacts at
its boundaries, not only in its own messages: the run summaries, `init-store`, `ui` and `server`
lines, the report files, the CLI's error lines and tracebacks, and every Python log record once
`redact_logs()` ran (the CLI calls it first). Child processes (`mlflow ui`/`server`) get the URI in
their environment, never as an argument (`ps` shows arguments to every user).
"""

from __future__ import annotations

import logging
import os
import re
import urllib.parse
import warnings

HIDDEN = "***"
# the environment variables whose URIs may carry a password
URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_BACKEND_STORE_URI", "MLFLOW_REGISTRY_URI")
# scheme://user:password@host: the password ends at the last '@' before the host (an '@' in it,
# unencoded, is a common slip), and holds no '/', '?' or '#' (those end a URI's authority)
USERINFO = re.compile(
    r"(\b[a-zA-Z][\w+.-]*://[^:/?#\s@'\"]*:)([^\s'\"/?#]*?)@(?=[^\s@/'\"]*(?:[/?#\s'\"]|$))"
)
QUERY_PASSWORD = re.compile(r"(?i)([?&;](?:password|passwd|pwd)=)[^&\s'\"]*")
MIN_LITERAL = 4  # shorter passwords are hidden inside URIs only (replacing "ab" everywhere would garble text)


def known_passwords() -> set[str]:
    """The passwords in this process's store URIs, as written and percent-decoded."""
    found: set[str] = set()
    for name in URI_VARIABLES:
        value = os.environ.get(name) or ""
        match = USERINFO.search(value)
        password = match.group(2) if match else ""
        if password:
            found |= {password, urllib.parse.unquote(password)}
    return {p for p in found if len(p) >= MIN_LITERAL}


def redact(text: str) -> str:
    """`text` with every URI's password (and every known one, wherever it appears) replaced by ***."""
    text = USERINFO.sub(rf"\g<1>{HIDDEN}@", text)
    text = QUERY_PASSWORD.sub(rf"\g<1>{HIDDEN}", text)
    for password in sorted(known_passwords(), key=len, reverse=True):
        text = text.replace(password, HIDDEN)
    return text


def redact_logs() -> None:
    """Redact every log record (MLflow's and SQLAlchemy's too) as it is made; once per process."""
    if getattr(logging.getLogRecordFactory(), "redacting", False):
        return
    make = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = make(*args, **kwargs)
        message = record.getMessage()
        shown = redact(message)
        if shown != message:
            record.msg, record.args = shown, None
        if record.exc_info:  # the traceback's text, formatted now (a Formatter keeps a set exc_text)
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    factory.redacting = True
    logging.setLogRecordFactory(factory)
    show = warnings.formatwarning
    warnings.formatwarning = lambda *args, **kwargs: redact(show(*args, **kwargs))
