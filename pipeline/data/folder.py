"""An image folder decoded on every core, each file read once, reusing what the previous cache holds.

Each worker reads a file once (up to the byte cap), hashes those bytes (the split key: the file's
name and content, as before; and its content alone, the key of its decoded image) and decodes them
as uint8 at the dataset's size (JPEGs at a reduced size where Pillow's `draft` can). A file whose
content the previous cache already holds at the same settings is not decoded again: its image is
copied from there. Each worker appends the images it decodes to a file of its own in the staging
folder and reports only where (file, row): no pixels pass between processes, and nothing holds
more than the image in hand, never the folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import multiprocessing
import os
from pathlib import Path

import numpy as np

from pipeline import images
from pipeline.data import readers, split_files, versions
from pipeline.data.manifest import PREP_VERSION
from pipeline.errors import UserError

POOL_FROM = 64  # smaller folders are decoded in this process (starting workers costs more)
MAX_FILE_BYTES = 64 * 2**20  # the default cap on an image file's size (max_file_bytes)
OLD_SPLITS = len(split_files.IMAGE_KEYS)  # sources 0..2: the previous cache's train, val and test splits


@dataclasses.dataclass(frozen=True)
class Decoder:
    """What every worker needs to read one file (picklable: sent once to each worker)."""

    shape: tuple[int, int, int]
    max_pixels: int
    max_bytes: int
    known: frozenset[bytes]  # content digests the previous cache holds: not decoded again
    spool: Path  # where each process appends what it decodes (decoded-<pid>.u8)

    def __call__(self, path: Path) -> tuple[str, bytes, tuple[str, int] | None, str | None, bool, Native]:
        """(split key, content digest, (file, row) of the decoded image or None when known or
        unreadable, problem, whether the problem is an unreadable image rather than a refused file,
        the file's own size and colour)."""
        try:
            with readers.open_regular(path, follow_symlinks=True) as handle:
                raw = handle.read(self.max_bytes + 1)
        except UserError as exc:
            return "", b"", None, str(exc), False, None
        name = os.fsencode(path.name)
        key = hashlib.sha256(len(name).to_bytes(4, "big") + name + raw + b"\0").hexdigest()
        digest = hashlib.sha256(raw).digest()
        if len(raw) > self.max_bytes:
            return key, digest, None, f"{readers.shown(path)}: larger than {self.max_bytes} bytes", True, None
        native = readers.image_header(raw)
        if digest in self.known:
            return key, digest, None, None, False, native
        try:
            pixels = images.decode_uint8(raw, self.shape, self.max_pixels)
        except images.ImageError as exc:
            return key, digest, None, f"{readers.shown(path)}: {exc}", True, None
        return key, digest, self.append(pixels.tobytes()), None, False, native

    def append(self, pixels: bytes) -> tuple[str, int]:
        """Write one image at the end of this process's file: (its name, the image's row)."""
        name = f"decoded-{os.getpid()}.u8"
        path = self.spool / name
        if path not in SPOOLS:  # unbuffered: every row is on disk when its result is reported
            SPOOLS[path] = open(path, "ab", buffering=0)
        row = SPOOLS[path].tell() // len(pixels)
        if SPOOLS[path].write(pixels) != len(pixels):  # a short write would shift every later row
            raise OSError(f"{path}: short write (is the disk full?)")
        return name, row


Native = tuple[int, int, bool] | None  # a file's own (height, width, colour), from its header
SPOOLS: dict[Path, io.FileIO] = {}  # this process's open decoded-<pid>.u8 files, by path


@dataclasses.dataclass
class Decoded:
    """Every readable file's facts, in file order; its pixels are row `rows[i]` of `source[i]`."""

    keys: list[str] = dataclasses.field(default_factory=list)  # split keys (name + content)
    digests: list[bytes] = dataclasses.field(default_factory=list)  # content sha256
    labels: list[int] = dataclasses.field(default_factory=list)
    source: list[int] = dataclasses.field(default_factory=list)  # old splits, then `spools`
    rows: list[int] = dataclasses.field(default_factory=list)
    unreadable: list[dict[str, str]] = dataclasses.field(default_factory=list)
    spools: list[str] = dataclasses.field(default_factory=list)  # the decoded-<pid>.u8 files used
    native: list[Native] = dataclasses.field(default_factory=list)  # each file's own size and colour

    def native_size(self) -> dict:
        """The files' own sizes and colour (the manifest's `native_size`, what a model's metadata
        says it was trained on): median, min and max [height, width], the share of colour files."""
        known = [n for n in self.native if n is not None]
        if not known:
            return {}
        sides = np.asarray([n[:2] for n in known])
        return {
            "median": [int(v) for v in np.median(sides, axis=0)],
            "min": [int(v) for v in sides.min(axis=0)],
            "max": [int(v) for v in sides.max(axis=0)],
            "color_share": round(sum(n[2] for n in known) / len(known), 4),
            "files": len(known),
        }


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
    reuse: dict[bytes, tuple[int, int]],
    max_unreadable: int,
    root: Path,
    progress,
) -> Decoded:
    """Decode every file of `classes` [(folder, files)] into the decoder's spool files (sources
    OLD_SPLITS, OLD_SPLITS + 1, ... in order of first use); a file whose content is in `reuse`
    (digest → (split, row) of the previous cache's splits, sources 0 to OLD_SPLITS - 1) is not decoded.
    Unreadable images: refused at the first (max_unreadable 0) or past `max_unreadable`."""
    files = [f for _, fs in classes for f in fs]
    labels = [label for label, (_, fs) in enumerate(classes) for _ in fs]
    out = Decoded()
    try:
        for label, f, (key, digest, where, problem, unreadable, native) in zip(
            labels, files, results(decoder, files, progress), strict=True
        ):
            if problem and not (unreadable and max_unreadable):
                skip = f"; {readers.formats_read()}; the dataset's max_unreadable: N skips such files"
                raise UserError(problem + (skip if unreadable else ""))
            if problem:
                out.unreadable.append({"file": readers.shown(f.relative_to(root)), "reason": problem})
                if len(out.unreadable) > max_unreadable:
                    raise UserError(
                        f"{readers.shown(root)}: more than max_unreadable={max_unreadable} unreadable "
                        f"images (the last: {problem}); {readers.formats_read()}"
                    )
                continue
            if where is None:
                source, row = reuse[digest]
            else:
                name, row = where
                if name not in out.spools:
                    out.spools.append(name)
                source = OLD_SPLITS + out.spools.index(name)
            out.source.append(source)
            out.rows.append(row)
            out.keys.append(key)
            out.digests.append(digest)
            out.labels.append(label)
            out.native.append(native)
    finally:  # this process's own spool file (a small folder decoded here)
        for path in [p for p in SPOOLS if p.parent == decoder.spool]:
            SPOOLS.pop(path).close()
    return out


def reusable(name: str, shape) -> tuple[list[np.ndarray], dict[bytes, tuple[int, int]]]:
    """The previous cache's image splits (train, val, test) and {file content digest: (split, row)},
    when its images were decoded at the same shape by the same version of data prep; else three
    empty splits and nothing to reuse."""
    nothing = [np.zeros((0, *shape), np.uint8) for _ in split_files.IMAGE_KEYS], {}
    manifest = versions.read_manifest(name)
    if not (manifest and manifest.pixels and manifest.prep_version == PREP_VERSION):
        return nothing
    if manifest.shapes["x_train"][1:] != list(shape):
        return nothing
    try:
        arrays = versions.read_arrays(manifest)
    except (OSError, ValueError):
        return nothing
    found = split_files.read_digests(versions.processed_dir(name) / manifest.images_folder)
    splits, reuse = [arrays[key] for key in split_files.IMAGE_KEYS], {}
    for split, key in enumerate(split_files.IMAGE_KEYS):
        for row, digest in enumerate(found.get(key, [])):
            if digest:  # numpy's S32 drops trailing zero bytes: pad back to the 32-byte sha256
                reuse.setdefault(bytes(digest).ljust(32, b"\0"), (split, row))
    return splits, reuse
