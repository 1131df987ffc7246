"""A quiet TensorFlow start: its C++ start-up lines filtered out of stderr, everything else kept.

TF_CPP_MIN_LOG_LEVEL=3 does not stop them: TensorFlow's two shared libraries each log "oneDNN custom
operations are on" and "Could not find cuda drivers" *before* absl's logging is initialised (hence
the "All log messages before absl::InitializeLog() is called are written to STDERR" line), so no
environment variable reaches them (tried: TF_CPP_MIN_LOG_LEVEL, GLOG_minloglevel,
ABSL_MIN_LOG_LEVEL). They are written straight to file descriptor 2 during `import tensorflow`;
this module points descriptor 2 at a temporary file for that import only, then passes on every
line that is not one of those known start-up lines (a real import error still shows).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile

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


def quiet_logs() -> None:
    """Library chatter a user cannot act on, off the console (VERBOSE=1 keeps it): MLflow's INFO
    lines (schema creation, signature validation) and TensorFlow's retracing notes. Warnings stay."""
    if verbose():
        return
    # MLflow sets its loggers' level from MLFLOW_LOGGING_LEVEL when it is imported, which may be
    # after this (imports are lazy), and worker processes inherit the variable; a user's value wins
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("tensorflow").addFilter(_Retracing())
