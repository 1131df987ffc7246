"""Errors the CLI turns into one line on stderr and an exit code, never a traceback."""

from __future__ import annotations

import dataclasses
import importlib
import os
import shlex

from pipeline import secrets

LONGEST = 300  # characters of a third-party message quoted in one of the pipeline's lines


class PipelineError(Exception):
    """A failure with a clear one-line reason (exit code 1)."""

    exit_code = 1


class UserError(PipelineError):
    """Bad input or bad configuration: the user can fix it (exit code 2)."""

    exit_code = 2


def first_line(exc: BaseException, typed: bool = False) -> str:
    """The first line of an exception's message, passwords hidden, at most LONGEST characters; the
    exception's type when it has no message (`typed`: always, as "Type: line")."""
    text = str(exc).strip()
    line = secrets.redact(text.splitlines()[0])[:LONGEST] if text else ""
    name = type(exc).__name__
    if not line:
        return name
    return f"{name}: {line}" if typed else line


def require(module: str, extra: str, feature: str):
    """Import an optional package, or fail in one line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.partition(".")[0]:
            raise
    raise UserError(
        f"{feature} needs the '{extra}' extra ({module} is not installed): "
        f"pip install -c requirements.lock 'dl-pipeline[{extra}]'"
    )


@dataclasses.dataclass(frozen=True)
class Option:
    """A command's option as the user typed it, for its messages: `--model x`, or `MODEL=x` when make
    passed the value through the environment (the Makefile exports PIPELINE_<TARGET>_<VARIABLE>)."""

    flag: str  # e.g. --model
    variable: str  # make's, e.g. MODEL
    environ: str  # what the Makefile exports, e.g. PIPELINE_PREDICT_MODEL

    def by_make(self, value) -> bool:
        return self.environ in os.environ and os.environ[self.environ] == str(value)

    def name(self, value) -> str:
        """`MODEL=` or `--model` (what to type again)."""
        return f"{self.variable}=" if self.by_make(value) else f"{self.flag} "

    def shown(self, value) -> str:
        """`MODEL=x` or `--model x` (`MODEL='a b'` where a shell would need quotes)."""
        text = str(value)
        return f"{self.name(value)}{text if shlex.quote(text) == text else repr(text)}"
