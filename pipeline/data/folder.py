"""An image folder decoded on every core, each file read once, reusing what the previous cache holds.

Each worker reads a file once (up to the byte cap), hashes those bytes (the split key: the file's
name and content, as before; and its content alone, the key of its decoded image) and decodes them
as uint8 at the dataset's size (JPEGs at a reduced size where Pillow's `draft` can). A file whose
content the previous cache already holds at the same settings is not decoded again: its image is
copied from there. Decoded images go straight to a file on disk in arrival order (`Pool`), so the
process holds one image per worker in flight, never the folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import multiprocessing
import os
from pathlib import Path

from pipeline import images
from pipeline.data import readers
from pipeline.errors import UserError

POOL_FROM = 64  # smaller folders are decoded in this process (starting workers costs more)
MAX_FILE_BYTES = 64 * 2**20  # the default cap on an image file's size (max_file_bytes)


@dataclasses.dataclass(frozen=True)
class Decoder:
    """What every worker needs to read one file (picklable: sent once to each worker)."""

    shape: tuple[int, int, int]
    max_pixels: int
    max_bytes: int
    known: frozenset[bytes]  # content digests the previous cache holds: not decoded again

    def __call__(self, path: Path) -> tuple[str, bytes, bytes | None, str | None, bool]:
        """(split key, content digest, uint8 pixels or None when known, problem, whether the problem
        is an unreadable image rather than a refused file)."""
        try:
            with readers.open_regular(path, follow_symlinks=True) as handle:
                raw = handle.read(self.max_bytes + 1)
        except UserError as exc:
            return "", b"", None, str(exc), False
        name = os.fsencode(path.name)
        key = hashlib.sha256(len(name).to_bytes(4, "big") + name + raw + b"\0").hexdigest()
        digest = hashlib.sha256(raw).digest()
        if len(raw) > self.max_bytes:
            return key, digest, None, f"{readers.shown(path)}: larger than {self.max_bytes} bytes", True
        if digest in self.known:
            return key, digest, None, None, False
        try:
            pixels = images.decode_uint8(raw, self.shape, self.max_pixels)
        except images.ImageError as exc:
            return key, digest, None, f"{readers.shown(path)}: {exc}", True
        return key, digest, pixels.tobytes(), None, False


@dataclasses.dataclass
class Decoded:
    """Every readable file's facts, in file order; its pixels are row `rows[i]` of `source[i]`."""

    keys: list[str] = dataclasses.field(default_factory=list)  # split keys (name + content)
    digests: list[bytes] = dataclasses.field(default_factory=list)  # content sha256
    labels: list[int] = dataclasses.field(default_factory=list)
    source: list[int] = dataclasses.field(default_factory=list)  # 0: the pool file, 1...: old splits
    rows: list[int] = dataclasses.field(default_factory=list)
    unreadable: list[dict[str, str]] = dataclasses.field(default_factory=list)


def results(decoder: Decoder, files: list[Path], progress):
    """decoder(file) for each file, in order: in a process pool for larger folders."""
    if len(files) < POOL_FROM:
        for f in files:
            yield decoder(f)
            progress()
        return
    # fork: the workers need no import (a spawned worker would re-run `python -m pipeline`)
    context = multiprocessing.get_context("fork")
    with context.Pool(os.cpu_count() or 1) as pool:
        for result in pool.imap(decoder, files, chunksize=8):
            yield result
            progress()


def decode_folder(
    classes,
    decoder: Decoder,
    pool_file: Path,
    reuse: dict[bytes, tuple[int, int]],
    max_unreadable: int,
    root: Path,
    progress,
) -> Decoded:
    """Decode every file of `classes` [(folder, files)] into `pool_file` (uint8 records in arrival
    order, source 0); a file whose content is in `reuse` (digest → (source, row) of the previous
    cache's splits, sources 1, 2, ...) is not decoded.
    Unreadable images: refused at the first (max_unreadable 0) or past `max_unreadable`."""
    files = [f for _, fs in classes for f in fs]
    labels = [label for label, (_, fs) in enumerate(classes) for _ in fs]
    out = Decoded()
    written = 0
    with open(pool_file, "wb") as pool:
        for label, f, (key, digest, pixels, problem, unreadable) in zip(
            labels, files, results(decoder, files, progress), strict=True
        ):
            if problem and not (unreadable and max_unreadable):
                raise UserError(problem)
            if problem:
                out.unreadable.append({"file": readers.shown(f.relative_to(root)), "reason": problem})
                if len(out.unreadable) > max_unreadable:
                    raise UserError(
                        f"{readers.shown(root)}: more than max_unreadable={max_unreadable} unreadable "
                        f"images (the last: {problem})"
                    )
                continue
            if pixels is None:
                source, row = reuse[digest]
                out.source.append(source)
                out.rows.append(row)
            else:
                pool.write(pixels)
                out.source.append(0)
                out.rows.append(written)
                written += 1
            out.keys.append(key)
            out.digests.append(digest)
            out.labels.append(label)
    return out

