"""The incoming folder of new-data batches: when a batch has arrived, what it is (its id and the
hash of its files), and where it goes — `consumed/` once ingested, `quarantine/` with a REASON.txt
when refused. Used by `make retrain` (workflows/retrain.py) under its lock.

Arrival: a folder in <incoming>/<dataset>/ counts at once when it holds an empty file named
`READY`, otherwise only when nothing in it (files, folders, dot-files such as an rsync's temporary
file) has changed for `retrain.settle_seconds`; until then it is left alone, unread.

Identity: a batch is its files (relative paths and bytes: sha256; READY and junk such as .DS_Store
left out). Its id is its folder name, checked against the name pattern (config.NAME_PATTERN); a
different batch under a name already used is ingested as `<name>-<sha8>`; the same files again
are quarantined as a duplicate (never trained twice); files the manifest records but that are
still in incoming/ (a cycle killed between its data commit and the move) are moved on.

Refused batches (bad names, links or special files anywhere, then whatever its source's reader
refuses) go to quarantine/<dataset>/<folder>/: a folder the pipeline creates, holding REASON.txt
(created with O_CREAT|O_EXCL|O_NOFOLLOW, uploader-chosen names escaped) and `batch/`, the batch as
it arrived. Nothing in consumed/ or quarantine/ is ever overwritten.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import hashlib
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Any

from pipeline import config, data
from pipeline.errors import PipelineError, UserError
from pipeline.faults import fault

READY = "READY"
REASON = "REASON.txt"
QUARANTINED = "batch"  # the batch as it arrived, inside its quarantine folder


@dataclasses.dataclass
class Arrival:
    """One entry of the incoming folder that has arrived, and what the cycle makes of it."""

    path: Path
    name: str  # the folder's name as text (bytes that are not UTF-8 kept as surrogates)
    files: list[Path] = dataclasses.field(default_factory=list)
    sha256: str | None = None
    id: str | None = None  # its id in the dataset, once assigned
    problem: str | None = None  # why it is refused before reading its files
    leftover: Any = None  # the manifest's record of it (data.BatchEntry): committed, not moved yet

    @property
    def shown(self) -> str:
        return data.shown(self.name)


def newest_change(path: Path) -> float:
    """The latest mtime or ctime of `path` and everything under it (lstat: nothing followed);
    ctime too, because a copy may set old mtimes but cannot set ctime."""
    newest, todo = 0.0, [path]
    while todo:
        current = todo.pop()
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            continue
        newest = max(newest, info.st_mtime, info.st_ctime)
        if stat.S_ISDIR(info.st_mode):
            try:
                todo += [Path(e.path) for e in os.scandir(current)]
            except OSError:
                continue
    return newest


def has_ready(path: Path) -> bool:
    try:
        info = os.lstat(path / READY)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size == 0


@dataclasses.dataclass
class Inbox:
    """A dataset's incoming, consumed and quarantine folders."""

    incoming: Path
    consumed: Path
    quarantine: Path
    settle_seconds: float

    @classmethod
    def of(cls, params, dataset: str) -> Inbox:
        found = config.retrain_params(params)
        folders = (data.resolve(f) / dataset for f in (found.incoming, found.consumed, found.quarantine))
        return cls(*folders, settle_seconds=found.settle_seconds)

    def entries(self) -> list[Path]:
        """The incoming folder's entries, junk left out, in byte order of their names."""
        if not self.incoming.is_dir():
            return []
        found = [Path(e.path) for e in os.scandir(self.incoming) if not data.readers.is_junk(e.name)]
        # (a name that is not UTF-8 still sorts: by its bytes)
        return sorted(found, key=lambda p: os.fsencode(p.name))

    def arrived(self, path: Path) -> bool:
        return has_ready(path) or time.time() - newest_change(path) >= self.settle_seconds

    def arrivals(self, manifest) -> tuple[list[Arrival], list[str]]:
        """(the batches that have arrived, with their identity; the names still arriving)."""
        ready, waiting = [], []
        for path in self.entries():
            if not self.arrived(path):
                waiting.append(data.shown(path.name))
                continue
            ready.append(self.identify(path))
        self.assign_ids(ready, manifest.batches if manifest else [])
        return ready, waiting

    def identify(self, path: Path) -> Arrival:
        """Name, files and content hash of an arrived entry, or the problem that refuses it."""
        arrival = Arrival(path, os.fsdecode(path.name))
        mode = os.lstat(path).st_mode
        if not stat.S_ISDIR(mode):
            arrival.problem = f"not a batch folder ({data.readers.special_kind(mode) or 'a file'})"
        elif not config.NAME_PATTERN.fullmatch(arrival.name):
            arrival.problem = f"batch name '{arrival.shown}' is not valid ({config.NAME_RULE})"
        else:
            try:
                arrival.files = [f for f in data.regular_files(path) if f != path / READY]
                arrival.sha256 = data.readers.hash_files(arrival.files, path, follow_symlinks=False)
            except UserError as exc:
                arrival.problem = data.readers.printable(str(exc))
        return arrival

    def assign_ids(self, arrivals: list[Arrival], recorded: list) -> None:
        """Each arrival's id; or that it repeats a batch (a duplicate), or that the manifest has it
        already but it was not moved yet (a leftover of a killed cycle). `recorded`: the
        manifest's data.BatchEntry records."""
        committed = {e.sha256: e for e in recorded if e.sha256}
        taken = {e.id for e in recorded}
        if self.consumed.is_dir():
            taken |= {os.fsdecode(p.name) for p in self.consumed.iterdir()}
        this_cycle: dict[str, str] = {}
        for arrival in arrivals:
            if arrival.problem:
                continue
            earlier = committed.get(arrival.sha256)
            if earlier and not os.path.lexists(self.consumed / earlier.id):
                arrival.leftover, arrival.id = earlier, earlier.id
            elif earlier or arrival.sha256 in this_cycle:
                first = earlier.id if earlier else this_cycle[arrival.sha256]
                arrival.problem = f"the same files as batch '{first}'; not trained twice"
            else:
                name = arrival.name
                arrival.id = name if name not in taken else f"{name[:91]}-{arrival.sha256[:8]}"
                if arrival.id in taken:
                    arrival.problem = f"batch id '{arrival.id}' is taken by a different batch"
                    continue
                taken.add(arrival.id)
                this_cycle[arrival.sha256] = arrival.id

    # ----------------------------------------------------------------------- where batches go

    def consume(self, arrival: Arrival) -> Path:
        return move(arrival.path, self.consumed / arrival.id)

    def refuse(self, arrival: Arrival, reason: str) -> Path:
        """Quarantine an arrival: a new folder of ours with REASON.txt, the batch moved in whole."""
        self.quarantine.mkdir(parents=True, exist_ok=True)
        folder = new_folder(self.quarantine, arrival.name)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        note = (
            f"batch: {arrival.shown}\nreason: {data.readers.printable(reason)}\nquarantined: {now}\n"
            f"arrived in: {data.shown(self.incoming)}\nits files, as they arrived: {QUARANTINED}/\n"
        )
        write_note(folder / REASON, note)
        fault("quarantine")
        move(arrival.path, folder / QUARANTINED)
        return folder

    def drop_half_quarantined(self) -> None:
        """A quarantine folder holding only its REASON.txt: a cycle was killed before moving the
        batch in (it is still in incoming/ and is quarantined again)."""
        if not self.quarantine.is_dir():
            return
        for folder in self.quarantine.iterdir():
            if folder.is_dir() and not folder.is_symlink() and os.listdir(folder) == [REASON]:
                shutil.rmtree(folder)


def new_folder(root: Path, name: str) -> Path:
    """A folder under `root` created now (mkdir, never an existing one): the batch's name when it
    is a valid name, else `batch-<hash of the name>`; `.2`, `.3`, ... when taken."""
    base = name
    if not config.NAME_PATTERN.fullmatch(name):
        base = "batch-" + hashlib.sha256(os.fsencode(name)).hexdigest()[:12]
    for n in range(1, 10_000):
        folder = root / (base if n == 1 else f"{base}.{n}")
        try:
            os.mkdir(folder)
            return folder
        except FileExistsError:
            continue
    raise PipelineError(f"{root}: no free quarantine folder for '{base}'")


def write_note(path: Path, text: str) -> None:
    """Create a note that did not exist (O_EXCL), never through a link (O_NOFOLLOW)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def move(source: Path, target: Path) -> Path:
    """Move a batch (folder, file or link, as it is) to a target that must not exist yet."""
    if os.path.lexists(target):
        raise PipelineError(f"{target} exists already; not overwriting it")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        if source.is_dir() and not source.is_symlink():  # another file system: copy, then remove
            shutil.copytree(source, target, symlinks=True)
            shutil.rmtree(source)
        else:
            shutil.copy2(source, target, follow_symlinks=False)
            source.unlink()
    return target
