"""Fault injection for the crash tests and `make soak`: with PIPELINE_FAULT=<step> the process kills
itself (kill -9: no cleanup, no finally) right after that step's effect. Off by default.

Steps: append, stage, files (data versions); quarantine, train, decide, commit, register, gate,
move (a retrain cycle, in its order; `files` comes between decide and commit).
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "PIPELINE_FAULT"


def fault(step: str) -> None:
    if os.environ.get(FAULT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
