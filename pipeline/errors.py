"""Errors the CLI turns into one line on stderr and an exit code, never a traceback."""


class PipelineError(Exception):
    """A failure with a clear one-line reason (exit code 1)."""

    exit_code = 1


class UserError(PipelineError):
    """Bad input or bad configuration: the user can fix it (exit code 2)."""

    exit_code = 2
