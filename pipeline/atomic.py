"""Atomic file writes: a temp file in the same folder, fsync, then rename over the target.

A reader (or a process killed half-way) sees either the old file or the new one, never a torn one.
Also the file lock processes take turns with (`file_lock`: the retrain lock, layout.retrain_lock()).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import sys
import tempfile
from pathlib import Path

from pipeline.errors import PipelineError


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb"):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_if_changed(path: Path, text: str) -> bool:
    """Write only when the content differs, so make sees a new mtime only on real change."""
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return False
    write_text(path, text)
    return True


def sync_folder(path: Path) -> None:
    """fsync a folder, so the names created or renamed in it survive a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def running(pid: int) -> bool:
    """Whether process `pid` is still there (a lock's or a staging folder's owner)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@contextlib.contextmanager
def file_lock(path: Path, holder: str, wait: bool):
    """An exclusive lock on the file `path`, held for the block; released when the process ends,
    however it ends (flock). wait=False: exit at once (PipelineError, one line) when another
    process holds it; wait=True: say once what it waits for, and wait. The file names its holder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held for the whole block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            held_by = handle.read().strip() or "unknown"
            if not wait:
                raise PipelineError(
                    f"another retrain is running ({held_by}; lock {path}); not starting a second one"
                ) from None
            # said once, so that a command that seems to hang says what it waits for
            print(f"{holder}: waiting for {held_by} to release {path}", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        handle.write(f"pid {os.getpid()} ({holder}) since {since}")
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the lock, also when the process is killed
