"""What a pipeline command sets for its span, and a quiet TensorFlow start.

`quiet()` is the span of a command: the whole process for the CLI (`cli.run`), one call for the
Python API (pipeline/api.py), which leaves the caller's process as it found it. For that span it
sets the environment below where unset and keeps library chatter off the console; then puts both
back. Nothing is changed at import.

A quiet TensorFlow start: its C++ start-up lines filtered out of stderr, everything else kept.

TF_CPP_MIN_LOG_LEVEL=3 does not stop them: TensorFlow's two shared libraries each log "oneDNN custom
operations are on" and "Could not find cuda drivers" *before* absl's logging is initialised (hence
the "All log messages before absl::InitializeLog() is called are written to STDERR" line), so no
environment variable reaches them (tried: TF_CPP_MIN_LOG_LEVEL, GLOG_minloglevel,
ABSL_MIN_LOG_LEVEL). They are written straight to file descriptor 2 during `import tensorflow`;
this module points descriptor 2 at a temporary file for that import only, then passes on every
line that is not one of those known start-up lines (a real import error still shows).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping

# set for a command's span where unset (a user's value wins)
ENVIRONMENT = {
    # TensorFlow's C++ log lines; TensorFlow reads it once, when it first logs (on its import)
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
# and, unless VERBOSE=1, MLflow's INFO lines (schema creation, signature validation, system
# metrics starting) off: MLflow sets its loggers' level from it when it is imported, which may be
# later in the span (imports are lazy); worker processes inherit it
QUIET_ENVIRONMENT = {"MLFLOW_LOGGING_LEVEL": "WARNING"}

# start-up lines that say nothing a user can act on (TensorFlow 2.21 on a CPU-only machine)
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:. ]+\d+ (port\.cc|cudart_stub\.cc|cpu_feature_guard\.cc|cuda_executor\.cc)[:\d]*\] .*"
    r"|E\d{4} [\d:. ]+\d+ cuda_platform\.cc[:\d]*\] failed call to cuInit.*"
    r"|To enable the following instructions: .* in other operations, rebuild TensorFlow .*)$"
)


def verbose() -> bool:
    """VERBOSE=1 (or PIPELINE_VERBOSE=1): every line TensorFlow, MLflow and Keras print, per-epoch
    lines instead of progress bars and summaries."""
    return bool(os.environ.get("VERBOSE") or os.environ.get("PIPELINE_VERBOSE"))


def quiet_tensorflow() -> None:
    """Import TensorFlow (and Keras) now, without its start-up chatter; a no-op once imported.

    VERBOSE=1 (or PIPELINE_VERBOSE=1) keeps every line.
    """
    if "tensorflow" in sys.modules or verbose():
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401 - imports TensorFlow, the point of this function
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read().decode(errors="replace").splitlines()
                if not NOISE.match(line)
            ]
    if kept:
        print("\n".join(kept), file=sys.stderr)


class _Retracing(logging.Filter):
    """TensorFlow's "N out of the last M calls ... triggered tf.function retracing": in a process
    that trains several models in turn (train-all's workers) every new model counts as a retrace;
    nothing a user can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextlib.contextmanager
def environment(defaults: Mapping[str, str] = {}, put_back: Iterable[str] = ()) -> Iterator[None]:
    """`defaults` set where unset for the block; those and the `put_back` variables as they were after."""
    saved = {name: os.environ.get(name) for name in [*defaults, *put_back]}
    os.environ.update({name: value for name, value in defaults.items() if saved[name] is None})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """A command's span: ENVIRONMENT set; unless VERBOSE=1 (every line kept), QUIET_ENVIRONMENT,
    MLflow's logger at WARNING and TensorFlow's retracing notes off. Warnings stay. All put back
    after (MLflow's logger to the level it had)."""
    loud = verbose()
    with environment({**ENVIRONMENT, **({} if loud else QUIET_ENVIRONMENT)}):
        if loud:
            yield
            return
        mlflow = logging.getLogger("mlflow")
        level, retracing = mlflow.level, _Retracing()
        mlflow.setLevel(logging.WARNING)
        logging.getLogger("tensorflow").addFilter(retracing)
        try:
            yield
        finally:
            mlflow.setLevel(level)
            logging.getLogger("tensorflow").removeFilter(retracing)
